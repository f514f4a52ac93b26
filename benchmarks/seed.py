"""Pre-populated agents-mcp databases for S4 (long threads) and S5 (many threads).

Written through :class:`agents_mcp.store.Store` itself, so the rows are exactly what
agents-mcp would have stored: the transcript of ``drivers.protocol.history``. The store of
an older agents-mcp (no claims; ``Store.open``) is spoken to as well, so a baseline
(``python -m benchmarks run --baseline DIR``) seeds its own databases with its own code:
``python -m benchmarks.seed --db PATH --sizes 10,1000`` prints the thread ids as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from agents_mcp.messages import Message, ToolCall, Usage
from benchmarks.drivers.protocol import history

AGENT = "bench"
LOCAL_OWNER = "local"  # the owner of every thread over stdio (agents_mcp.store.LOCAL_OWNER)
TOOL = "echo__echo"  # the name agents-mcp offers the model for the echo server's tool


def _message(wire: dict[str, Any]) -> Message:
    role = wire["role"]
    if role == "tool":
        return Message(role="tool", tool_call_id=wire["tool_call_id"], content=wire["content"])
    calls = tuple(
        ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
        for c in wire.get("tool_calls") or ()
    )
    usage = Usage(input_tokens=100, output_tokens=10) if role == "assistant" else None
    return Message(role=role, content=wire["content"], tool_calls=calls, usage=usage)


async def seed_thread(store: Any, size: int) -> str:
    """One completed thread of ``size`` messages (owner ``local``); returns its id."""
    wire = history(size, TOOL)
    rest = [_message(m) for m in wire[1:]]
    try:
        from agents_mcp.store import Claim
    except ImportError:  # an agents-mcp before claims (0b9950f and older)
        thread = await store.create_thread(
            agent=AGENT, owner=LOCAL_OWNER, first_message=wire[0]["content"]
        )
        for i in range(0, len(rest), 500):
            await store.append(thread.id, *rest[i : i + 500])
        await store.set_status(thread.id, "completed")
        return str(thread.id)
    claim = Claim.new(store.runner)
    thread = await store.create_thread(
        agent=AGENT, owner=LOCAL_OWNER, first_message=wire[0]["content"], claim=claim
    )
    for i in range(0, len(rest), 500):
        await store.append(thread.id, claim, *rest[i : i + 500])
    await store.append(thread.id, claim, complete=True)
    return str(thread.id)


async def seed_threads(path: str, sizes: list[int]) -> list[str]:
    """Create the database at ``path`` holding one thread per entry of ``sizes``."""
    try:
        from agents_mcp.store import open_store
    except ImportError:
        from agents_mcp.store import Store

        # A --baseline checkout from before open_store: mypy sees only this version's Store.
        open_store = Store.open  # type: ignore[attr-defined]
    store = await open_store(path)
    try:
        return [await seed_thread(store, size) for size in sizes]
    finally:
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Seed an agents-mcp database (S4, S5).")
    parser.add_argument("--db", required=True)
    parser.add_argument(
        "--sizes", default="", help="messages per thread, comma-separated (none: empty database)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="threads per size")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x] * args.repeat
    print(json.dumps(asyncio.run(seed_threads(args.db, sizes))))
