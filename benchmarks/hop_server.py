"""The floor behind one MCP hop: the minimal loop inside a bare FastMCP server.

``python benchmarks/hop_server.py --base-url URL [--http PORT] [--stream]`` exposes one
``chat_with_agent(agent, message, thread_id=None)`` tool that runs
:class:`~benchmarks.minimal_loop.MinimalLoop` (no persistence; ``thread_id`` is ignored).
Called through the same MCP client as agents-mcp, it prices the hop itself. Like
agents-mcp answering an MCP caller, it asks the model for whole answers (``--stream``:
streamed, as agents-mcp does only when someone shows the text as it comes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastmcp import Context, FastMCP
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.minimal_loop import MinimalLoop


class HopResult(BaseModel):
    thread_id: str | None
    reply: str


def build(base_url: str, *, stream: bool = False) -> FastMCP:
    @asynccontextmanager
    async def lifespan(_: FastMCP) -> AsyncIterator[dict[str, Any]]:
        loop = MinimalLoop(base_url, stream=stream)
        try:
            yield {"loop": loop}
        finally:
            await loop.aclose()

    mcp = FastMCP("hop", lifespan=lifespan)

    @mcp.tool
    async def chat_with_agent(
        agent: str, message: str, ctx: Context, thread_id: str | None = None
    ) -> HopResult:
        """Send a message to the agent (minimal loop, no persistence)."""
        loop: MinimalLoop = ctx.lifespan_context["loop"]
        return HopResult(thread_id=thread_id, reply=await loop.chat(message))

    return mcp


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--http", type=int, default=None, help="serve streamable HTTP on this port")
    parser.add_argument("--stream", action="store_true", help="ask the model for SSE streams")
    args = parser.parse_args()
    server = build(args.base_url, stream=args.stream)
    if args.http is None:
        server.run(show_banner=False, log_level="WARNING")
    else:
        server.run(
            transport="http",
            host="127.0.0.1",
            port=args.http,
            show_banner=False,
            log_level="WARNING",
        )
