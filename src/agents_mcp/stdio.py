"""The server's own stdio: the protocol's lines read and written on the event loop, and
Ctrl-C that ends the input.

mcp's ``stdio_server`` reads stdin and writes stdout through anyio's file wrappers, so each
line read, each write and each flush is a hop to a worker thread and back: three per
request a client sends, about 0.3 ms of the server's CPU in all (measured with
``tools/list`` over pipes: 4.4 against 4.8 ms). When stdin and stdout are
pipes or sockets (what every MCP client gives its servers), :func:`serve` reads and writes
them with asyncio's pipe transports instead, and hands them to that same ``stdio_server``
as its explicit streams: framing, parsing, errors and the session are the SDK's. Anything
else (a terminal, a file, Windows) is served by fastmcp's ``run_stdio_async`` as before.

The pipes are made non-blocking, so they are first given an open-file description of
their own (``/proc/self/fd``), which the client and stderr never share; a socket cannot
be reopened, and is used as it is unless it is stderr's too. As the SDK does, fd 0 reads
the null device and fd 1 writes to stderr while serving, so neither a child process nor
a stray ``print`` touches the protocol's bytes.

Serving this way goes through two private attributes of fastmcp's server,
``_lifespan_manager`` and ``_mcp_server``, exactly as its own ``run_stdio_async`` does;
``tests/test_stdio.py`` pins that method's steps, so a fastmcp that serves stdio another
way fails a test instead of being half followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import select
import signal
import stat
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import anyio
from fastmcp import FastMCP
from fastmcp.server.context import reset_transport, set_transport
from fastmcp.utilities.logging import temporary_log_level
from mcp.server.stdio import stdio_server

log = logging.getLogger("agents_mcp.stdio")

LOG_LEVEL = "WARNING"
"""fastmcp's own log level while serving stdio (its INFO lines would go to the client's log)."""
FLUSH_SECONDS = 2.0
"""How long the last answers have to reach a client that stopped reading, at exit."""
_QUEUE_HIGH = 64
"""Lines read and not yet taken by the session before stdin is paused."""


@dataclass
class Keyboard:
    """stdin made interruptible: the first Ctrl-C ends the input as if the client had
    closed it (the server then shuts down the normal way); a second one interrupts."""

    wire: int
    """A private copy of the protocol's input (fd 0 itself reads the null device)."""
    wake: int
    """Readable once Ctrl-C was pressed."""
    pressed: list[bool] = field(default_factory=list)

    def interrupted(self) -> bool:
        return bool(self.pressed)


@contextlib.contextmanager
def keyboard() -> Iterator[Keyboard]:
    """While open, Ctrl-C ends stdin (POSIX). ``sys.stdin`` reads the wire too, for the
    thread-based reader of the SDK: a thread blocked in ``read()`` cannot be cancelled, so
    that stream also watches the wake-up pipe."""
    wake_r, wake_w = os.pipe()
    wire = os.dup(0)  # not inherited by children
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    keys = Keyboard(wire, wake_r)

    def on_sigint(signum: int, frame: object) -> None:
        if keys.pressed:
            raise KeyboardInterrupt
        keys.pressed.append(True)
        os.write(wake_w, b"x")

    stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BufferedReader(_WakeableStdin(wire, wake_r)), encoding="utf-8")
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield keys
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.stdin = stdin
        os.dup2(wire, 0)
        for fd in (wire, wake_r, wake_w):
            os.close(fd)


class _WakeableStdin(io.RawIOBase):
    """The protocol's input, except that it reads end-of-file once ``wake`` is readable."""

    def __init__(self, fd: int, wake: int) -> None:
        self._fd = fd
        self._wake = wake

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        ready, _, _ = select.select([self._fd, self._wake], [], [])
        if self._wake in ready:
            return 0
        return os.readv(self._fd, [buffer])


async def serve(mcp: FastMCP, keys: Keyboard | None) -> None:
    """Serve ``mcp`` over stdio until the input ends (the client left, or Ctrl-C)."""
    async with _pipes(keys) as pipes:
        if pipes is None:
            await mcp.run_stdio_async(show_banner=False, log_level=LOG_LEVEL)
            return
        lines, out = pipes
        low = mcp._mcp_server
        token = set_transport("stdio")
        try:
            with temporary_log_level(LOG_LEVEL):
                async with (
                    mcp._lifespan_manager(),
                    stdio_server(cast(Any, lines), cast(Any, out)) as (read, write),
                ):
                    await low.run(read, write, low.create_initialization_options())
        finally:
            reset_transport(token)


@contextlib.asynccontextmanager
async def _pipes(keys: Keyboard | None) -> AsyncIterator[tuple[Lines, Output] | None]:
    """stdin and stdout as asyncio transports, or None when they cannot be."""
    if keys is None or sys.platform == "win32":
        yield None
        return
    wire_out = os.dup(1)
    try:
        reader = _own(keys.wire, "r")
        writer = _own(wire_out, "w", shared_with=2) if reader else None
        if reader is None or writer is None:
            log.debug("stdio: through the SDK's reader and writer threads")
            if reader is not None:
                reader.close()
            yield None
            return
        loop = asyncio.get_running_loop()
        lines, out = Lines(), Output()
        await loop.connect_read_pipe(lambda: lines, reader)
        write_transport, _ = await loop.connect_write_pipe(lambda: out, writer)

        def woke() -> None:  # Ctrl-C: the input ends here (the wake pipe stays readable)
            loop.remove_reader(keys.wake)
            lines.eof_received()

        loop.add_reader(keys.wake, woke)
        os.dup2(2, 1)  # a stray print goes to stderr, as with the SDK's claim of fd 1
        log.debug("stdio: stdin and stdout on the event loop")
        try:
            yield lines, out
        finally:
            os.dup2(wire_out, 1)
            loop.remove_reader(keys.wake)
            lines.close()
            write_transport.close()  # after what is still buffered is written
            with anyio.CancelScope(shield=True), anyio.move_on_after(FLUSH_SECONDS):
                await out.closed.wait()
            if not out.closed.is_set():
                write_transport.abort()
            for fd in (keys.wire, wire_out):  # a socket's only description: as it was
                os.set_blocking(fd, True)
    finally:
        os.close(wire_out)


def _own(fd: int, mode: Literal["r", "w"], *, shared_with: int | None = None) -> io.FileIO | None:
    """A file of the wire for asyncio, which makes it non-blocking: a pipe reopened as an
    open-file description of its own, which nobody else shares; a socket as it is (it
    cannot be reopened), unless it is ``shared_with``'s too. None for anything else."""
    flags = (os.O_RDONLY if mode == "r" else os.O_WRONLY) | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        kind = os.fstat(fd).st_mode
        if stat.S_ISFIFO(kind):
            return io.FileIO(os.open(f"/proc/self/fd/{fd}", flags), mode)
        if stat.S_ISSOCK(kind) and not (shared_with is not None and _same_file(fd, shared_with)):
            return io.FileIO(os.dup(fd), mode)  # not inherited by children
    except OSError as exc:  # no /proc, or a pipe without a reader
        log.debug("stdio: fd %d cannot be opened for the event loop: %s", fd, exc)
    return None


def _same_file(a: int, b: int) -> bool:
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


class Lines(asyncio.Protocol):
    """stdin as the SDK's ``stdin`` stream: an async iterator of its lines (text)."""

    def __init__(self) -> None:
        self._lines: deque[str] = deque()
        self._partial: list[bytes] = []
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.ReadTransport, transport)

    def data_received(self, data: bytes) -> None:
        *complete, rest = data.split(b"\n")
        if complete:
            complete[0] = b"".join([*self._partial, complete[0]])
            self._partial = []
            self._lines.extend(line.decode("utf-8", "replace") for line in complete)
            self._wake()
            if len(self._lines) >= _QUEUE_HIGH and self._transport and not self._paused:
                self._paused = True
                self._transport.pause_reading()
        if rest:
            self._partial.append(rest)

    def eof_received(self) -> bool:
        if self._partial:  # a last line without its newline is still a line
            self._lines.append(b"".join(self._partial).decode("utf-8", "replace"))
            self._partial = []
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof_received()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> str:
        while True:
            while not self._lines:
                if self._eof:
                    raise StopAsyncIteration
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
            line = self._lines.popleft()
            if self._paused and len(self._lines) < _QUEUE_HIGH // 2 and self._transport:
                self._paused = False
                self._transport.resume_reading()
            if line.strip():
                return line


class Output(asyncio.Protocol):
    """stdout as the SDK's ``stdout`` stream: ``write`` queues a line, ``flush`` waits
    while the pipe's buffer is over its high-water mark."""

    def __init__(self) -> None:
        self._transport: asyncio.WriteTransport | None = None
        self._drained = asyncio.Event()
        self._drained.set()
        self._gone = False
        self.closed = asyncio.Event()
        """Set once stdout is closed (and what was written before, flushed)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.WriteTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self._drained.set()
        self.closed.set()

    def pause_writing(self) -> None:
        self._drained.clear()

    def resume_writing(self) -> None:
        self._drained.set()

    async def write(self, text: str) -> None:
        transport = self._transport
        if self._gone or transport is None or transport.is_closing():
            raise BrokenPipeError("the client's end of stdout is closed")
        transport.write(text.encode())

    async def flush(self) -> None:
        if not self._drained.is_set():
            await self._drained.wait()
        if self._gone:
            raise BrokenPipeError("the client's end of stdout is closed")


__all__ = ["Keyboard", "keyboard", "serve"]
