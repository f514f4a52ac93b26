"""A round-robin HTTP proxy for tests: each request goes to the next backend in turn.

What a load balancer without session affinity does: consecutive requests of one MCP
client land on different agents-mcp replicas. Responses stream through (server-sent
events), so progress and results arrive as they would directly.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx2
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse

_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}


class RoundRobin:
    """An ASGI app forwarding ``/<path>`` to each of ``backends`` in turn."""

    def __init__(
        self, backends: Sequence[str], route: Callable[[bytes], int] | None = None
    ) -> None:
        self.backends = itertools.cycle(backends)
        self.listed = list(backends)
        self.route = route
        """Picks the backend (an index) from the request body instead of turns."""
        self.sent: list[str] = []
        """The backend each request went to, in order."""
        self.http = httpx2.AsyncClient(timeout=httpx2.Timeout(60.0, read=None))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        content = await request.body()
        backend = next(self.backends) if self.route is None else self.listed[self.route(content)]
        self.sent.append(backend)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        upstream = self.http.build_request(
            request.method, backend + request.url.path, headers=headers, content=content
        )
        response = await self.http.send(upstream, stream=True)

        async def body() -> AsyncIterator[bytes]:
            async for chunk in response.aiter_raw():
                yield chunk

        out = StreamingResponse(
            body(),
            status_code=response.status_code,
            headers={k: v for k, v in response.headers.items() if k.lower() not in _HOP},
            background=BackgroundTask(response.aclose),
        )
        await out(scope, receive, send)
