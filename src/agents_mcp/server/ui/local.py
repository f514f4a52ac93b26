"""The dashboard on a loopback port of its own, for servers without HTTP: a stdio server
(``[server] dashboard``, on by default) and ``agents-mcp ui``.

It listens on ``127.0.0.1`` only, on ``[server] dashboard_port`` (0, the default: a free
port the system picks, so the several servers a desktop client starts never collide). A
per-process key of 256 random bits protects it: the link carries it in its fragment
(``#token=…``), which a browser never sends to a server, and the page sends it as
``Authorization: Bearer``. It is compared in constant time and never logged. Requests
whose ``Host`` is not this address get 421 (DNS rebinding) and those from another
browser origin 403. The caller is the ``local`` owner, as over stdio and in the CLI.

A stdio server puts the link to the thread in the text of every ``needs_approval`` or
``running`` result (:class:`LinkInResults`), so the person in Claude Code or Claude
Desktop clicks it.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp_types import CallToolRequestParams, TextContent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agents_mcp.config import LOCAL
from agents_mcp.server.results import META_STATUS, META_THREAD_ID
from agents_mcp.server.ui.dashboard import Dashboard
from agents_mcp.server.ui.page import ThreadPage, ToolCaller
from agents_mcp.threads.service import Threads

log = logging.getLogger("agents_mcp.server.ui.local")

HOST = "127.0.0.1"
_KEY_OK: ContextVar[bool] = ContextVar("agents_mcp_dashboard_key", default=False)
WAITING = frozenset({"needs_approval", "running"})
RESULT_TOOLS = frozenset({"chat_with_agent", "approve_call", "get_thread"})
"""The tools whose waiting results get the link (not the view's own ``watch_thread``)."""


@dataclass
class LocalDashboard:
    """Where the dashboard listens, and its key."""

    port: int
    key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def link(self, thread_id: str | None = None) -> str:
        """The link that opens the dashboard (or one thread) with the key."""
        where = f"/threads/{thread_id}" if thread_id else "/"
        return f"{self.base}{where}#token={self.key}"


class _Guard:
    """Host and Origin checks, and whether the request carries the key."""

    def __init__(self, app: ASGIApp, board: LocalDashboard) -> None:
        self.app = app
        self.board = board

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        port = self.board.port
        if headers.get("host") not in (f"{HOST}:{port}", f"localhost:{port}"):
            await PlainTextResponse("misdirected request\n", 421)(scope, receive, send)
            return
        origin = headers.get("origin")
        if origin is not None and origin not in (self.board.base, f"http://localhost:{port}"):
            await PlainTextResponse("another origin may not call this dashboard\n", 403)(
                scope, receive, send
            )
            return
        sent = headers.get("authorization", "")
        ok = hmac.compare_digest(sent.encode(), f"Bearer {self.board.key}".encode())
        token = _KEY_OK.set(ok)
        try:
            await self.app(scope, receive, send)
        finally:
            _KEY_OK.reset(token)


def local_app(board: LocalDashboard, threads: Callable[[], Threads], call_tool: ToolCaller) -> Any:
    """The dashboard and the thread view, behind the key."""

    def owner() -> str | None:
        return LOCAL if _KEY_OK.get() else None

    page = ThreadPage(threads=threads, owner=owner, call_tool=call_tool)
    dash = Dashboard(owner=owner, call_tool=call_tool)

    def route(path: str, handler: Callable[[Request], Awaitable[Response]], method: str) -> Route:
        return Route(path, handler, methods=[method])

    app = Starlette(
        routes=[
            route("/", dash.page, "GET"),
            route("/threads", dash.page, "GET"),
            route("/call", dash.call, "POST"),
            route("/threads/{thread_id}", page.page, "GET"),
            route("/threads/{thread_id}/call", page.call, "POST"),
        ]
    )
    return _Guard(app, board)


def listen(port: int = 0) -> socket.socket:
    """A listening loopback socket (``port`` 0: one the system picks)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(64)
    sock.setblocking(False)
    return sock


async def serve_local(app: Any, sock: socket.socket, started: Callable[[Any], None]) -> None:
    """Serve ``app`` on ``sock`` until cancelled (``started`` gets the uvicorn server)."""
    import uvicorn

    config = uvicorn.Config(  # log_config=None: its lines come through ours, in our format
        app, log_level="warning", log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    started(server)
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()


class LinkInResults(Middleware):
    """Adds the dashboard link of the thread to results that wait for a person or run on."""

    def __init__(self, board: Callable[[], LocalDashboard | None]) -> None:
        self._board = board

    async def on_call_tool(
        self,
        context: MiddlewareContext[CallToolRequestParams],
        call_next: CallNext[CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        result = await call_next(context)
        if context.message.name not in RESULT_TOOLS:
            return result
        board = self._board()
        meta = result.meta or {}
        status, thread = meta.get(META_STATUS), meta.get(META_THREAD_ID)
        if board is None or status not in WAITING or not isinstance(thread, str):
            return result
        what = "decide it" if status == "needs_approval" else "follow it"
        line = f"The person can {what} in the browser: {board.link(thread)}"
        return ToolResult(
            content=[*result.content, TextContent(type="text", text=line)],
            structured_content=result.structured_content,
            meta=result.meta,
            is_error=result.is_error,
        )


@dataclass(frozen=True)
class DashboardSpec:
    """A server that serves the dashboard on a loopback port of its own."""

    port: int = 0
    """0: a free port the system picks."""
    links: bool = True
    """Put the thread's link in results that wait (a stdio server)."""
    on_ready: Callable[[LocalDashboard], None] | None = None
    """Told where it listens once it does (``agents-mcp ui`` opens the browser)."""
