"""Real processes for end-to-end tests: downstream servers and agents-mcp itself."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

import anyio
import uvicorn
from anyio.abc import Process

from agents_mcp.config import Config
from agents_mcp.llm import LLM
from agents_mcp.server.app import create_server
from agents_mcp.server.transports import http_app, http_auth
from tests.conftest import DOWNSTREAM
from tests.preloader import launched

ROOT = Path(__file__).parent.parent


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def http_downstream(
    name: str, env: dict[str, str] | None = None, *, extra: bool = False
) -> Iterator[str]:
    """A downstream server in its own process over streamable HTTP; yields its URL.
    ``extra``: with the tools of ``--extra`` (see ``tests/downstream_server.py``)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, DOWNSTREAM, "--name", name, "--fd", str(sock.fileno())]
        + (["--extra"] if extra else []),
        pass_fds=[sock.fileno()],
        env={**os.environ, **(env or {})},
        stderr=subprocess.DEVNULL,
    )
    sock.close()
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        _stop(proc)


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """Write a JSON config (the loader accepts JSON as well as TOML)."""
    path.write_text(json.dumps(data, indent=2))
    return path


def _port_block() -> range:
    """The ports this test process hands out: below the kernel's ephemeral range (which
    ``bind(("", 0))`` and every outgoing connection draw from, so a port found free there
    may be taken before the server binds it), one block per xdist worker (so two workers
    never pick the same one)."""
    low = 32768
    with suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    first, last = 20000, max(low, 21000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    size = (last - first) // max(workers, 1)
    start = first + int(worker if worker.isdigit() else 0) % max(workers, 1) * size
    return range(start, start + size)


_BLOCK = _port_block()
# Where in the block to start: another test run on this machine likely starts elsewhere.
_next = [random.SystemRandom().randrange(len(_BLOCK))]


def free_port() -> int:
    """A port nobody listens on, for a server a test starts (in a subprocess) to bind: the
    next one of this process's block that can be bound now (none is handed out twice in
    a row). Nothing else in the test run takes it in between (see :func:`_port_block`)."""
    for _ in range(len(_BLOCK)):
        port = _BLOCK[_next[0] % len(_BLOCK)]
        _next[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering): the next one
            return port
    raise RuntimeError(f"no free port in {_BLOCK}")


@asynccontextmanager
async def agents_mcp_http(
    config: Path,
    db: Path,
    *,
    port: int,
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    command: list[str] | None = None,
) -> AsyncIterator[str]:
    """``agents-mcp serve --transport http`` in a subprocess; yields the MCP URL.

    ``command`` replaces the CLI (a program that serves on ``port`` some other way).
    """
    async with agents_mcp_http_process(
        config, port=port, db=db, env=env, host=host, command=command
    ):
        yield f"http://127.0.0.1:{port}/mcp"


@asynccontextmanager
async def agents_mcp_http_process(
    config: Path,
    *,
    port: int,
    db: Path | str | None = None,
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    command: list[str] | None = None,
) -> AsyncIterator[Process]:
    """``agents-mcp serve --transport http`` in a subprocess, once it listens (its banner
    says so; its stderr is relayed to ours); without ``db``, the config's database;
    ``command`` replaces the CLI (a program that serves on ``port``, watched from outside)."""
    ours = command is None
    if command is None:  # forked from the preloader (tests/preloader.py)
        command = launched("agents-mcp", "serve", "--config", str(config))
        command += ["--transport", "http", "--port", str(port), "--host", host]
        if db is not None:
            command += ["--db", str(db)]
    proc = await anyio.open_process(
        command,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        stdout=None,
        stderr=subprocess.PIPE if ours else None,
    )
    async with anyio.create_task_group() as tg:
        relayed = anyio.Event()
        try:
            if ours:
                await _until_banner(proc, tg, relayed)
            else:
                await _wait_for_port(port, proc)
            yield proc
        finally:
            if proc.returncode is None:
                proc.terminate()
            with anyio.move_on_after(10, shield=True):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
            with anyio.move_on_after(5 if ours else 0, shield=True):
                await relayed.wait()  # its last lines (a child of its own may hold the pipe)
            tg.cancel_scope.cancel()


async def _until_banner(proc: Process, tg: anyio.abc.TaskGroup, relayed: anyio.Event) -> None:
    """Wait for serve's banner, which it prints once its port accepts connections; its
    stderr goes on to ours (relayed by a task in ``tg``, which sets ``relayed`` at its end)."""
    listening = anyio.Event()
    seen = bytearray()

    async def relay() -> None:
        assert proc.stderr is not None
        try:
            async for chunk in proc.stderr:
                sys.stderr.write(chunk.decode(errors="replace"))
                if not listening.is_set():
                    seen.extend(chunk)
                    if _BANNER.search(seen):
                        listening.set()
        finally:
            listening.set()  # the process closed its stderr: the waiter sees why
            relayed.set()

    tg.start_soon(relay)
    with anyio.fail_after(60):
        await listening.wait()
    if not _BANNER.search(seen):
        with anyio.fail_after(10):
            code = await proc.wait()
        raise RuntimeError(f"agents-mcp exited with {code} before listening: {seen.decode()}")


_BANNER = re.compile(rb"(?m)^agents-mcp [^ :]+: .* on http://")
"""``serve``'s banner over HTTP (``cli.serving``)."""


async def _wait_for_port(port: int, proc: Process) -> None:
    # Another program: readiness is observed from outside, a bounded poll.
    with anyio.fail_after(60):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the server exited with {proc.returncode} before listening")
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)
                continue
            await stream.aclose()
            return


def _listening() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port: int = sock.getsockname()[1]
    return sock, port


class _Embedded(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest owns SIGINT/SIGTERM


@asynccontextmanager
async def asgi_on_loopback(
    app: Any, *, lifespan: Literal["auto", "on", "off"] = "off"
) -> AsyncIterator[str]:
    """An ASGI app served on loopback in this event loop; yields its base URL.

    The socket listens before uvicorn starts (early connections wait in the backlog), and
    the server always stops gracefully: a cancelled uvicorn leaves its listener and its
    app's lifespan behind, and the next server to reuse the socket's number breaks.
    """
    sock, port = _listening()
    config = uvicorn.Config(
        app, log_config=None, lifespan=lifespan, timeout_graceful_shutdown=2, ws="none"
    )
    server = _Embedded(config)
    stopped = anyio.Event()
    serve_scope = anyio.CancelScope(shield=True)

    async def run() -> None:
        try:
            with serve_scope:
                await server.serve(sockets=[sock])
        finally:
            stopped.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
                with anyio.move_on_after(10, shield=True):
                    await stopped.wait()
                serve_scope.cancel()
    finally:
        for listener in server.servers:
            listener.close()
        sock.close()


@asynccontextmanager
async def agents_mcp_in_process(
    config: Config,
    db: str | Path,
    *,
    llms: Mapping[str, LLM] | None = None,
    transports: Mapping[str, Any] | None = None,
) -> AsyncIterator[str]:
    """agents-mcp over real HTTP in this process, built as ``serve`` builds it (auth,
    per-caller views, Host checks); yields the MCP URL."""
    async with asgi_on_loopback(_app(config, db, llms, transports), lifespan="on") as base:
        yield f"{base}/mcp"


def _app(
    config: Config,
    db: str | Path,
    llms: Mapping[str, LLM] | None,
    transports: Mapping[str, Any] | None,
) -> Any:
    # The auth provider names the port in its metadata document; the port is only known
    # once bound, so the app is built for 127.0.0.1 and the port the metadata is about is
    # irrelevant to these tests (see test_auth for a server that knows its own URL).
    auth = http_auth(config, host="127.0.0.1", port=0)
    mcp = create_server(config, db_path=db, llms=llms, transports=transports, auth=auth)
    return http_app(mcp, host="127.0.0.1")
