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
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, Self

import anyio
import mcp_types as mt
from fastmcp.client.transports import ClientTransport, StdioTransport
from fastmcp.client.transports.base import SessionKwargs, TransportOptions
from mcp import ClientSession
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

from agents_mcp.lines import Backlog, Splitter

log = logging.getLogger("agents_mcp.downstream.pipes")

EXIT_GRACE = 2.0
"""Seconds a server has to exit after its stdin closes, and again after SIGTERM."""
EOF_AFTER_EXIT = 0.5
"""Seconds after a server's exit to end its stdout, if a process it left still holds it."""


@dataclass(frozen=True)
class Command:
    """How a stdio server is started: its argv, what it adds to the SDK's default set of
    login variables (``mcp.client.stdio.get_default_environment``), its directory, and the
    file its stderr goes to."""

    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    log_file: Path | None = None

    async def spawn(self, sink: LineSink) -> Child:
        with contextlib.ExitStack() as files:
            errlog = files.enter_context(self.log_file.open("a")) if self.log_file else None
            return await Child.spawn(
                [self.command, *self.args],
                env=get_default_environment() | dict(self.env),
                cwd=self.cwd,
                stderr=errlog,  # the child has its own copy of the descriptor
                sink=sink,
            )


def stdio_transport(command: Command) -> ClientTransport:
    """The transport to a stdio server: :class:`PipeTransport`, or fastmcp's on Windows."""
    if sys.platform == "win32":  # pragma: no cover
        return StdioTransport(
            command.command,
            list(command.args),
            env=dict(command.env),
            cwd=command.cwd,
            keep_alive=False,
            log_file=command.log_file,
        )
    return PipeTransport(command)


class PipeTransport(ClientTransport):
    """One child process per connection, started as ``command`` says."""

    def __init__(self, command: Command) -> None:
        self.command = command

    @contextlib.asynccontextmanager
    async def connect_session(
        self, *, transport_options: TransportOptions | None = None, **kwargs: Any
    ) -> AsyncIterator[ClientSession]:
        session_class, session_kwargs = session_for(transport_options, kwargs)
        lines = Lines()
        child = await self.command.spawn(lines)
        lines.attach(child)
        try:
            async with session_class(lines, child.writer, **session_kwargs) as session:
                yield session
        finally:
            with anyio.CancelScope(shield=True):
                await child.stop()

    def __repr__(self) -> str:
        return f"<PipeTransport({self.command.command!r})>"


def session_for(
    transport_options: TransportOptions | None, kwargs: dict[str, Any]
) -> tuple[type[ClientSession], SessionKwargs]:
    """What a transport's ``connect_session`` opens: the session class fastmcp asks for,
    :func:`unchecked`, and the keyword arguments it gives that class."""
    options = transport_options or TransportOptions()
    session_kwargs: SessionKwargs = kwargs  # type: ignore[assignment]
    return unchecked(options.session_class), session_kwargs


def unchecked(session_class: type[ClientSession]) -> type[ClientSession]:
    """``session_class`` without the check of tool results against their output schema
    (its public ``validate_tool_result``): the model reads a result's content, so a
    structured part that does not match its schema is no reason to withhold the result.
    Every downstream transport uses it; our own stdio session does not check either."""

    class Unchecked(session_class):  # type: ignore[valid-type,misc]
        async def validate_tool_result(self, name: str, result: mt.CallToolResult) -> None:
            return None

    return Unchecked


class LineSink(Protocol):
    """Who reads a child's stdout: one call per non-blank line, then one at its end."""

    def line(self, data: bytes) -> None: ...

    def eof(self) -> None: ...


class _Protocol(asyncio.SubprocessProtocol):
    """The child's events: stdout cut into lines for its sink, stdin's state for its
    :class:`Writer`, and its exit."""

    def __init__(self, sink: LineSink) -> None:
        self.sink = sink
        self.writer = Writer()
        self.exited = asyncio.Event()
        self.discarding = False
        self._lines = Splitter()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd != 1 or self.discarding:
            return
        for line in self._lines.feed(data):
            if line.strip():
                try:
                    self.sink.line(line)
                except Exception:  # one bad line must not lose the lines after it
                    log.exception("a line from the server could not be handled")

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.sink.eof()
        elif fd == 0:
            self.writer.lost()

    def process_exited(self) -> None:
        self.exited.set()
        # Its stdout ends with it, unless a process it started holds it open: then the
        # connection is over all the same, once what it wrote before exiting is read.
        asyncio.get_running_loop().call_later(EOF_AFTER_EXIT, self.sink.eof)

    def pause_writing(self) -> None:
        self.writer.pause()

    def resume_writing(self) -> None:
        self.writer.resume()


class Child:
    """A spawned server: its transport (asyncio's, public API), its stdin's
    :class:`Writer`; its stdout goes, line by line, to the sink it was spawned with."""

    def __init__(self, transport: asyncio.SubprocessTransport, protocol: _Protocol) -> None:
        self.transport = transport
        self.protocol = protocol
        self.writer = protocol.writer
        stdin = transport.get_pipe_transport(0)
        stdout = transport.get_pipe_transport(1)
        assert isinstance(stdin, asyncio.WriteTransport)
        assert isinstance(stdout, asyncio.ReadTransport)
        self.writer.attach(stdin)
        self._stdout = stdout

    @classmethod
    async def spawn(
        cls,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: str | None,
        stderr: IO[str] | None,
        sink: LineSink,
    ) -> Child:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _Protocol(sink),
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

    def pause_reading(self) -> None:
        self._stdout.pause_reading()

    def resume_reading(self) -> None:
        self._stdout.resume_reading()

    async def stop(self) -> None:
        """Close stdin, wait for the exit, escalate (SIGTERM, SIGKILL to the group); bounded."""
        self.protocol.discarding = True  # a server blocked writing stdout cannot exit
        self.resume_reading()
        self.writer.close()
        if not await self._exited_within(EXIT_GRACE):
            self._signal(signal.SIGTERM)
            if not await self._exited_within(EXIT_GRACE):
                self._signal(signal.SIGKILL)
                if not await self._exited_within(EXIT_GRACE):
                    log.warning("server process %d survived SIGKILL; abandoning it", self.pid)
        self._signal(signal.SIGKILL)  # what it started and left behind, in its group
        self.transport.close()

    async def _exited_within(self, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            await self.protocol.exited.wait()
        return self.protocol.exited.is_set()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)  # pgid == pid: start_new_session


class _Endpoint:
    """The stream methods a session calls that have nothing to do here: the pipes are the
    child's, closed by :meth:`Child.stop` after the session."""

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class Lines(_Endpoint):
    """The server's stdout as the SDK session's read stream: one parsed JSON-RPC message
    (or the error parsing it) per line. Reading pauses while many wait unread."""

    def __init__(self) -> None:
        self._backlog: Backlog[SessionMessage | Exception] = Backlog()

    def attach(self, child: Child) -> None:
        self._backlog.source = child

    def line(self, data: bytes) -> None:
        self._backlog.put(_parse(data))

    def eof(self) -> None:
        self._backlog.end()

    async def receive(self) -> SessionMessage | Exception:
        return await self._backlog.take()

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(mt.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        log.warning("a line from the server is not a JSON-RPC message: %s", exc)
        return exc


class Writer(_Endpoint):
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

    def write(self, data: bytes) -> None:
        """Queue ``data`` (whole lines) for the child; it goes out as the pipe takes it."""
        stdin = self._stdin
        if self._gone or stdin is None or stdin.is_closing():
            raise anyio.BrokenResourceError("the server's stdin is closed")
        stdin.write(data)

    async def drain(self) -> None:
        """Wait while the pipe's buffer is over its high-water mark."""
        if not self._drained.is_set():
            await self._drained.wait()
            if self._gone:
                raise anyio.BrokenResourceError("the server's stdin is closed")

    async def send(self, item: SessionMessage, /) -> None:
        data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
        self.write(data.encode() + b"\n")
        await self.drain()


__all__ = [
    "Child",
    "LineSink",
    "Lines",
    "PipeTransport",
    "Writer",
    "session_for",
    "stdio_transport",
    "unchecked",
]
