"""The thread view outside a chat: ``GET /threads/<id>`` and ``POST /threads/<id>/call``.

The page is the same HTML file MCP Apps hosts show. On its own it calls our tools through
a small same-origin JSON endpoint instead of a host: ``POST /threads/<id>/call`` with
``{"name": …, "arguments": {…}}`` answers the tool's ``CallToolResult`` (wire JSON). Only
the view's tools are accepted, only for the thread in the path, for its owner.

Access is that of ``/mcp``: with ``[server] auth_tokens`` a request needs ``Authorization:
Bearer <token>``; without tokens (loopback only) the caller is the ``local`` owner. Someone
else's thread answers 404, exactly like a thread that does not exist. A browser cannot
send a header when a link is opened, so a 401 answer to ``GET`` still carries the page
(it holds no data): the page asks for the token, or takes it from the link's
``#token=…`` fragment (never sent to the server), keeps it in the tab's
``sessionStorage`` and sends it with every call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from agents_mcp.errors import NotFound
from agents_mcp.server.ui import thread_html
from agents_mcp.threads.service import Threads

VIEW_TOOLS = frozenset(
    {"get_thread", "watch_thread", "approve_call", "answer_question", "cancel_run"}
)
"""The tools the page may call."""

ToolCaller = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Calls one of our tools as the current caller; returns its ``CallToolResult`` as JSON."""

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="agents-mcp"'}


def _hashes(html: str, tag: str) -> str:
    """CSP hash sources for each inline ``<tag>`` element of the page."""
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
        for b in bodies
    )


def _page_headers(html: str) -> dict[str, str]:
    """Only the page's own script and style run, and it talks only to this server."""
    policy = (
        f"default-src 'none'; script-src {_hashes(html, 'script')};"
        f" style-src {_hashes(html, 'style')}; img-src data:; connect-src 'self';"
        " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


@dataclass(frozen=True, kw_only=True)
class ThreadPage:
    """The two routes, over the server's threads, caller and tools."""

    threads: Callable[[], Threads]
    """The running server's threads (they exist only while it runs)."""
    owner: Callable[[], str | None]
    """The caller, or None when tokens are required and no valid one was sent."""
    call_tool: ToolCaller

    async def page(self, request: Request) -> Response:
        """``GET /threads/<id>``: the view, for the thread's owner."""
        html = thread_html()
        headers = _page_headers(html)
        owner = self.owner()
        if owner is None:
            return HTMLResponse(html, status_code=401, headers={**headers, **_CHALLENGE})
        if not await self._exists(owner, request.path_params["thread_id"]):
            return HTMLResponse("thread not found\n", status_code=404)
        return HTMLResponse(html, headers=headers)

    async def call(self, request: Request) -> Response:
        """``POST /threads/<id>/call``: one of the view's tools, for this thread."""
        thread_id = request.path_params["thread_id"]
        owner = self.owner()
        if owner is None:
            return _error(401, "send Authorization: Bearer <token>", _CHALLENGE)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "send the call as application/json")
        if not await self._exists(owner, thread_id):  # before reading anything of the body
            return _error(404, "thread not found")
        raw = await _body(request, MAX_BODY)
        if raw is None:
            return _error(413, f"the body is over {MAX_BODY} bytes (the limit of /mcp too)")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return _error(400, "the body is not JSON")
        name = body.get("name") if isinstance(body, dict) else None
        arguments = body.get("arguments", {}) if isinstance(body, dict) else None
        if name not in VIEW_TOOLS or not isinstance(arguments, dict):
            valid = ", ".join(sorted(VIEW_TOOLS))
            return _error(400, f'send {{"name": …, "arguments": {{…}}}}; name is one of {valid}')
        if arguments.get("thread_id") != thread_id:
            return _error(400, f"arguments.thread_id must be {thread_id!r}, the page's thread")
        return JSONResponse(await self.call_tool(name, arguments))

    async def _exists(self, owner: str, thread_id: str) -> bool:
        try:
            await self.threads().get(owner=owner, thread_id=thread_id)
        except NotFound:
            return False
        return True


MAX_BODY = 4 * 1024 * 1024
"""The largest body ``/threads/<id>/call`` reads, as the MCP endpoint's own limit."""


async def _body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is longer than ``limit`` (never read whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
