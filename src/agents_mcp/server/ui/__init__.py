"""The thread view: one self-contained HTML page for following a thread and deciding its calls.

MCP Apps hosts show it in a sandboxed frame next to a ``chat_with_agent`` or ``get_thread``
result (the tools link it through ``_meta.ui.resourceUri``), and ``agents-mcp serve
--transport http`` serves the same page at ``/threads/<id>``. It makes no request of its
own beyond our tools: in a host, through the host; on its own, through ``/threads/<id>/call``.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

THREAD_UI = "ui://agents-mcp/thread"
"""The view's resource."""
UI_MIME = "text/html;profile=mcp-app"
"""The MIME type of an MCP Apps HTML resource."""
UI_EXTENSION = "io.modelcontextprotocol/ui"
"""The client capability (``capabilities.extensions``) of hosts that render MCP Apps."""


@cache
def thread_html() -> str:
    """The view: one HTML file with its CSS and JavaScript inline."""
    return files(__package__).joinpath("thread.html").read_text(encoding="utf-8")


@cache
def dashboard_html() -> str:
    """The dashboard: every thread, and every call waiting for a person, in one page."""
    return files(__package__).joinpath("dashboard.html").read_text(encoding="utf-8")
