"""``agents-mcp serve``: run the MCP server until the client leaves or Ctrl-C.

Over stdio, Ctrl-C (and SIGTERM) ends the input as if the client had closed it
(:func:`agents_mcp.server.transports.serve_stdio`), and the server shuts down the normal
way (threads saved, downstream servers stopped). Over HTTP, the banner comes once the port
accepts connections, and Ctrl-C at any moment stops it without a traceback
(:mod:`agents_mcp.server.stopping`). Exit code 130 after Ctrl-C, else 0.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import anyio
from pydantic import ValidationError

from agents_mcp import __version__, telemetry
from agents_mcp.cli import collector
from agents_mcp.cli.invocation import Invocation
from agents_mcp.errors import AgentsMCPError, InvalidRequest

INTERRUPTED = 130
STOPPED = "agents-mcp: stopped (Ctrl-C)"
GC_THRESHOLD = 10_000
"""Container allocations between two young-generation collections (CPython's default is
700): a server allocates a few thousand per conversation, and each collection promotes
what is still in flight, so the default collects the old generations often too."""


def tune_gc() -> None:
    """Garbage collection for a long-running server.

    What is loaded when the server starts (fastmcp, pydantic and their schemas, about
    150 000 objects) lives as long as the process: :func:`gc.freeze` takes it out of
    every later collection, which otherwise walks it each time the oldest generation is
    collected (about 0.2 s at 400 concurrent conversations, and more often the more
    conversations are in flight). And the young generation is collected every
    :data:`GC_THRESHOLD` allocations rather than every 700. Measured over HTTP at 400
    concurrent conversations: about 2 ms less server CPU per conversation
    (``benchmarks/results``). The freeze is :func:`collector.loaded`'s, which also turns
    the collector back on after loading.
    """
    collector.loaded()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def run(
    invocation: Invocation,
    *,
    transport: Literal["stdio", "http"],
    host: str,
    port: int,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
) -> int:
    """Serve until stopped; the exit code."""
    from agents_mcp.server.transports import serve
    from agents_mcp.store import shown

    config = invocation.load()
    _check_lists(allowed_hosts, allowed_origins)
    if transport == "http":
        _check_port(host, port)
    where = "stdio" if transport == "stdio" else f"http://{host}:{port}/mcp"
    banner = (
        f"agents-mcp {__version__}: {len(config.agents)} agent(s) ({', '.join(config.agents)})"
        f" on {where}; threads in {shown(invocation.db_path(config))}"
    )

    def listening() -> None:
        # stderr only: over stdio, stdout is the protocol. Desktop apps keep this in their
        # logs. Over HTTP, once the port accepts connections: a client may connect now.
        print(banner, file=sys.stderr, flush=True)

    async def main() -> bool:
        return await serve(
            config,
            transport=transport,
            host=host,
            port=port,
            db_path=invocation.db,
            allowed_hosts=allowed_hosts,
            allowed_origins=allowed_origins,
            on_listening=listening,
        )

    stop_telemetry = telemetry.setup(config.server.telemetry)
    try:
        return _serve(main, stop_telemetry is not None)
    finally:
        if stop_telemetry is not None:
            stop_telemetry()  # what is still buffered is exported before we exit


def _serve(main: Callable[[], Awaitable[bool]], traced: bool) -> int:
    from agents_mcp.server.stopping import hold_stop_signals, release_stop_signals

    tune_gc()
    if traced and os.name == "posix":
        # SIGTERM where no handler of serve's takes it (over stdio) ends the process at
        # once: an exit instead, so the spans still buffered are exported.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    hold_stop_signals()  # until serve handles them: Ctrl-C at any moment stops it cleanly
    try:
        stopped = anyio.run(main)
    except KeyboardInterrupt:  # elsewhere than POSIX, Ctrl-C is this
        stopped = True
    finally:
        release_stop_signals()
    if stopped:
        _stopped()
        return INTERRUPTED
    return 0


def _stopped() -> None:
    # A terminal has echoed "^C": start a line of our own. One write, line and newline
    # together: a thread still winding down (aiosqlite's, logging with --debug) may
    # write at the same moment, and must not end up on our line.
    sys.stderr.write(f"{chr(10) if sys.stderr.isatty() else ''}{STOPPED}\n")
    sys.stderr.flush()


def _check_lists(allowed_hosts: Sequence[str], allowed_origins: Sequence[str]) -> None:
    """``--allowed-host``/``--allowed-origin``: the same checks (and messages) as the
    config's own lists."""
    from agents_mcp.config import ServerSettings

    try:
        ServerSettings.model_validate(
            {"allowed_hosts": list(allowed_hosts), "allowed_origins": list(allowed_origins)}
        )
    except ValidationError as exc:
        raise InvalidRequest(
            "; ".join(
                f"--{str(e['loc'][0]).replace('_', '-')[:-1]}: {e['msg']}" for e in exc.errors()
            )
        ) from None


def _check_port(host: str, port: int) -> None:
    """Fail in one line when the address is taken, before announcing anything."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return  # let the server report anything else in its own words
            raise PortInUse(
                f"cannot listen on {host}:{port}: the address is already in use"
                " (another agents-mcp serve?); choose another --port"
            ) from None


class PortInUse(AgentsMCPError):
    """The HTTP address is taken."""

    exit_code = 3
