"""The worker side of the driver protocol (standard library only: it also runs in peer venvs).

A worker is one process per driver. It sets up (spawns its servers, connects), prints
``{"event": "ready", ...}`` and then answers one JSON line per command read from stdin:

* ``{"op": "batch", "n", "k", "latency_ms", "concurrency"}``: ``n`` conversations, at most
  ``concurrency`` at a time; answers ``{"walls_ms": [...], "total_ms", "errors": [...]}``;
* ``{"op": "turns", "thread_id", "n", "k"}``: ``n`` more turns on a stored thread, one after
  the other (drivers with persistence);
* ``{"op": "history_turns", "size", "n", "k"}``: ``n`` turns after an in-memory history of
  ``size`` messages (the floor's S4 counterpart);
* ``{"op": "quit"}``.

The orchestrator reads the worker's CPU from ``/proc`` around each command, so a worker
does nothing between commands. Its real stdout is reserved for these lines: anything else
printing to fd 1 goes to stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import IO, Any, Protocol

CHAT_TIMEOUT = 300.0

_out: IO[str] | None = None


def claim_stdout() -> None:
    """Keep fd 1 for protocol lines; point ``sys.stdout`` and fd 1 at stderr."""
    global _out
    if _out is None:
        _out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr


def emit(obj: dict[str, Any]) -> None:
    assert _out is not None, "call claim_stdout() first"
    _out.write(json.dumps(obj) + "\n")
    _out.flush()


def directive(k: int, latency_ms: int, tag: str) -> str:
    """The user message that scripts the fake LLM (see ``benchmarks.fake_llm``)."""
    return f"bench K={k} L={latency_ms} #{tag}: please call the echo tool as instructed."


def expected(k: int) -> str:
    return f"done after {k} tool results"


def history(size: int, tool: str) -> list[dict[str, Any]]:
    """A finished transcript of ``size`` messages in Chat Completions shape.

    Repeats user → assistant(tool call) → tool → assistant(answer); ``benchmarks.seed``
    stores the same messages for agents-mcp.
    """
    pad = " The quick brown fox jumps over the lazy dog." * 2
    out: list[dict[str, Any]] = []
    i = 0
    while len(out) < size:
        cid = f"hist_{i}"
        out += [
            {"role": "user", "content": f"earlier question {i}.{pad}"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": cid,
                        "type": "function",
                        "function": {"name": tool, "arguments": json.dumps({"text": f"h{i}"})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": cid, "content": f"h{i}{pad}"},
            {"role": "assistant", "content": f"earlier answer {i}.{pad}"},
        ]
        i += 1
    # End on a final answer so the next user message starts a new turn.
    while out[-1]["role"] != "assistant" or out[-1].get("tool_calls"):
        out.pop()
    return out


class Driver(Protocol):
    async def chat(self, message: str, thread_id: str | None = None) -> str: ...


async def timed(
    chat: Callable[[], Awaitable[str]], want: str, walls: list[float], errors: list[str]
) -> None:
    t0 = time.perf_counter()
    try:
        reply = await asyncio.wait_for(chat(), CHAT_TIMEOUT)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}"[:500])
        return
    if want not in reply:
        errors.append(f"unexpected reply: {reply[:200]!r}")
        return
    walls.append((time.perf_counter() - t0) * 1000.0)


async def batch(driver: Driver, cmd: dict[str, Any]) -> dict[str, Any]:
    n, k = int(cmd["n"]), int(cmd["k"])
    latency = int(cmd.get("latency_ms", 0))
    sem = asyncio.Semaphore(int(cmd.get("concurrency", 1)))
    walls: list[float] = []
    errors: list[str] = []
    tag = cmd.get("tag", "b")

    async def one(i: int) -> None:
        async with sem:
            message = directive(k, latency, f"{tag}-{i}")
            await timed(lambda: driver.chat(message), expected(k), walls, errors)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return {"walls_ms": walls, "total_ms": (time.perf_counter() - t0) * 1000.0, "errors": errors}


async def turns(driver: Driver, cmd: dict[str, Any]) -> dict[str, Any]:
    n, k = int(cmd["n"]), int(cmd["k"])
    walls: list[float] = []
    errors: list[str] = []
    for i in range(n):
        message = directive(k, 0, f"t-{i}")

        async def one(m: str = message) -> str:
            return await driver.chat(m, cmd["thread_id"])

        await timed(one, expected(k), walls, errors)
    return {"walls_ms": walls, "errors": errors}


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve(
    driver: Driver, info: dict[str, Any], extra: dict[str, Handler] | None = None
) -> None:
    """Announce readiness, then answer commands from stdin until ``quit`` or EOF."""
    handlers: dict[str, Handler] = {
        "batch": lambda c: batch(driver, c),
        "turns": lambda c: turns(driver, c),
        **(extra or {}),
    }
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit({"event": "ready", "pid": os.getpid(), **info})
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        try:
            result = await handlers[cmd["op"]](cmd)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
        emit(result)


def fail(message: str) -> None:
    """Report a setup failure to the orchestrator and exit."""
    claim_stdout()
    emit({"event": "failed", "error": message[:2000]})
    raise SystemExit(1)
