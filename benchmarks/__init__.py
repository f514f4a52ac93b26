"""agents-mcp benchmarks: its own overhead next to a minimal loop and peer frameworks.

Run ``python -m benchmarks run [--quick]``; see ``benchmarks/README.md``. Modules that run
inside peer virtual environments (``procstat``, ``fake_llm``, ``drivers.protocol``,
``drivers.openai_agents``, ``drivers.pydantic_ai``) import nothing outside the standard
library and their own framework.
"""
