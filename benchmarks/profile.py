"""``python -m benchmarks.profile``: where the agents-mcp server spends its CPU in S1.

Starts the fake LLM and one MCP-client driver (agents-mcp or the minimal hop, over stdio
or HTTP), warms it up, then samples the server process with py-spy (every thread that is
not idle), or with ``--cprofile`` runs it under cProfile, during ``--conversations``
conversations (``--concurrency`` at a time, e.g. 400
over HTTP with ``--latency 50 -k 3`` for the load levels), and prints CPU per server
thread (from ``/proc``), self time by package and inclusive time of agents_mcp functions.
py-spy is installed into ``benchmarks/.venvs/tools`` on first use.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from benchmarks import harness, procstat
from benchmarks.harness import BENCH, FakeLLM, Worker, agents_config

TOOLS = BENCH / ".venvs" / "tools"
PY_SPY = TOOLS / "bin" / "py-spy"


async def _ensure_py_spy() -> None:
    if PY_SPY.exists():
        return
    base = getattr(sys, "_base_executable", sys.executable)
    for argv in ([base, "-m", "venv", str(TOOLS)], [str(TOOLS / "bin" / "python"), "-m", "pip",
                 "install", "-q", "--disable-pip-version-check", "py-spy"]):  # fmt: skip
        proc = await asyncio.create_subprocess_exec(*argv)
        if await proc.wait() != 0:
            raise SystemExit(f"could not install py-spy: {' '.join(argv)}")


def _threads(pid: int) -> dict[str, tuple[str, float]]:
    out: dict[str, tuple[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.find("(") + 1 : raw.rfind(")")]
        fields = raw[raw.rfind(")") + 2 :].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK"))
    return out


LAYERS = (
    ("store (agents_mcp.store, sqlite3)", ("agents_mcp/store/",)),
    ("LLM client (adapter, httpx2)", ("agents_mcp/llm/", "httpx2/", "httpcore2/")),
    ("downstream MCP client", ("agents_mcp/downstream/", "fastmcp/client/", "mcp/client/")),
    ("progress relay", ("agents_mcp/server/progress.py",)),
    ("agents-mcp loop, threads, runs, server tools", ("agents_mcp/",)),
    ("minimal loop (hop)", ("minimal_loop.py",)),
)
"""Each sample goes to the first layer any of whose markers is in its stack; the rest is
the MCP server stack (mcp, fastmcp, pydantic, the transport) and the event loop."""


_ENTRY = re.compile(r"agents_mcp/(cli/|__main__)")
"""Frames at the root of every stack of ``agents-mcp serve``: no layer of their own."""
IDLE = re.compile(r"(^|\.)(select|wait|_wait_for_tstate_lock) \((selectors|threading)\.py")
"""Leaf frames of a thread that waits: py-spy (without ``--gil``) still samples them."""


def layer(stack: str) -> str:
    stack = ";".join(f for f in stack.split(";") if not _ENTRY.search(f))
    for name, markers in LAYERS:
        if any(m in stack for m in markers):
            return name
    return "MCP server stack, transport, event loop"


def summarize(raw: Path, top: int, cpu_ms: float) -> list[str]:
    """Self time by package, inclusive time of agents_mcp frames and top self frames, as a
    share of the samples and as that share of ``cpu_ms`` (the server's measured CPU per
    conversation): py-spy's sample count is not a clock under load, its proportions are."""
    incl: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    pkgs: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        if IDLE.search(frames[-1]):  # waiting in epoll or on a lock: py-spy counts it
            continue
        total += n
        for f in set(frames):
            incl[f] += n
        self_[frames[-1]] += n
        layers[layer(stack)] += n
        m = re.search(r"\(([^:)]*)", frames[-1])
        path = m.group(1) if m else frames[-1]
        pkgs[path.split("/")[0]] += n
    share = 1.0 / max(1, total)

    def fmt(c: int, what: str) -> str:
        return f"  {c * share * 100:5.1f}%  {c * share * cpu_ms:7.2f} ms  {what}"

    out = [f"{total} samples; % of samples and ≈ ms of server CPU per unit", "", "by layer:"]
    out += [fmt(c, p) for p, c in layers.most_common()]
    out += ["", "self by package:"]
    out += [fmt(c, p) for p, c in pkgs.most_common(15)]
    out += ["", "inclusive, agents_mcp (or minimal loop) functions:"]
    ours = [(f, c) for f, c in incl.most_common() if "agents_mcp/" in f or "minimal_loop" in f]
    out += [fmt(c, f) for f, c in ours[:top]]
    out += ["", "top self frames:"]
    out += [fmt(c, f) for f, c in self_.most_common(top)]
    return out


def _cprofile_python(work: Path) -> Path:
    """An interpreter for the server that runs it under cProfile, written to ``server.prof``
    when it exits (start-up and warm-up included)."""
    wrapper = work / "cprofile-python"
    out = work / "server.prof"
    python, target = shlex.quote(sys.executable), shlex.quote(str(out))
    wrapper.write_text(f'#!/bin/sh\nexec {python} -m cProfile -o {target} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def print_cprofile(stats: Path, top: int) -> None:
    """Functions by own time, then agents_mcp's by cumulative time (a coroutine counts one
    call per resumption)."""
    import pstats

    report = pstats.Stats(str(stats))
    report.sort_stats("tottime").print_stats(top)
    report.sort_stats("cumulative").print_stats("agents_mcp", top)


@contextlib.asynccontextmanager
async def _py_spy(pid: int, raw: Path, rate: int) -> AsyncIterator[None]:
    spy = await asyncio.create_subprocess_exec(
        str(PY_SPY), "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking",
        "--format", "raw", "-o", str(raw),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(1.0)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        await spy.wait()


def _print_threads(
    before: dict[str, tuple[str, float]], after: dict[str, tuple[str, float]], n: int
) -> None:
    print("server threads, CPU ms/conversation:")
    for tid, (name, cpu) in after.items():
        used = (cpu - before.get(tid, (name, 0.0))[1]) / n
        if used > 0:
            print(f"  {tid} {name}: {used:.1f}")


def _fresh_workdir() -> Path:
    work = BENCH / ".work" / "profile"
    work.mkdir(parents=True, exist_ok=True)
    for name in ("profile.db", "profile.db-wal", "profile.db-shm", "py-spy.raw", "server.prof"):
        (work / name).unlink(missing_ok=True)
    return work


async def main(args: argparse.Namespace) -> None:
    if not args.cprofile:
        await _ensure_py_spy()
    if args.src:
        harness.use_src(args.src)
    work = _fresh_workdir()
    fake = FakeLLM()
    await fake.start()
    config = work / "agents.toml"
    durability = None if args.sqlite_durability == "full" else args.sqlite_durability
    config.write_text(agents_config(fake.base_url, durability))
    db = work / "profile.db"
    thread_id = ""
    if args.history:
        from benchmarks.seed import seed_threads

        (thread_id,) = await seed_threads(str(db), [args.history])
    argv = [sys.executable, "-m", "benchmarks.drivers.mcp_client", "--server", args.server,
            "--transport", args.transport, "--base-url", fake.base_url, "--config", str(config),
            "--db", str(db)]  # fmt: skip
    if args.cprofile:
        argv += ["--server-python", str(_cprofile_python(work))]
    match = "serve --config" if args.server == "agents-mcp" else "hop_server.py"
    worker = Worker("profile", args.server, argv, work / "worker.log", match)
    if not await worker.start():
        raise SystemExit(f"driver failed: {worker.failure}")
    work_cmd: dict[str, object] = {
        "op": "batch",
        "n": args.conversations,
        "k": args.k,
        "latency_ms": args.latency,
        "concurrency": args.concurrency,
    }
    if args.history:
        work_cmd = {"op": "turns", "thread_id": thread_id, "n": args.conversations, "k": args.k}
    try:
        await worker.call(
            {**work_cmd, "n": max(3, min(args.concurrency, args.conversations))}, fake
        )
        pid = worker.server_pid()
        assert pid is not None
        raw = work / "py-spy.raw"
        sampling = contextlib.nullcontext() if args.cprofile else _py_spy(pid, raw, args.rate)
        async with sampling:
            before = _threads(pid)
            sample = await worker.call(work_cmd, fake)
            after = _threads(pid)
    finally:
        await worker.stop()
        await fake.stop()
    n = args.conversations
    what = f"turns on a {args.history}-message thread" if args.history else "conversations"
    print(f"# profile: {args.server}, K={args.k}, {what}")
    print(
        f"CPU ms/conversation by role: { ({k: round(v / n, 1) for k, v in sample.cpu_ms.items()}) }"
    )
    _print_threads(before, after, n)
    print(f"(server pid {pid}: {procstat.cmdline(pid)[:100]})\n")
    if args.cprofile:
        print_cprofile(work / "server.prof", args.top)
    elif raw.exists():
        print("\n".join(summarize(raw, args.top, sample.cpu_per("server"))))
    else:
        print("py-spy wrote nothing (is ptrace allowed here?)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["agents-mcp", "hop"], default="agents-mcp")
    parser.add_argument("--src", help="agents_mcp source directory to profile")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--latency", type=int, default=0, help="ms per LLM request")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("-k", type=int, default=5, help="tool calls per conversation")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--cprofile", action="store_true", help="run the server under cProfile instead of py-spy"
    )
    parser.add_argument(
        "--sqlite-durability",
        choices=["full", "may-lose-last-commits"],
        default="full",
        help="agents-mcp's [server] sqlite_durability (default: full, as in the benchmark)",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="S4: profile turns on a stored thread of this many messages (agents-mcp only)",
    )
    asyncio.run(main(parser.parse_args()))
