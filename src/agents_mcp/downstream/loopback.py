"""Where a browser comes back to after a sign-in, when agents-mcp serves no HTTP.

Over stdio and in the CLI (``agents-mcp chat``, ``agents-mcp login``) the redirect URI
is ``http://127.0.0.1:<oauth_callback_port>/oauth/callback``, and a small listener
answers it, only while a sign-in is waited for: it starts when one is asked
(``Accounts.on_asked``) and stops when the process ends. Serving HTTP, the server's own
``/oauth/callback`` route does the same (``server.transports``). Both answer with
:func:`page`.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from agents_mcp.downstream.signin import Accounts

log = logging.getLogger("agents_mcp.downstream.oauth")

CALLBACK_PATH = "/oauth/callback"


def loopback_uri(port: int) -> str:
    return f"http://127.0.0.1:{port}{CALLBACK_PATH}"


def page(ok: bool, text: str) -> HTMLResponse:
    """What the browser shows when it comes back: it worked, or why not."""
    title = "Signed in" if ok else "Sign-in not finished"
    body = (
        "<!doctype html><meta charset=utf-8><meta name=viewport"
        ' content="width=device-width,initial-scale=1">'
        f"<title>{title} · agents-mcp</title>"
        '<body style="font:16px system-ui,sans-serif;max-width:40em;margin:3em auto">'
        f"<h1>{title}</h1><p id=outcome>{html.escape(text)}</p></body>"
    )
    return HTMLResponse(body, status_code=200 if ok else 400, headers={"Cache-Control": "no-store"})


async def answer(accounts: Accounts, request: Request) -> HTMLResponse:
    """``GET /oauth/callback?code=…&state=…``: finish the sign-in it belongs to."""
    ok, text = await accounts.callback(dict(request.query_params))
    return page(ok, text)


class _Quiet(uvicorn.Server):
    """uvicorn without its signal handlers: the process's own (stdio, the CLI) stay."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Loopback:
    """The listener on the loopback redirect URI, started on first need."""

    def __init__(self, accounts: Accounts, port: int) -> None:
        self.accounts = accounts
        self.port = port
        self._server: _Quiet | None = None
        self._task: asyncio.Task[None] | None = None

    async def ensure(self) -> None:
        """Listen, if not yet (a port taken by another agents-mcp is left to it)."""
        if self._task is not None and not self._task.done():
            return

        async def callback(request: Request) -> HTMLResponse:
            return await answer(self.accounts, request)

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
            sock.listen(16)
        except OSError as exc:
            sock.close()
            log.warning(
                "cannot listen on %s for sign-ins (%s); set [server] oauth_callback_port,"
                " or finish the sign-in where that port is served",
                loopback_uri(self.port),
                exc.strerror,
            )
            return
        app = Starlette(routes=[Route(CALLBACK_PATH, callback, methods=["GET"])])
        self._server = _Quiet(uvicorn.Config(app, log_level="warning"))
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        log.info("listening on %s for sign-ins", loopback_uri(self.port))

    async def aclose(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
