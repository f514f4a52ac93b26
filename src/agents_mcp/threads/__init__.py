"""The service callers use: chat, decide, look up and cancel threads (``service``), the
runs in flight in this process (``runs``), and a configuration assembled into running
agents (``runtime``). Transport-free: the MCP server and the CLI both drive it."""
