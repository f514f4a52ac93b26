"""``agents-mcp serve`` as a process whose stderr a test reads as it comes, to act at a
moment the server's own lines mark (send Ctrl-C while it starts, connect once it says
it listens)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from anyio.abc import Process

from tests.cli.runner import scratch_env
from tests.processes import ROOT


class Served:
    def __init__(self, proc: Process) -> None:
        self.proc = proc
        self.output = b""

    @property
    def err(self) -> str:
        return self.output.decode(errors="replace")

    async def until(self, text: str, seconds: float = 60) -> str:
        """Everything on stderr so far, once ``text`` is among it."""
        assert self.proc.stderr is not None
        with anyio.fail_after(seconds):
            while text.encode() not in self.output:
                try:
                    self.output += await self.proc.stderr.receive()
                except anyio.EndOfStream:
                    raise AssertionError(f"{text!r} never came; got {self.err!r}") from None
        return self.err

    async def line(self, data: bytes) -> bytes:
        """Write one line to stdin; the next line on stdout."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        await self.proc.stdin.send(data + b"\n")
        got = b""
        with anyio.fail_after(60):
            while not got.endswith(b"\n"):
                got += await self.proc.stdout.receive(1)
        return got

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    async def ended(self, seconds: float = 60) -> int:
        """The exit code, once the process ended; all of its stderr is read."""
        assert self.proc.stderr is not None
        with anyio.fail_after(seconds):
            while True:
                try:
                    self.output += await self.proc.stderr.receive()
                except anyio.EndOfStream:
                    break
            return await self.proc.wait()


AS_A_SHELL_STARTS_IT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL);"
    " os.execv(sys.executable, [sys.executable, '-m', 'agents_mcp', *sys.argv[1:]])"
)
"""With Ctrl-C acting, even when these tests were started in the background of a
non-interactive shell, which leaves SIGINT ignored for its children (across exec too)."""


@asynccontextmanager
async def served(*args: str, tmp_path: Path, **env: str) -> AsyncIterator[Served]:
    """``python -m agents_mcp ARGS`` in its own session (a signal sent to it reaches it
    alone), in a scratch home; killed if the test leaves it running."""
    proc = await anyio.open_process(
        [sys.executable, "-c", AS_A_SHELL_STARTS_IT, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=scratch_env(tmp_path, environ=env),
        start_new_session=True,
    )
    try:
        yield Served(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            with anyio.move_on_after(10, shield=True):
                await proc.wait()
