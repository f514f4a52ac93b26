"""A tiny MCP server for the demo agent: no network, no API key, nothing to install.

Two tools show both sides of approvals: ``list_notes`` is marked read-only and runs
straight away under ``require_approval = "read_only"``; ``add_note`` changes something,
so agents-mcp asks first. Notes live in memory, as long as the server process.

Run by agents-mcp over stdio (see ``[mcpServers.demo]`` in agents.toml), or by hand:
``python examples/demo_server.py``.
"""

from __future__ import annotations

from typing import Annotated

from fastmcp import FastMCP
from mcp_types import ToolAnnotations
from pydantic import Field

mcp = FastMCP("demo")
notes: dict[str, str] = {"welcome": "Notes live in memory until the server stops."}


@mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
def list_notes() -> str:
    """List every note, one per line: title, then text."""
    return "\n".join(f"{title}: {text}" for title, text in notes.items())


@mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
def add_note(
    title: Annotated[str, Field(description="A short title")],
    text: Annotated[str, Field(description="The note itself")],
) -> str:
    """Add a note, or replace the note with that title."""
    notes[title] = text
    return f"saved note {title!r} ({len(notes)} notes now)"


if __name__ == "__main__":
    mcp.run(show_banner=False, log_level="ERROR")
