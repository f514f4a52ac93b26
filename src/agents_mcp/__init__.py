"""agents-mcp: run configured LLM agents as MCP tools."""

__version__ = "0.1.0"
