"""A local OTLP/HTTP receiver that takes what it is sent and keeps nothing (stdlib only).

``python -m benchmarks.otlp_sink`` answers every ``POST /v1/traces`` and ``/v1/metrics``
with an empty ``Export…ServiceResponse`` (zero bytes of protobuf), prints ``PORT <n>`` on
stdout once it listens and stops when stdin closes. ``GET /stats`` returns
``{"requests": n, "bytes_in": n}``. It stands for a collector on the same host, so the
benchmark's ``--telemetry`` drivers pay for exporting (building, encoding and sending
the spans and metrics) but not for a collector's work, which runs in its own process.
"""

from __future__ import annotations

import asyncio
import json
import sys

_stats = {"requests": 0, "bytes_in": 0}


class _HTTP(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            _stats["requests"] += 1
            _stats["bytes_in"] += len(head) + length
            self._answer(lines[0].startswith("GET /stats"))

    def _answer(self, stats: bool) -> None:
        body = json.dumps(_stats).encode() if stats else b""
        kind = "application/json" if stats else "application/x-protobuf"
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head.encode() + body)


async def serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HTTP, "127.0.0.1", 0, backlog=1024)
    sys.stdout.write(f"PORT {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    stdin_closed = loop.create_future()

    class _Watch(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            if not stdin_closed.done():
                stdin_closed.set_result(None)

    await loop.connect_read_pipe(_Watch, sys.stdin)
    async with server:
        await stdin_closed


if __name__ == "__main__":
    asyncio.run(serve())
