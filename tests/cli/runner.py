"""Running ``agents-mcp`` as users do: a process of its own, in a scratch home.

A command that runs to completion (`agents_mcp`) is forked from ``tests/preloader.py``,
which has the libraries loaded already (about a second of CPU less per command), as are
``serve --transport http`` and the stdio downstream servers; one that runs in a terminal
(`Terminal`) is a new interpreter, as is ``serve`` over stdio. Models are scripted behind a Chat Completions fake on loopback that lives in
the test's event loop (so the test never blocks on a command), and the downstream server
is the real tests/downstream_server.py over stdio.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import signal
import subprocess
import sys
import termios
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Required, TypedDict

import anyio

from tests.conftest import stdio_downstream
from tests.preloader import preloaded
from tests.processes import ROOT

THREAD = re.compile(r"th_[A-Za-z0-9_-]{24}")
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "a terminal", "version": "0"},
    },
}
"""A raw ``initialize`` request (handshake era), as a client types or pipes it."""


def scratch_env(
    tmp_path: Path, *, inherit: bool = True, environ: Mapping[str, str] | None = None, **env: str
) -> dict[str, str]:
    """The environment for a CLI run: the user's (or only ``PATH`` when not ``inherit``),
    with data, state, config and home in tmp_path, then ``environ`` and ``env``."""
    base = os.environ if inherit else {"PATH": os.environ["PATH"]}
    return {
        **{k: v for k, v in base.items() if k != "AGENTS_MCP_CONFIG"},
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path / "home"),
        **(environ or {}),
        **env,
    }


class Options(TypedDict, total=False):
    """Keyword arguments of `agents_mcp` that several runs of one test share
    (``agents_mcp(*args, **options)``); variables go in ``environ``."""

    tmp_path: Required[Path]
    input: str | None
    cwd: Path
    inherit: bool
    environ: Mapping[str, str]


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def agents_mcp(
    *args: str,
    tmp_path: Path,
    input: str | None = None,
    cwd: Path = ROOT,
    inherit: bool = True,
    environ: Mapping[str, str] | None = None,
    **env: str,
) -> Ran:
    """Run ``agents-mcp ARGS`` to completion (bounded) in a process of its own, forked
    from `tests.preloader` (the libraries already loaded); never in the user's dirs. The
    variables are ``environ``'s, then ``env``'s, over `scratch_env`'s; stdin is ``input``
    (else empty)."""
    variables = scratch_env(tmp_path, inherit=inherit, environ=environ, **env)
    with anyio.fail_after(90):
        return Ran(*await preloaded(list(args), variables, cwd, input))


async def all_of(runs: dict[str, Awaitable[Ran]]) -> dict[str, Ran]:
    """Run several commands at once (each is a process: they overlap well)."""
    done: dict[str, Ran] = {}

    async def one(key: str, run: Awaitable[Ran]) -> None:
        done[key] = await run

    async with anyio.create_task_group() as tg:
        for key, run in runs.items():
            tg.start_soon(one, key, run)
    return {k: done[k] for k in runs}


def scrub(text: str, *known: tuple[str, str]) -> str:
    """Replace what changes between runs: ids, times, paths, ports."""
    for value, name in known:
        text = text.replace(value, name)
    text = re.sub(r"/\S*/pytest-of-[^/]+/pytest-\d+/(?:popen-gw\d+/)?[^/\s]+", "<tmp>", text)
    # Same lengths as the originals, so columns stay aligned.
    text = re.sub(r"th_[A-Za-z0-9_-]{24}", "th_" + "x" * 24, text)
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z", _zeros, text)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)


def _zeros(m: re.Match[str]) -> str:
    return re.sub(r"\d", "0", m[0])


def helper_config(base_url: str, *, policy: Any = "read_only", **extra: Any) -> dict[str, Any]:
    return {
        "mcpServers": {
            "notes": stdio_downstream("--name", "notes"),
            **extra.pop("servers", {}),
        },
        "models": {"main": {"base_url": base_url, "model": "fake-model"}},
        "agents": {
            "helper": {
                "description": "Takes notes",
                "model": "main",
                "servers": ["notes"],
                "require_approval": policy,
                **extra,
            }
        },
    }


class Terminal:
    """``agents-mcp ARGS`` in a pseudo-terminal, as a user's shell runs it: the process
    leads its own session with the pty as its controlling terminal, so ``^C`` typed into
    the pty reaches it as SIGINT through the line discipline."""

    def __init__(self, *args: str, tmp_path: Path, cwd: Path = ROOT, **env: str) -> None:
        self.master, slave = pty.openpty()
        self.output = b""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agents_mcp", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=scratch_env(tmp_path, environ={"TERM": "xterm", "COLUMNS": "100", **env}),
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
        os.close(slave)

    async def read_until(self, text: str, seconds: float = 60) -> str:
        """Everything the terminal showed, once ``text`` is among it."""
        with anyio.fail_after(seconds):
            while text.encode() not in self.output:
                await anyio.wait_readable(self.master)
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the process closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{text!r} never came; got {self.text()!r}")
                self.output += chunk
        return self.text()

    async def listening(self, port: int) -> None:
        """Once the process accepts connections on ``port``: ``serve`` says so in its
        banner, printed once the port is open."""
        await self.read_until(f" on http://127.0.0.1:{port}/mcp")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    async def exit_code(self, seconds: float = 30) -> int:
        code = await anyio.to_thread.run_sync(lambda: self.proc.wait(timeout=seconds))
        os.set_blocking(self.master, False)
        with contextlib.suppress(OSError):  # collect what it wrote last
            while True:
                chunk = os.read(self.master, 65536)
                if not chunk:
                    break
                self.output += chunk
        return code

    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.master)


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # after setsid: stdin's pty becomes ours
    # As a login shell does: Ctrl-C acts, even when these tests were started in the
    # background of a non-interactive shell (`cmd &`), which leaves SIGINT ignored for
    # its children, and an ignored SIGINT stays ignored across exec.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
