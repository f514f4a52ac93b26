"""The MCP face of agents-mcp: the FastMCP server (``app``) and its tools, who calls
(``auth``) and what they may use (``access``, ``catalog``), the shapes results take
(``results``), progress while a call waits (``progress``), how it is served
(``transports``) and the thread view (``ui``)."""
