"""The server's own stdio: the protocol's lines read and written on the event loop, and
Ctrl-C that ends the input.

mcp's ``stdio_server`` reads stdin and writes stdout through anyio's file wrappers, so each
line read, each write and each flush is a hop to a worker thread and back: three per
request a client sends, about 0.3 ms of the server's CPU in all (measured with
``tools/list`` over pipes). When stdin and stdout are pipes or sockets (Python's clients
give pipes, Node's give sockets), :func:`serve` reads and writes them with asyncio's
transports instead, and hands them to that same ``stdio_server`` as its explicit streams:
framing, parsing, errors and the session are the SDK's. Anything else (a terminal, a
file, a socket that is also stderr, Linux's ``/proc`` missing for a pipe, Windows) is
served by fastmcp's ``run_stdio_async`` as before.

asyncio makes what it reads and writes non-blocking, so a pipe is first given an
open-file description of its own (``/proc/self/fd``), which the client and stderr never
share; a socket cannot be reopened: it is used as it is, written through a socket
transport that never reads it, and its blocking mode is put back at exit. As the SDK
does, fd 0 reads the null device and fd 1 writes to stderr while serving, so neither a
child process nor a stray ``print`` touches the protocol's bytes. At exit every answer
is written before stdout closes, however slowly the client reads (as with the SDK's
blocking writer: a line is never torn); a client that stops reading ends the input.

Serving this way goes through two private attributes of fastmcp's server,
``_lifespan_manager`` and ``_mcp_server``, exactly as its own ``run_stdio_async`` does;
``tests/server/test_stdio.py`` pins that method's steps, so a fastmcp that serves stdio another
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
import socket
import stat
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import anyio
from fastmcp import FastMCP
from fastmcp.server.context import reset_transport, set_transport
from fastmcp.utilities.logging import temporary_log_level
from mcp.server.stdio import stdio_server

from agents_mcp.lines import Backlog, Splitter

log = logging.getLogger("agents_mcp.server.stdio")

LOG_LEVEL = "WARNING"
"""fastmcp's own log level while serving stdio (its INFO lines would go to the client's log)."""
FLUSH_SECONDS = 2.0
"""How long the last answers may take to reach the client at exit before a warning says
the server waits for it to read them."""


@dataclass
class Keyboard:
    """stdin made interruptible: the first Ctrl-C ends the input as if the client had
    closed it (the server then shuts down the normal way); a second one interrupts."""

    wire: int
    """A private copy of the protocol's input (fd 0 itself reads the null device)."""
    wake: int
    """Readable once Ctrl-C was pressed."""
    pressed: bool = False

    def interrupted(self) -> bool:
        return self.pressed


@contextlib.contextmanager
def keyboard() -> Iterator[Keyboard]:
    """While open, Ctrl-C ends stdin (POSIX). ``sys.stdin`` reads the wire too, for the
    thread-based reader of the SDK: a thread blocked in ``read()`` cannot be cancelled, so
    that stream also watches the wake-up pipe."""
    wake_r, wake_w = os.pipe()
    wire = _dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    keys = Keyboard(wire, wake_r)

    def on_sigint(signum: int, frame: object) -> None:
        if keys.pressed:
            raise KeyboardInterrupt
        keys.pressed = True
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
    async with contextlib.AsyncExitStack() as stack:
        wire_out = _dup(1)
        stack.callback(os.close, wire_out)
        streams = await _connect(keys.wire, wire_out, stack)
        if streams is None:
            log.debug("stdio: through the SDK's reader and writer threads")
            yield None
            return
        lines, out = streams
        loop = asyncio.get_running_loop()

        def woke() -> None:  # Ctrl-C: the input ends here (the wake pipe stays readable)
            loop.remove_reader(keys.wake)
            lines.end()

        loop.add_reader(keys.wake, woke)
        stack.callback(loop.remove_reader, keys.wake)
        os.dup2(2, 1)  # a stray print goes to stderr, as with the SDK's claim of fd 1
        stack.callback(os.dup2, wire_out, 1)
        log.debug("stdio: stdin and stdout on the event loop")
        yield lines, out


async def _connect(
    wire_in: int, wire_out: int, stack: contextlib.AsyncExitStack
) -> tuple[Lines, Output] | None:
    """The transports of the two wires, closed by ``stack`` (stdout after what is still
    buffered is written), which also leaves a socket's blocking mode as it found it."""
    reader = _readable(wire_in)
    writer = _writable(wire_out) if reader is not None else None
    if reader is None or writer is None:
        if reader is not None:
            reader.close()
        return None
    blocking = {fd: os.get_blocking(fd) for fd in (wire_in, wire_out)}
    stack.callback(_set_blocking, blocking)  # a socket's only description: as it was
    loop = asyncio.get_running_loop()
    lines = Lines()
    out = Output(lost=lines.end)  # a client that stops reading has left
    try:
        read_transport, _ = await loop.connect_read_pipe(lambda: lines, reader)
    except BaseException:
        reader.close()
        writer.close()
        raise
    stack.callback(read_transport.close)
    try:
        if isinstance(writer, socket.socket):  # a pipe transport would close on a read
            transport, _ = await loop.connect_accepted_socket(lambda: out, writer)
            transport.pause_reading()
        else:
            await loop.connect_write_pipe(lambda: out, writer)
    except BaseException:
        writer.close()
        raise
    stack.push_async_callback(out.aclose)
    return lines, out


def _readable(fd: int) -> io.FileIO | None:
    """stdin for asyncio, which makes it non-blocking: a pipe reopened as an open-file
    description of its own, which nobody else shares; a socket as it is (it cannot be
    reopened), unless it is stderr too. None for anything else."""
    try:
        kind = os.fstat(fd).st_mode
        if stat.S_ISFIFO(kind):
            return io.FileIO(_reopen(fd, os.O_RDONLY), "r")
        if stat.S_ISSOCK(kind) and not _same_file(fd, 2):
            return io.FileIO(_dup(fd), "r")
    except OSError as exc:  # no /proc (macOS)
        log.debug("stdio: stdin cannot be read on the event loop: %s", exc)
    return None


def _writable(fd: int) -> io.FileIO | socket.socket | None:
    """stdout for asyncio, as :func:`_readable` chooses; a stream socket is written through
    a socket transport, which never reads it (a pipe transport would take the first byte
    or half-close the client sends on it for the end of the connection)."""
    try:
        kind = os.fstat(fd).st_mode
        if stat.S_ISFIFO(kind):
            return io.FileIO(_reopen(fd, os.O_WRONLY), "w")
        if stat.S_ISSOCK(kind) and not _same_file(fd, 2):
            sock = socket.socket(fileno=_dup(fd))
            if sock.type == socket.SOCK_STREAM:
                return sock
            sock.close()
    except OSError as exc:  # no /proc (macOS), or a pipe without a reader
        log.debug("stdio: stdout cannot be written on the event loop: %s", exc)
    return None


def _reopen(fd: int, mode: int) -> int:
    return os.open(f"/proc/self/fd/{fd}", mode | os.O_NONBLOCK | os.O_CLOEXEC)


def _dup(fd: int) -> int:
    """A private, non-inherited copy of ``fd``, never one of the standard descriptors."""
    import fcntl  # POSIX only, as the callers

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _set_blocking(modes: dict[int, bool]) -> None:
    for fd, blocking in modes.items():
        with contextlib.suppress(OSError):
            os.set_blocking(fd, blocking)


def _same_file(a: int, b: int) -> bool:
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


class Lines(asyncio.Protocol):
    """stdin as the SDK's ``stdin`` stream: an async iterator of its lines (text), blank
    ones skipped; a last line without its newline is a line too."""

    def __init__(self) -> None:
        self._split = Splitter()
        self._backlog: Backlog[str] = Backlog()
        self._transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = self._backlog.source = cast(asyncio.ReadTransport, transport)

    def _put(self, line: bytes) -> None:
        if line.strip():
            self._backlog.put(line.decode("utf-8", "replace"))

    def data_received(self, data: bytes) -> None:
        for line in self._split.feed(data):
            self._put(line)

    def eof_received(self) -> bool:
        self._put(self._split.rest())
        self._backlog.end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof_received()

    def end(self) -> None:
        """The input ends here (Ctrl-C, or the client stopped reading): a line half
        received is dropped, and nothing more is read; lines already whole are served."""
        self._split.rest()
        self._backlog.end()
        if self._transport is not None:
            self._transport.pause_reading()

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> str:
        try:
            return await self._backlog.take()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class Output(asyncio.Protocol):
    """stdout as the SDK's ``stdout`` stream: ``write`` queues a line, ``flush`` waits
    while the transport's buffer is over its high-water mark. Once the client's end is
    gone, ``lost`` is called and writes raise ``ClosedResourceError`` (the SDK's writer
    then ends quietly)."""

    def __init__(self, lost: Callable[[], None]) -> None:
        self._lost = lost
        self._transport: asyncio.WriteTransport | None = None
        self._drained = asyncio.Event()
        self._drained.set()
        self._gone = False
        self.closed = asyncio.Event()
        """Set once stdout is closed (and what was written before, flushed)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        """A socket's incoming bytes are not the protocol's (it reads stdin): ignored."""

    def eof_received(self) -> bool:
        return True  # a socket the client half-closes still takes our answers

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self._drained.set()
        self.closed.set()
        self._lost()

    def pause_writing(self) -> None:
        self._drained.clear()

    def resume_writing(self) -> None:
        self._drained.set()

    async def write(self, text: str) -> None:
        transport = self._transport
        if self._gone or transport is None or transport.is_closing():
            raise anyio.ClosedResourceError("the client's end of stdout is closed")
        transport.write(text.encode())

    async def flush(self) -> None:
        if not self._drained.is_set():
            await self._drained.wait()
        if self._gone:
            raise anyio.ClosedResourceError("the client's end of stdout is closed")

    async def aclose(self) -> None:
        """Close stdout once every answer is written: as the SDK's blocking writer, wait
        for a client that is slow to read them (never tear a line), and say so."""
        if self._transport is None:
            return
        self._transport.close()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(FLUSH_SECONDS):
                await self.closed.wait()
            if not self.closed.is_set():
                log.warning(
                    "stdio: waiting for the client to read the last answers (%d bytes)",
                    self._transport.get_write_buffer_size(),
                )
                await self.closed.wait()


__all__ = ["Keyboard", "keyboard", "serve"]
