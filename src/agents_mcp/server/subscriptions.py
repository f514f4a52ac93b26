"""Thread resources a client can follow: ``agents-mcp://threads/{id}`` changes (a step, a
call waiting for approval, the end of a turn) are announced as
``notifications/resources/updated``.

* Handshake era: ``resources/subscribe`` and ``resources/unsubscribe``; the notices go
  to the subscribing session until it unsubscribes (or the server stops). Without
  sessions (``stateless_http``) there is no stream for them: ``initialize`` does not
  announce ``resources.subscribe``, and subscribing is refused, saying why.
* 2026-07-28: ``subscriptions/listen`` with ``resourceSubscriptions``; the notices go on
  that request's stream, served by the SDK's own ``ListenHandler`` over a bus of the
  request's own, until the client ends it.

FastMCP 4.1.2 registers neither method, and its extension API refuses spec methods, so
this is a FastMCP middleware that answers them itself in the pass every request without
a handler of its own goes through (``on_request``), and that says so in the
capabilities it announces (``resources.subscribe``). An unknown thread, another owner's
or one the caller's access rules hide is the protocol's resource-not-found error
(``-32602`` with the URI in ``data``, as ``resources/read`` answers it).

Each followed thread is looked at when the database says it changed (PostgreSQL
``NOTIFY``) and every :data:`POLL_SECONDS` (SQLite), so a change made by any replica or
by ``agents-mcp chat`` is announced, at most that late.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, ClassVar

import anyio
from fastmcp import Context
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    EmptyResult,
    SubscriptionsListenRequestParams,
)

from agents_mcp.errors import NotFound
from agents_mcp.server.auth import current_caller
from agents_mcp.server.declarations import stateless_request
from agents_mcp.server.deps import Deps, deps_of
from agents_mcp.store import Store

log = logging.getLogger("agents_mcp.server.subscriptions")

THREADS = "agents-mcp://threads/"
POLL_SECONDS = 0.5
"""How often a followed thread is looked at when nothing wakes the watcher."""
MAX_FOLLOWED = 1000
"""Threads followed by handshake-era sessions at once, in one process."""

Notify = Callable[[], Awaitable[None]]


def not_found(uri: str) -> MCPError:
    """The protocol's resource-not-found error (SEP-2164)."""
    return MCPError(code=INVALID_PARAMS, message=f"Resource not found: {uri!r}", data={"uri": uri})


async def readable_thread(deps: Deps, uri: str) -> str:
    """The thread ``uri`` names, when the caller may read it; else :func:`not_found`."""
    thread_id = uri.removeprefix(THREADS) if uri.startswith(THREADS) else ""
    if not thread_id or "/" in thread_id:
        raise not_found(uri)
    caller = current_caller()
    try:
        await deps.access.require_thread(deps.threads, caller, thread_id)
        await deps.threads.store.get_thread(thread_id, caller.owner)
    except NotFound:
        raise not_found(uri) from None
    return thread_id


async def follow(store: Store, thread_id: str, notify: Notify) -> None:
    """Call ``notify`` each time the thread changes (forever, or until it is deleted or
    ``notify`` fails)."""

    async def seen() -> tuple[Any, ...] | None:
        t = await store.thread(thread_id)
        return None if t is None else (t.status, t.revision, t.updated_at)

    last = await seen()
    while True:
        await store.wait_changed(thread_id, POLL_SECONDS)
        now = await seen()
        if now == last:
            continue
        last = now
        try:
            await notify()
        except Exception as exc:  # the client is gone
            log.debug("resource update not delivered: %s", exc)
            return
        if now is None:
            return


class ThreadSubscriptions(Middleware):
    """``resources/subscribe``, ``resources/unsubscribe`` and ``subscriptions/listen`` for
    thread resources; every other request goes straight on."""

    METHODS: ClassVar[frozenset[str]] = frozenset(
        {"resources/subscribe", "resources/unsubscribe", "subscriptions/listen"}
    )

    def __init__(self) -> None:
        self._followed: dict[tuple[int, str], asyncio.Task[None]] = {}

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        if context.method == "server/discover" or (
            context.method == "initialize" and not stateless_request()
        ):
            return _subscribable(await call_next(context))
        if context.method not in self.METHODS or context.fastmcp_context is None:
            return await call_next(context)
        ctx = context.fastmcp_context
        params = context.message if isinstance(context.message, dict) else {}
        if context.method == "subscriptions/listen":
            return await self._listen(ctx, params)
        uri = str(params.get("uri", ""))
        key = (id(ctx.session), uri)
        if context.method == "resources/unsubscribe":
            task = self._followed.pop(key, None)
            if task is not None:
                task.cancel()
            return EmptyResult()
        if stateless_request():  # no stream outlives a request to carry the notices
            raise MCPError(
                code=INVALID_REQUEST,
                message="resources/subscribe needs an MCP session, and this server serves"
                " HTTP without them (stateless_http); 2026-07-28 clients follow threads"
                " with subscriptions/listen",
            )
        deps = deps_of(ctx)
        thread_id = await readable_thread(deps, uri)
        if key not in self._followed:
            if len(self._followed) >= MAX_FOLLOWED:
                raise MCPError(
                    code=INVALID_PARAMS, message="too many subscriptions; unsubscribe some"
                )
            session = ctx.session

            async def updated() -> None:
                await session.send_resource_updated(uri)

            task = deps.threads.runs.spawn(lambda: follow(deps.threads.store, thread_id, updated))
            task.add_done_callback(lambda _: self._followed.pop(key, None))
            self._followed[key] = task
        return EmptyResult()

    async def _listen(self, ctx: Context, raw: dict[str, Any]) -> Any:
        """One ``subscriptions/listen`` stream, the threads it names followed while it lasts."""
        params = SubscriptionsListenRequestParams.model_validate(raw)
        deps = deps_of(ctx)
        uris = list(params.notifications.resource_subscriptions or [])
        threads = [await readable_thread(deps, uri) for uri in uris]
        bus = InMemorySubscriptionBus()
        watchers = []
        for uri, thread_id in zip(uris, threads, strict=True):

            async def updated(uri: str = uri) -> None:
                await bus.publish(ResourceUpdated(uri=uri))

            watchers.append(
                asyncio.get_running_loop().create_task(
                    follow(deps.threads.store, thread_id, updated)
                )
            )
        try:
            # The SDK's own handler serves the stream; it reads the request id and the
            # session, built here from the public fields of FastMCP's request context.
            return await ListenHandler(bus)(_sdk_context(ctx), params)
        finally:
            for watcher in watchers:
                watcher.cancel()
            with anyio.CancelScope(shield=True), suppress(asyncio.CancelledError):
                await asyncio.gather(*watchers, return_exceptions=True)


def _sdk_context(ctx: Context) -> ServerRequestContext[Any, Any]:
    """The SDK's request context of this ``subscriptions/listen``, from FastMCP's."""
    request = ctx.request_context
    if request is None:  # only before a session exists, which a listen never is
        raise MCPError(code=INVALID_REQUEST, message="subscriptions/listen outside a request")
    return ServerRequestContext(
        session=request.session,
        lifespan_context=request.lifespan_context,
        protocol_version=request.protocol_version,
        method="subscriptions/listen",
        request_id=request.request_id,
        request=request.request,
        close_sse_stream=request.close_sse_stream,
    )


def _subscribable(result: Any) -> Any:
    """The ``initialize`` or ``server/discover`` result, announcing ``resources.subscribe``."""
    caps = getattr(result, "capabilities", None)
    resources = getattr(caps, "resources", None)
    if caps is None or resources is None:
        return result
    resources = resources.model_copy(update={"subscribe": True})
    return result.model_copy(
        update={"capabilities": caps.model_copy(update={"resources": resources})}
    )
