"""Driver: N agents-mcp replicas over HTTP on one database, conversations round-robin.

``python -m benchmarks.drivers.replicas --replicas N --config FILE --db DB``
starts N ``agents-mcp serve --transport http`` processes as its own children (so their CPU,
and their downstream servers', is part of this driver's process tree), connects one
``fastmcp.Client`` to each, and sends each new conversation to the next replica, as a
round-robin load balancer would.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
from contextlib import AsyncExitStack
from typing import Any

from benchmarks.drivers import protocol
from benchmarks.drivers.mcp_client import MCPDriver, _free_port, _unbounded_client, _wait_port


class RoundRobin:
    def __init__(self, drivers: list[MCPDriver]) -> None:
        self._next = itertools.cycle(drivers)

    async def chat(self, message: str, thread_id: str | None = None) -> str:
        return await next(self._next).chat(message, thread_id)


async def main(args: argparse.Namespace) -> None:
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    env = {**os.environ, "FASTMCP_CHECK_FOR_UPDATES": "off", "FASTMCP_SHOW_SERVER_BANNER": "false"}
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with AsyncExitStack() as stack:
            drivers = []
            for _ in range(args.replicas):
                port = _free_port()
                cmd = [sys.executable, "-m", "agents_mcp", "serve", "--config", args.config,
                       "--db", args.db, "--transport", "http", "--port", str(port)]  # fmt: skip
                proc = await asyncio.create_subprocess_exec(
                    *cmd, env=env, stdin=asyncio.subprocess.DEVNULL
                )
                procs.append(proc)
                await _wait_port(port, proc)
                transport = StreamableHttpTransport(
                    f"http://127.0.0.1:{port}/mcp", httpx_client_factory=_unbounded_client
                )
                client: Any = Client(
                    transport, mode="legacy", timeout=protocol.CHAT_TIMEOUT, init_timeout=60
                )
                await stack.enter_async_context(client)
                drivers.append(MCPDriver(client))
            await protocol.serve(RoundRobin(drivers), {"replicas": args.replicas})
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            await proc.wait()


if __name__ == "__main__":
    protocol.claim_stdout()
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--db", required=True)
    asyncio.run(main(parser.parse_args()))
