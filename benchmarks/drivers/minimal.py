"""Driver: the minimal loop in-process (the floor)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from benchmarks.drivers import protocol
from benchmarks.minimal_loop import MinimalLoop


class MinimalDriver:
    def __init__(self, loop: MinimalLoop) -> None:
        self.loop = loop
        self._histories: dict[int, list[dict[str, Any]]] = {}

    async def chat(self, message: str, thread_id: str | None = None) -> str:
        return await self.loop.chat(message)

    async def history_turns(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """S4 counterpart: turns after ``size`` messages held in memory (never persisted)."""
        size, n, k = int(cmd["size"]), int(cmd["n"]), int(cmd["k"])
        past = self._histories.setdefault(size, protocol.history(size, "echo"))
        walls: list[float] = []
        errors: list[str] = []
        for i in range(n):
            message = protocol.directive(k, 0, f"h-{i}")

            async def one(m: str = message) -> str:
                return await self.loop.chat(m, history=past)

            await protocol.timed(one, protocol.expected(k), walls, errors)
        return {"walls_ms": walls, "errors": errors}


async def main(args: argparse.Namespace) -> None:
    loop = MinimalLoop(args.base_url, stream=args.stream)
    try:
        driver = MinimalDriver(loop)
        await protocol.serve(driver, {"driver": "minimal"}, {"history_turns": driver.history_turns})
    finally:
        await loop.aclose()


if __name__ == "__main__":
    protocol.claim_stdout()
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--stream", action="store_true", help="ask the model for SSE streams")
    asyncio.run(main(parser.parse_args()))
