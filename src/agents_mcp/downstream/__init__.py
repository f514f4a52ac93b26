"""Downstream MCP servers, reached through ``fastmcp.Client``.

* :mod:`.servers`: one long-lived client per configured server (``DownstreamServer``,
  ``Downstreams``) and the toolsets the loop sees;
* :mod:`.connect`: how a server is reached; :mod:`.logs`: a stdio server's stderr;
* :mod:`.elicit`: the questions a server asks during a call;
* :mod:`.oauth`, :mod:`.signin`, :mod:`.exchange`, :mod:`.loopback`: signing owners in;
* :mod:`.remote`: another agents-mcp as a downstream server.

Nothing is imported here: a command that never reaches a server (``agents-mcp threads``,
say) does not load the MCP client and server stacks (about a second of CPU).
"""
