"""The downstream MCP server of every driver, and the bare FastMCP baseline of S3/S5.

``python benchmarks/echo_server.py`` serves one ``echo`` tool over stdio: a FastMCP
server with nothing else, started the way its docs recommend for stdio.
"""

from __future__ import annotations

from typing import Annotated

from fastmcp import FastMCP
from mcp_types import ToolAnnotations
from pydantic import Field

mcp = FastMCP("echo")


@mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
def echo(text: Annotated[str, Field(description="Text to echo back")]) -> str:
    """Echo the text back."""
    return text


if __name__ == "__main__":
    mcp.run(show_banner=False, log_level="WARNING")
