"""A lean stdio transport for downstream MCP servers: the child's pipes, read and written
by asyncio's protocol callbacks, under the SDK's own ``ClientSession``.

The SDK's stdio client bridges the pipes to the session with two tasks and two
memory-object streams: each message crosses a task switch and a stream hand-off each way,
and every write takes an extra event-loop pass. Here a line of the server's stdout is
parsed as it arrives and handed to the session's read loop directly, and a message is
written to stdin by the caller itself. Behaviour is the SDK's: newline-delimited JSON-RPC,
a line that does not parse reaches the session as an exception item, end of stdout ends
the session (every pending request fails with "connection closed"), a write to a server
that is gone fails as a closed connection; the child runs in its own session (process
group), its stderr goes to the given file, and closing follows the MCP lifecycle: close
stdin, give the server 2 s to exit, then SIGTERM its process group, then SIGKILL.

Plugged in through public interfaces only: fastmcp's ``ClientTransport`` and the read and
write stream protocols ``ClientSession`` takes. POSIX only; on Windows
:func:`stdio_transport` gives fastmcp's own ``StdioTransport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import anyio
import mcp_types as mt
from fastmcp.client.transports import ClientTransport, StdioTransport
from fastmcp.client.transports.base import SessionKwargs, TransportOptions
from mcp import ClientSession
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

log = logging.getLogger("agents_mcp.pipes")

EXIT_GRACE = 2.0
"""Seconds a server has to exit after its stdin closes, and again after SIGTERM."""
_QUEUE_HIGH = 64
"""Parsed messages waiting for the session before the child's stdout is paused."""


def stdio_transport(
    command: str,
    args: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    log_file: Path | None,
) -> ClientTransport:
    """The transport to a stdio server: :class:`PipeTransport`, or fastmcp's on Windows."""
    if sys.platform == "win32":  # pragma: no cover
        return StdioTransport(
            command, args, env=dict(env), cwd=cwd, keep_alive=False, log_file=log_file
        )
    return PipeTransport(command, args, env=env, cwd=cwd, log_file=log_file)


class PipeTransport(ClientTransport):
    """One child process per connection; the environment is the SDK's default set of
    login variables (``mcp.client.stdio.get_default_environment``) plus ``env``."""

    def __init__(
        self,
        command: str,
        args: list[str],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        log_file: Path | None,
    ) -> None:
        self.command = command
        self.args = list(args)
        self.env = dict(env)
        self.cwd = cwd
        self.log_file = log_file

    @contextlib.asynccontextmanager
    async def connect_session(
        self, *, transport_options: TransportOptions | None = None, **kwargs: Any
    ) -> AsyncIterator[ClientSession]:
        options = transport_options or TransportOptions()
        session_kwargs: SessionKwargs = kwargs  # type: ignore[assignment]
        with contextlib.ExitStack() as files:
            errlog = files.enter_context(self.log_file.open("a")) if self.log_file else None
            child = await Child.spawn(
                [self.command, *self.args],
                env=get_default_environment() | self.env,
                cwd=self.cwd,
                stderr=errlog,
            )
            try:
                async with options.session_class(
                    child.lines, child.writer, **session_kwargs
                ) as session:
                    yield session
            finally:
                with anyio.CancelScope(shield=True):
                    await child.stop()

    def __repr__(self) -> str:
        return f"<PipeTransport({self.command!r})>"


class _Protocol(asyncio.SubprocessProtocol):
    """The child's events, forwarded to its :class:`Lines` and :class:`Writer`."""

    def __init__(self) -> None:
        self.lines = Lines()
        self.writer = Writer()
        self.exited = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self.lines.feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.lines.feed_eof()
        elif fd == 0:
            self.writer.lost()

    def process_exited(self) -> None:
        self.exited.set()

    def pause_writing(self) -> None:
        self.writer.pause()

    def resume_writing(self) -> None:
        self.writer.resume()


class Child:
    """A spawned server: its transport (asyncio's, public API) and its two pipes."""

    def __init__(self, transport: asyncio.SubprocessTransport, protocol: _Protocol) -> None:
        self.transport = transport
        self.protocol = protocol
        self.lines = protocol.lines
        self.writer = protocol.writer
        stdin = transport.get_pipe_transport(0)
        stdout = transport.get_pipe_transport(1)
        assert isinstance(stdin, asyncio.WriteTransport)
        assert isinstance(stdout, asyncio.ReadTransport)
        self.writer.attach(stdin)
        self.lines.attach(stdout)

    @classmethod
    async def spawn(
        cls, argv: list[str], *, env: dict[str, str], cwd: str | None, stderr: IO[str] | None
    ) -> Child:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            _Protocol,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,  # None: ours
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group, killed as a whole
        )
        return cls(transport, protocol)

    @property
    def pid(self) -> int:
        return self.transport.get_pid()

    async def stop(self) -> None:
        """Close stdin, wait for the exit, escalate (SIGTERM, SIGKILL to the group); bounded."""
        self.lines.discard()  # a server blocked writing stdout could not see stdin close
        self.writer.close()
        if not await self._exited_within(EXIT_GRACE):
            self._signal(signal.SIGTERM)
            if not await self._exited_within(EXIT_GRACE):
                self._signal(signal.SIGKILL)
                if not await self._exited_within(EXIT_GRACE):
                    log.warning("server process %d survived SIGKILL; abandoning it", self.pid)
        self.transport.close()

    async def _exited_within(self, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            await self.protocol.exited.wait()
        return self.protocol.exited.is_set()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)  # pgid == pid: start_new_session


class Lines:
    """The server's stdout as the session's read stream: one parsed JSON-RPC message (or
    the error parsing it) per line."""

    def __init__(self) -> None:
        self._items: deque[SessionMessage | Exception] = deque()
        self._partial: list[bytes] = []
        self._eof = False
        self._discard = False
        self._waiter: asyncio.Future[None] | None = None
        self._stdout: asyncio.ReadTransport | None = None
        self._paused = False

    def attach(self, stdout: asyncio.ReadTransport) -> None:
        self._stdout = stdout

    def feed(self, data: bytes) -> None:
        if self._discard:
            return
        *complete, rest = data.split(b"\n")
        if complete:
            complete[0] = b"".join([*self._partial, complete[0]])
            self._partial = []
            for line in complete:
                if line.strip():
                    self._items.append(_parse(line))
            self._wake()
            if len(self._items) >= _QUEUE_HIGH and self._stdout is not None:
                self._stdout.pause_reading()
                self._paused = True
        if rest:
            self._partial.append(rest)

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def discard(self) -> None:
        """From now on, read and drop whatever the server writes (shutting down)."""
        self._discard = True
        self._items.clear()
        self._resume()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _resume(self) -> None:
        if self._paused and self._stdout is not None:
            self._paused = False
            self._stdout.resume_reading()

    async def receive(self) -> SessionMessage | Exception:
        while not self._items:
            if self._eof or self._discard:
                raise anyio.EndOfStream
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if len(self._items) < _QUEUE_HIGH // 2:
            self._resume()
        return item

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Nothing to release: the pipe is the child's, closed by :meth:`Child.stop`."""

    async def __aenter__(self) -> Lines:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(mt.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        log.warning("a line from the server is not a JSON-RPC message: %s", exc)
        return exc


class Writer:
    """The server's stdin as the session's write stream: one line per message, written by
    the sender, waiting only while the pipe's buffer is over its high-water mark."""

    def __init__(self) -> None:
        self._stdin: asyncio.WriteTransport | None = None
        self._gone = False
        self._drained = asyncio.Event()
        self._drained.set()

    def attach(self, stdin: asyncio.WriteTransport) -> None:
        self._stdin = stdin

    def lost(self) -> None:
        self._gone = True
        self._drained.set()

    def pause(self) -> None:
        self._drained.clear()

    def resume(self) -> None:
        self._drained.set()

    def close(self) -> None:
        """Close stdin once what was written is flushed (asyncio's close does that)."""
        self._gone = True
        if self._stdin is not None:
            self._stdin.close()
        self._drained.set()

    async def send(self, item: SessionMessage, /) -> None:
        stdin = self._stdin
        if self._gone or stdin is None or stdin.is_closing():
            raise anyio.BrokenResourceError("the server's stdin is closed")
        data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
        stdin.write(data.encode() + b"\n")
        if not self._drained.is_set():
            await self._drained.wait()
            if self._gone:
                raise anyio.BrokenResourceError("the server's stdin is closed")

    async def aclose(self) -> None:
        """Nothing to release here: :meth:`Child.stop` closes stdin, after the session."""

    async def __aenter__(self) -> Writer:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


__all__ = ["Child", "Lines", "PipeTransport", "Writer", "stdio_transport"]
