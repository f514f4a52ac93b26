"""Processes the orchestrator runs: the fake LLM, driver workers and raw stdio servers.

Every measured figure comes from here: wall times reported by the workers, CPU read from
``/proc`` around each command (see :mod:`benchmarks.procstat`), split by process role.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from benchmarks import procstat

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
ECHO_SERVER = str(BENCH / "echo_server.py")
HOP_SERVER = str(BENCH / "hop_server.py")
START_TIMEOUT = 180.0
"""Seconds a worker may take to start (spawn, imports, connect)."""
COMMAND_TIMEOUT = 900.0
"""Seconds one worker command may take."""


_src: list[str] = []


def use_src(path: str) -> None:
    """Benchmark the agents_mcp package under ``path`` (e.g. an exported commit's ``src``)
    instead of the installed one, here and in every process we start."""
    _src[:] = [str(Path(path).resolve())]
    sys.path.insert(0, _src[0])


_CONFIG = """\
[mcpServers.echo]
command = {python!r}
args = [{echo!r}]

[models.fake]
base_url = {base_url!r}
model = "fake"
api_key = "x"

[agents.bench]
description = "Benchmark agent: calls the echo tool as the fake model says."
instructions = "You are a benchmark agent."
model = "fake"
servers = ["echo"]
require_approval = "never"
max_iterations = 50
"""


def agents_config(base_url: str, sqlite_durability: str | None = None) -> str:
    """The agents-mcp config of every agents-mcp driver: one agent, the echo server, every
    other setting at its default, unless ``sqlite_durability`` is given (the
    ``may-lose-last-commits`` drivers)."""
    text = _CONFIG.format(python=sys.executable, echo=ECHO_SERVER, base_url=base_url)
    if sqlite_durability is not None:
        text += f"\n[server]\nsqlite_durability = {sqlite_durability!r}\n"
    return text


def server_env() -> dict[str, str]:
    """The environment of every process we start (the same for all drivers). ``OTEL_*``
    is left out: telemetry is off unless a driver switches it on (``--telemetry``)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "PYTHONPATH": os.pathsep.join([*_src, str(ROOT)]),
        "FASTMCP_CHECK_FOR_UPDATES": "off",
        "FASTMCP_SHOW_SERVER_BANNER": "false",
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
    }


class MeasuredFake(Protocol):
    """A fake model in a process of its own, whose CPU a sample counts apart."""

    def cpu_ms(self) -> float: ...


class FakeLLM:
    """The fake Chat Completions server, in its own process."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.fake_llm",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=server_env(),
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        self.base_url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

    def cpu_ms(self) -> float:
        assert self.proc is not None
        return procstat.tree_cpu_ms(self.proc.pid)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 10)


class OTLPSink:
    """A local OTLP receiver that keeps nothing (``otlp_sink``), in its own process."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.endpoint = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.otlp_sink",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=server_env(), cwd=ROOT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        self.endpoint = f"http://127.0.0.1:{int(line.split()[1])}"

    async def stop(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 10)


@dataclass
class Sample:
    """One command's figures: wall times from the worker, CPU deltas from /proc."""

    n: int
    walls_ms: list[float]
    total_ms: float
    errors: list[str]
    cpu_ms: dict[str, float]
    """CPU by role (client, server, downstream, other) and ``total``."""
    fake_cpu_ms: float

    def cpu_per(self, role: str = "total") -> float:
        return self.cpu_ms.get(role, 0.0) / max(1, self.n)


@dataclass
class Worker:
    """A driver process, commanded over stdin/stdout JSON lines."""

    key: str
    label: str
    argv: list[str]
    log_path: Path
    server_match: str | None = None
    """Command-line substring of the server process (drivers behind an MCP hop)."""
    proc: asyncio.subprocess.Process | None = None
    failure: str | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def _open_log(self) -> IO[bytes]:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the worker
        return self._log

    async def start(self) -> bool:
        log = self._open_log()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=server_env(),
            cwd=ROOT,
            limit=1 << 26,
        )
        try:
            ready = await asyncio.wait_for(self._read(), START_TIMEOUT)
        except (TimeoutError, EOFError, ValueError) as exc:
            self.failure = f"did not start: {type(exc).__name__} {exc}; {self.log_tail()}"
            await self.stop()
            return False
        if ready.get("event") != "ready":
            self.failure = str(ready.get("error") or ready)
            await self.stop()
            return False
        return True

    async def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise EOFError("worker exited")
        result: dict[str, Any] = json.loads(line)
        return result

    def roles(self) -> dict[int, str]:
        assert self.proc is not None
        out: dict[int, str] = {}
        for s in procstat.tree(self.proc.pid):
            cmd = procstat.cmdline(s.pid)
            if s.pid == self.proc.pid:
                out[s.pid] = "client"
            elif self.server_match and self.server_match in cmd:
                out[s.pid] = "server"
            elif "echo_server.py" in cmd:
                out[s.pid] = "downstream"
            else:
                out[s.pid] = "other"
        return out

    def _cpu(self) -> dict[int, procstat.ProcStat]:
        assert self.proc is not None
        return {s.pid: s for s in procstat.tree(self.proc.pid)}

    async def call(self, cmd: dict[str, Any], fake: MeasuredFake) -> Sample:
        """Run one command; CPU is measured around it for the whole process tree."""
        assert self.proc is not None and self.proc.stdin is not None
        roles = self.roles()
        before, fake_before = self._cpu(), fake.cpu_ms()
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        t0 = time.perf_counter()
        try:
            result = await asyncio.wait_for(self._read(), COMMAND_TIMEOUT)
        except (TimeoutError, EOFError) as exc:
            result = {"error": f"{type(exc).__name__}: {exc}; {self.log_tail()}"}
        wall = (time.perf_counter() - t0) * 1000.0
        after, fake_after = self._cpu(), fake.cpu_ms()
        roles |= {pid: r for pid, r in self.roles().items() if pid not in roles}
        cpu: dict[str, float] = {}
        for pid, value in after.items():
            role = roles.get(pid, "other")
            cpu[role] = cpu.get(role, 0.0) + procstat.used_ms(before.get(pid), value)
        cpu["total"] = sum(v for k, v in cpu.items())
        errors = list(result.get("errors", []))
        if "error" in result:
            errors.append(str(result["error"]))
        n = int(cmd.get("n", 1))
        return Sample(
            n=n,
            walls_ms=[float(w) for w in result.get("walls_ms", [])],
            total_ms=float(result.get("total_ms", wall)),
            errors=errors,
            cpu_ms=cpu,
            fake_cpu_ms=fake_after - fake_before,
        )

    def server_pid(self) -> int | None:
        if self.proc is None or self.server_match is None:
            return None
        return procstat.find_in_tree(self.proc.pid, self.server_match)

    def log_tail(self) -> str:
        """The first and last error-looking lines of the worker's log (tracebacks skipped)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        skip = ("Traceback", "During handling", "The above exception", "+", "|")
        errors = [x for x in lines if x.strip() and not x[0].isspace() and not x.startswith(skip)]
        picked = list(dict.fromkeys(errors[:1] + errors[-1:])) or lines[-2:]
        return " | ".join(x.strip() for x in picked)[-1200:]

    async def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(b'{"op": "quit"}\n')
                await proc.stdin.drain()
                proc.stdin.close()
                await asyncio.wait_for(proc.wait(), 20)
            except (TimeoutError, ConnectionError):
                proc.kill()
                await proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


# -- raw stdio servers (S3 and S5) ----------------------------------------------------------


class RawStdio:
    """A server spoken to in raw JSON-RPC lines: no client library between us and the clock."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.t0 = 0.0
        self._log: IO[bytes] | None = None

    def _open_log(self) -> IO[bytes]:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        return self._log

    async def spawn(self) -> None:
        log = self._open_log()
        self.t0 = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=server_env(),
            cwd=ROOT,
            limit=1 << 24,
        )

    async def send(self, obj: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.proc.stdin.drain()

    async def request(self, rid: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a request and wait for its response; returns it with ``elapsed_ms`` since spawn."""
        await self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
            if not line:
                raise EOFError(f"server exited while waiting for {method}")
            msg: dict[str, Any] = json.loads(line)
            if msg.get("id") == rid:
                msg["elapsed_ms"] = (time.perf_counter() - self.t0) * 1000.0
                return msg

    async def initialize(self) -> dict[str, Any]:
        params = {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "agents-mcp-bench", "version": "1"},
        }
        result = await self.request(1, "initialize", params)
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    async def close(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._log is not None:
            self._log.close()
