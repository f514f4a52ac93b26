"""``stateless_http = true``: what a handshake-era client declared, and its cancellations,
kept without a session.

Stateless, every HTTP request stands alone: the SDK serves each on a fresh connection
that never saw the client's ``initialize``, so the capabilities declared there (MCP Apps
above all) would be unknown to every later request, and a ``notifications/cancelled``
would reach a connection that knows no request to cancel. Two things carry them:

* **The declaration rides on the session id.** The streamable HTTP transport lets a
  server assign ``Mcp-Session-Id`` when it answers ``initialize``, and clients send it
  with every later request. Stateless, agents-mcp assigns one that *is* the declaration
  (``sl1.`` + base64url JSON of the declared capabilities and 128 random bits) and keeps
  nothing: any replica reads it back from the header. It holds only what the client
  declared about itself, so a forged one gains nothing a client could not declare.
* **A cancellation finds its call through that id.** A waiting ``tools/call`` of such a
  client is registered under (session id, request id); ``notifications/cancelled`` for
  it cancels the call in this process, or, when another replica holds it, is written
  to the database, where the replica holding it looks (every :data:`WATCH_SECONDS`). The
  call then ends as it would with a session: a run of an agent with
  ``on_cancel = "stop"`` stops, other runs go on.

What a stateless connection cannot do is send the client a request of its own
(``elicitation/create``): there is nowhere for the answer to arrive. Approvals are then
never asked inline; clients get the structured result (or, in the 2026-07-28 era, an
input-required result, which needs no back-channel).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import anyio
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents_mcp.server.declarations import (
    MAX_DECLARATION,
    STATELESS,
    current_session,
    session_id,
)
from agents_mcp.server.deps import Deps, deps_of

log = logging.getLogger("agents_mcp.server.stateless")

WATCH_SECONDS = 0.5
"""How often a waiting call looks for a cancellation that reached another replica."""
RECORD_SECONDS = 5.0
"""How long recording a cancellation for another replica may take."""


class SessionDeclarations:
    """ASGI middleware (stateless only): answer a handshake ``initialize`` with a session
    id carrying the client's declared capabilities, and mark every request as served
    without a session (``declarations.stateless_request``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # what a session would serve is refused by this mark
            scope.setdefault("state", {})[STATELESS] = True
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        read, more = await _read_body(receive)
        assigned = _assigned(read) if not more else None
        unread: list[bytes] = [read]

        async def replay() -> Message:
            if unread:
                return {"type": "http.request", "body": unread.pop(), "more_body": more}
            return await receive()

        async def sending(message: Message) -> None:
            if assigned is not None and message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"mcp-session-id"]
                headers.append((b"mcp-session-id", assigned.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, replay, sending)


async def _read_body(receive: Receive, limit: int = 4 * MAX_DECLARATION) -> tuple[bytes, bool]:
    """The request body up to ``limit`` bytes, and whether more follows."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        more = bool(message.get("more_body"))
        if not more or len(body) > limit:
            return body, more


def _assigned(body: bytes) -> str | None:
    """The session id for an ``initialize`` request's body; None for anything else."""
    try:
        request = json.loads(body)
    except ValueError:
        return None
    if not isinstance(request, dict) or request.get("method") != "initialize":
        return None
    params = request.get("params")
    caps = params.get("capabilities") if isinstance(params, dict) else None
    return session_id(caps) if isinstance(caps, dict) else None


class StatelessCancels(Middleware):
    """fastmcp middleware (stateless only): tool calls of clients with one of our session
    ids can be cancelled by ``notifications/cancelled``, on any replica."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], anyio.CancelScope] = {}

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        ctx = context.fastmcp_context
        session = current_session()
        if session is None or ctx is None or ctx.request_context is None:
            return await call_next(context)
        key = (session, str(ctx.request_id))
        deps = deps_of(ctx)
        scope = anyio.CancelScope()
        self._calls[key] = scope
        watch = asyncio.get_running_loop().create_task(_watch(deps, key, scope))
        try:
            with scope:
                return await call_next(context)
            raise MCPError(code=INTERNAL_ERROR, message="Request cancelled by the client")
        finally:
            self._calls.pop(key, None)
            watch.cancel()
            with anyio.CancelScope(shield=True), suppress(asyncio.CancelledError):
                await watch

    async def on_notification(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        if context.method == "notifications/cancelled":
            await self._cancel(context)
        return await call_next(context)

    async def _cancel(self, context: MiddlewareContext[Any]) -> None:
        session = current_session()
        params = context.message if isinstance(context.message, Mapping) else {}
        request_id = params.get("requestId")
        if session is None or request_id is None:
            return
        key = (session, str(request_id))
        scope = self._calls.get(key)
        if scope is not None:
            scope.cancel()
            return
        ctx = context.fastmcp_context
        if ctx is None:
            return
        # Another replica may hold the call. Shielded: a stateless connection ends as soon
        # as the notification is acknowledged, which would cancel the write.
        with anyio.CancelScope(shield=True), anyio.move_on_after(RECORD_SECONDS):
            await deps_of(ctx).tasks.record_cancel(*key)


async def _watch(deps: Deps, key: tuple[str, str], scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` once a cancellation for ``key`` is in the database."""
    while True:
        await anyio.sleep(WATCH_SECONDS)
        try:
            if await deps.tasks.cancelled(*key):
                scope.cancel()
                return
        except Exception as exc:  # a failing database must not fail the call it watches
            log.debug("looking for a cancellation failed: %s", exc)
