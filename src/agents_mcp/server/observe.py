"""The duration of every MCP request served, as the metric ``mcp.server.operation.duration``.

fastmcp opens the request's span itself (``tools/call chat_with_agent``, parented by the
caller's ``traceparent``); this middleware adds the metric the MCP conventions define.
It is installed only while telemetry is on (:func:`install`).
"""

from __future__ import annotations

import time
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

from agents_mcp import telemetry


class Timing(Middleware):
    async def on_request(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        started = time.perf_counter()
        error: str | None = None
        try:
            return await call_next(context)
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            name = getattr(getattr(context.message, "params", None), "name", None)
            if name is None:
                name = getattr(context.message, "name", None)
            telemetry.record(
                "mcp.server.operation.duration",
                time.perf_counter() - started,
                {
                    "mcp.method.name": context.method,
                    "gen_ai.tool.name": name if context.method == "tools/call" else None,
                    "gen_ai.operation.name": "execute_tool"
                    if context.method == "tools/call"
                    else None,
                    "error.type": error,
                },
            )


def install(mcp: FastMCP) -> None:
    """Time the server's requests, while telemetry is on."""
    if telemetry.enabled():
        mcp.add_middleware(Timing())
