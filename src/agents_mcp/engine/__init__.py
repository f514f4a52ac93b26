"""The loop and what it runs on.

``loop`` (``run()`` over ``step()``), ``agent`` (an agent ready to run, and one run of it),
``transcript`` (a running thread's messages), ``context`` (what of a long thread fits in
one model request), ``summary`` (what a caller is told about a thread's latest turn) and
``delegation`` (agents that call agents). The LLM, the toolsets and the store come in as
parameters; nothing here knows MCP or a transport.
"""
