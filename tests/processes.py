"""Real processes for end-to-end tests: downstream servers and agents-mcp itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

from tests.conftest import DOWNSTREAM

ROOT = Path(__file__).parent.parent


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def http_downstream(name: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A downstream server in its own process over streamable HTTP; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, DOWNSTREAM, "--name", name, "--fd", str(sock.fileno())],
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
    if command is None:
        command = [sys.executable, "-m", "agents_mcp", "serve", "--config", str(config)]
        command += ["--db", str(db), "--transport", "http", "--port", str(port), "--host", host]
    proc = await anyio.open_process(
        command, env={**os.environ, **(env or {})}, cwd=ROOT, stdout=None, stderr=None
    )
    try:
        await _wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        with anyio.move_on_after(10, shield=True):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()


async def _wait_for_port(port: int, proc: Process) -> None:
    # The CLI chooses its own socket, so readiness is observed from outside: a bounded poll.
    with anyio.fail_after(60):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"agents-mcp exited with {proc.returncode} before listening")
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)
                continue
            await stream.aclose()
            return
