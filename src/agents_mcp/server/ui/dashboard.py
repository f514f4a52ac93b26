"""The dashboard: ``GET /`` (and ``/threads``) and its JSON endpoint ``POST /call``.

One self-contained page (``dashboard.html``, strict CSP like the thread view) lists the
caller's threads (by agent, by status, searched by title) and the inbox: every call
waiting for a person across threads, with Approve, Allow for this thread and Deny. Each
thread links to its live view (``/threads/<id>``). The page calls our tools through
``POST /call`` (``{"name": …, "arguments": {…}}``): only :data:`DASHBOARD_TOOLS`, as the
caller, so every rule of ``/mcp`` holds (another owner's thread is "not found").

Served by ``serve --transport http`` with the access rules of ``/mcp``, and on a loopback
port of its own by a stdio server and ``agents-mcp ui`` (see ``local``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from agents_mcp.server.ui import dashboard_html
from agents_mcp.server.ui.page import _CHALLENGE, MAX_BODY, ToolCaller, _body, _error, _page_headers

DASHBOARD_TOOLS = frozenset({"list_threads", "approve_call", "cancel_run"})
"""The tools the dashboard may call."""


@dataclass(frozen=True, kw_only=True)
class Dashboard:
    """The two routes, over the caller and the tools."""

    owner: Callable[[], str | None]
    """The caller, or None when no valid token (or link key) was sent."""
    call_tool: ToolCaller

    async def page(self, request: Request) -> Response:
        """``GET /``: the page. It holds no data, so it is sent with a 401 too: it then
        asks for the token, or takes it from the link's ``#token=…``."""
        html = dashboard_html()
        headers = _page_headers(html)
        if self.owner() is None:
            return HTMLResponse(html, status_code=401, headers={**headers, **_CHALLENGE})
        return HTMLResponse(html, headers=headers)

    async def call(self, request: Request) -> Response:
        """``POST /call``: one of the dashboard's tools, as the caller."""
        if self.owner() is None:
            return _error(401, "send Authorization: Bearer <token>", _CHALLENGE)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "send the call as application/json")
        raw = await _body(request, MAX_BODY)
        if raw is None:
            return _error(413, f"the body is over {MAX_BODY} bytes (the limit of /mcp too)")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return _error(400, "the body is not JSON")
        name = body.get("name") if isinstance(body, dict) else None
        arguments = body.get("arguments", {}) if isinstance(body, dict) else None
        if name not in DASHBOARD_TOOLS or not isinstance(arguments, dict):
            valid = ", ".join(sorted(DASHBOARD_TOOLS))
            return _error(400, f'send {{"name": …, "arguments": {{…}}}}; name is one of {valid}')
        return JSONResponse(await self.call_tool(name, arguments))
