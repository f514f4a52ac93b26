"""How the LLM client reaches a provider: httpx2 and httpcore2's pool, on our own sockets.

httpx2's default transport sends a request as two writes (headers, then body) through
anyio, and checks twice per request whether the idle connection was closed, each time
asking the socket for its peer address. On this path every write wakes the provider's
side of the connection; on a 2-core VM each wake-up costs about as much CPU as the rest
of building the request. :class:`ProviderTransport` is httpx2's transport with one change
below httpcore2 (through its public network-backend interface): a connection is an asyncio
:class:`~asyncio.Protocol` whose stream collects what httpcore2 writes and sends it in
one write when httpcore2 starts reading the answer. HTTP itself (h11, pooling, keep-alive,
TLS settings, timeouts, the exceptions) is still httpx2's and httpcore2's. The stream is
asyncio's, so the transport serves an asyncio event loop only (as agents-mcp runs).

A proxy from the environment (``HTTPS_PROXY`` and friends) is httpx2's business:
:func:`transport_for` then answers ``None`` and the client keeps httpx2's own transport.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import sys
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore2
import httpx2

READ_LIMIT = 256 * 1024
"""Bytes received but not yet read by httpcore2 before the socket stops being read."""
WRITE_LIMIT = 64 * 1024
"""Bytes collected from httpcore2 before they are sent without waiting for its read; also
what the transport may hold unsent before a request waits (under the write timeout)."""
HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds before the next address of a host is tried while the first still connects
(RFC 8305's recommendation, and anyio's, which httpcore2 uses by default)."""

_ERRORS: tuple[tuple[type[Exception], type[httpx2.HTTPError]], ...] = (
    (httpcore2.ConnectTimeout, httpx2.ConnectTimeout),
    (httpcore2.ReadTimeout, httpx2.ReadTimeout),
    (httpcore2.WriteTimeout, httpx2.WriteTimeout),
    (httpcore2.PoolTimeout, httpx2.PoolTimeout),
    (httpcore2.TimeoutException, httpx2.TimeoutException),
    (httpcore2.ConnectError, httpx2.ConnectError),
    (httpcore2.ReadError, httpx2.ReadError),
    (httpcore2.WriteError, httpx2.WriteError),
    (httpcore2.NetworkError, httpx2.NetworkError),
    (httpcore2.ProxyError, httpx2.ProxyError),
    (httpcore2.UnsupportedProtocol, httpx2.UnsupportedProtocol),
    (httpcore2.LocalProtocolError, httpx2.LocalProtocolError),
    (httpcore2.RemoteProtocolError, httpx2.RemoteProtocolError),
    (httpcore2.ProtocolError, httpx2.ProtocolError),
)
"""httpcore2's exceptions as httpx2 raises them, most specific first."""


def transport_for(url: httpx2.URL) -> httpx2.AsyncBaseTransport | None:
    """The transport for requests to ``url``, or None for httpx2's default: a proxy for its
    scheme is configured in the environment (``HTTPS_PROXY`` for https, ``HTTP_PROXY`` for
    http, or ``ALL_PROXY``), which httpx2 applies with its own transport, ``NO_PROXY``
    included."""
    proxies = urllib.request.getproxies()
    if proxies.get(url.scheme) or proxies.get("all"):
        return None
    return ProviderTransport()


class ProviderTransport(httpx2.AsyncBaseTransport):
    """httpx2's ``AsyncHTTPTransport`` defaults (HTTP/1.1, verified TLS honouring
    ``SSL_CERT_FILE``/``SSL_CERT_DIR``, 100 connections, 20 kept alive for 5 s) over
    :class:`_Backend` connections."""

    def __init__(self) -> None:
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_Backend(),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        core = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx():
            response = await self._pool.handle_async_request(core)
        assert isinstance(response.stream, AsyncIterable)
        return httpx2.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx2.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            with _as_httpx():
                await close()


@contextmanager
def _as_httpx() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


class _Backend(httpcore2.AsyncNetworkBackend):
    """TCP connections as :class:`_Stream` s (the pool asks for nothing else)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore2's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        if socket_options:
            raise httpcore2.ConnectError("socket options are not supported here")
        loop = asyncio.get_running_loop()
        local = None if local_address is None else (local_address, 0)
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Receiver,
                    host,
                    port,
                    local_addr=local,
                    happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                )
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc) or type(exc).__name__) from exc
        return _Stream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Receiver(asyncio.Protocol):
    """Keeps what arrives until :class:`_Stream` reads it; tracks the socket's end."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.ended = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self.drained: asyncio.Future[None] | None = None
        """Set while the transport holds more than it should: done when it has sent it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) > READ_LIMIT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        if self.drained is None:
            self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Stream(httpcore2.AsyncNetworkStream):
    """One connection as httpcore2 sees it. Writes are collected and sent together when
    httpcore2 reads (a request's head and body in one write), or once they pass
    :data:`WRITE_LIMIT`; the transport sends what the socket does not take at once."""

    def __init__(self, transport: asyncio.Transport, receiver: _Receiver) -> None:
        self._transport = transport
        self._receiver = receiver
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._write_timeout: float | None = None
        transport.set_write_buffer_limits(high=WRITE_LIMIT)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        if self._receiver.ended or self._transport.is_closing():
            raise httpcore2.WriteError("the connection is closed")
        self._write_timeout = timeout
        self._pending.append(buffer)
        self._pending_bytes += len(buffer)
        if self._pending_bytes > WRITE_LIMIT:
            self._send()
            await self._drain()

    async def _drain(self) -> None:
        """Wait (under the write timeout) until the transport has sent what it holds
        beyond :data:`WRITE_LIMIT`: a provider that does not read is a WriteTimeout, and
        a slow upload does not count against the read timeout."""
        drained = self._receiver.drained
        if drained is None:
            return
        seconds = self._write_timeout
        try:
            async with asyncio.timeout(seconds):
                await asyncio.shield(drained)
        except TimeoutError as exc:
            raise httpcore2.WriteTimeout(f"the provider took nothing for {seconds:g} s") from exc

    def _send(self) -> None:
        pending, size = self._pending, self._pending_bytes
        self._pending, self._pending_bytes = [], 0
        if not pending or self._transport.is_closing():
            return
        if len(pending) > 1 and size <= WRITE_LIMIT:
            pending = [b"".join(pending)]  # a large body is not copied once more to join it
        for data in pending:
            self._transport.write(data)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        if self._pending:
            self._send()
            await self._drain()
        receiver = self._receiver
        if not receiver.received and not receiver.ended:
            await self._wait(timeout)
        received = receiver.received
        if not received:
            if receiver.error is not None:
                raise httpcore2.ReadError(str(receiver.error) or type(receiver.error).__name__)
            return b""  # the other side closed: httpcore2 makes sense of it
        if len(received) <= max_bytes:
            data = bytes(received)
            received.clear()
        else:
            data = bytes(received[:max_bytes])
            del received[:max_bytes]
        if receiver.paused and len(received) <= READ_LIMIT:
            receiver.paused = False
            self._transport.resume_reading()
        return data

    async def _wait(self, seconds: float | None) -> None:
        receiver = self._receiver
        receiver.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(seconds):
                await receiver.waiter
        except TimeoutError as exc:
            raise httpcore2.ReadTimeout(f"nothing arrived for {seconds:g} s") from exc
        finally:
            receiver.waiter = None

    async def aclose(self) -> None:
        # Abort, as httpcore2's own backend ends up doing: a request given up on (cancelled,
        # timed out) must not go on being sent, nor keep its socket open while it is.
        self._pending.clear()
        self._transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore2.AsyncNetworkStream:
        self._send()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._receiver, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.abort()
            raise httpcore2.ConnectTimeout(f"the TLS handshake took over {timeout:g} s") from exc
        except (OSError, ssl.SSLError) as exc:
            self._transport.abort()
            raise httpcore2.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:  # typed as possible; asyncio raises instead on 3.11+
            self._transport.abort()
            raise httpcore2.ConnectError("the connection closed during the TLS handshake")
        self._receiver.transport = transport
        return _Stream(transport, self._receiver)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Idle and readable means the other side closed (or sent junk): either way the
            # connection is not reused. What arrived may not have been read by the loop yet.
            return (
                bool(self._receiver.received) or self._receiver.ended or _readable(self._transport)
            )
        key = _EXTRA.get(info)
        return None if key is None else self._transport.get_extra_info(key)


_EXTRA = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername",
          "socket": "socket"}  # fmt: skip
"""httpcore2's names of connection facts, as asyncio's transports call them."""


def _readable(transport: asyncio.Transport) -> bool:
    """Whether the socket has something to read (or cannot tell): poll, as httpcore2 does,
    since ``select`` refuses descriptors past 1023."""
    try:
        sock = transport.get_extra_info("socket")
        if sock is None or sock.fileno() < 0:
            return True
        if sys.platform == "win32":
            ready, _, _ = select.select([sock.fileno()], [], [], 0)
            return bool(ready)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True  # not reused: a fresh connection is the safe answer
