"""``python -m benchmarks run [--quick] [--peers | --no-peers]``: one command, one report.

``python -m benchmarks smoke`` is the quick run the tests run (``tests/test_benchmarks.py``):
no results file, exit status 1 if an agents-mcp or floor driver failed or any
conversation errored.
``python -m benchmarks install-peers`` only prepares the peer venvs.
``python -m benchmarks.adapters`` compares the provider adapters' own CPU per conversation,
``python -m benchmarks.providers`` S1 through agents-mcp on each provider's fake.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from benchmarks import adapters, harness, peers, procstat, providers, report, scenarios
from benchmarks.harness import (
    BENCH,
    ECHO_SERVER,
    HOP_SERVER,
    ROOT,
    FakeLLM,
    OTLPSink,
    Worker,
    agents_config,
)
from benchmarks.report import (
    AM_HTTP,
    AM_HTTP_NORMAL,
    AM_STDIO,
    AM_STDIO_NORMAL,
    HOP_HTTP,
    HOP_STDIO,
    MIN,
    OTEL,
    RunData,
)

RESULTS = BENCH / "results"
WORK = BENCH / ".work"
MAIN_DISTS = (
    "agents-mcp",
    "fastmcp",
    "fastmcp-slim",
    "mcp",
    "mcp-types",
    "httpx2",
    "httpcore2",
    "pydantic",
    "pydantic-core",
    "asyncpg",
    "anyio",
    "uvicorn",
    "starlette",
)


def _machine() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{mem_kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        memory = "?"
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu or platform.processor() or "?",
        "memory": memory,
        "kernel": platform.release(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


async def _export(rev: str, into: Path) -> tuple[str, str]:
    """``src/`` of git revision ``rev`` exported under ``into``; returns (path, commit)."""
    repo = str(BENCH.parent)
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", repo, "rev-parse", "--short", f"{rev}^{{commit}}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"--rev: unknown revision {rev!r}")
    commit = out.decode().strip()
    target = into / f"src-{commit}"
    target.mkdir(parents=True)
    proc = await asyncio.create_subprocess_shell(
        f"git -C {shlex.quote(repo)} archive {commit} src | tar -x -C {shlex.quote(str(target))}"
    )
    if await proc.wait() != 0:
        raise SystemExit(f"--rev: could not export {commit}")
    return str(target / "src"), commit


async def _git() -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", str(BENCH.parent), "describe", "--always", "--dirty", "--exclude", "*",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return out.decode().strip() or "?"


async def _peers_ready(args: argparse.Namespace, work: Path) -> dict[str, str | None]:
    """Peer key → None when usable, else why it is skipped."""
    wanted = args.peers if args.peers is not None else not args.quick
    out: dict[str, str | None] = {}
    jobs = []
    for peer in peers.PEERS:
        if peers.installed(peer):
            out[peer.key] = None
        elif not wanted:
            out[peer.key] = "venv not installed (run with --peers)"
        else:
            jobs.append(peer)
    if jobs:
        print(f"installing peers: {', '.join(p.requirement for p in jobs)}", file=sys.stderr)
        reasons = await asyncio.gather(
            *(peers.install(p, log=work / f"pip-{p.key}.log") for p in jobs)
        )
        out |= {p.key: why for p, why in zip(jobs, reasons, strict=True)}
    if args.peers is False:
        out = dict.fromkeys(out, "disabled (--no-peers)")
    return out


@dataclass(frozen=True)
class Baseline:
    """Another agents-mcp checkout run beside this one: its own interpreter (``DIR/.venv``),
    so its own code and dependencies."""

    tag: str
    python: str


def _baselines(specs: list[str]) -> list[Baseline]:
    out = []
    for spec in specs:
        path, _, tag = spec.partition("=")
        python = Path(path) if Path(path).is_file() else Path(path) / ".venv" / "bin" / "python"
        if not python.exists():
            raise SystemExit(f"--baseline {spec}: no {python} (create the venv there first)")
        out.append(Baseline(tag or Path(path).name, str(python)))
    return out


def _workers(
    base_url: str,
    work: Path,
    configs: tuple[Path, Path],
    skip: dict[str, str | None],
    bases: list[Baseline],
    otlp: str = "",
) -> list[Worker]:
    """``configs``: the default one, and the same with ``sqlite_durability =
    "may-lose-last-commits"`` (the ``-normal`` drivers); ``otlp``: where the
    ``+otel`` drivers export telemetry (none without)."""
    py = sys.executable

    def mcp(
        server: str, transport: str, db: str, python: str = py, config: Path = configs[0]
    ) -> list[str]:
        argv = [py, "-m", "benchmarks.drivers.mcp_client", "--server", server]
        argv += ["--transport", transport, "--base-url", base_url, "--server-python", python]
        return [*argv, "--config", str(config), "--db", db]

    am_match = "serve --config"
    lossy = "agents-mcp may-lose-last-commits"
    ws = [
        Worker(AM_STDIO, "agents-mcp (stdio)", mcp("agents-mcp", "stdio", str(work / "s1.db")),
               work / "w-am-stdio.log", am_match),
        Worker(AM_HTTP, "agents-mcp (HTTP)", mcp("agents-mcp", "http", str(work / "http.db")),
               work / "w-am-http.log", am_match),
        Worker(AM_STDIO_NORMAL, f"{lossy} (stdio)",
               mcp("agents-mcp", "stdio", str(work / "s1-normal.db"), config=configs[1]),
               work / "w-am-stdio-normal.log", am_match),
        Worker(AM_HTTP_NORMAL, f"{lossy} (HTTP)",
               mcp("agents-mcp", "http", str(work / "http-normal.db"), config=configs[1]),
               work / "w-am-http-normal.log", am_match),
    ]  # fmt: skip
    if otlp:  # the same, exporting traces and metrics to a receiver on this host
        ws += [
            Worker(f"{AM_STDIO}{OTEL}", "agents-mcp (stdio, telemetry exported)",
                   [*mcp("agents-mcp", "stdio", str(work / "s1-otel.db")), "--otlp", otlp],
                   work / "w-am-stdio-otel.log", am_match),
            Worker(f"{AM_HTTP}{OTEL}", "agents-mcp (HTTP, telemetry exported)",
                   [*mcp("agents-mcp", "http", str(work / "http-otel.db")), "--otlp", otlp],
                   work / "w-am-http-otel.log", am_match),
        ]  # fmt: skip
    for b in bases:
        ws += [
            Worker(f"{AM_STDIO}@{b.tag}", f"agents-mcp {b.tag} (stdio)",
                   mcp("agents-mcp", "stdio", str(work / f"s1-{b.tag}.db"), b.python),
                   work / f"w-am-stdio-{b.tag}.log", am_match),
            Worker(f"{AM_HTTP}@{b.tag}", f"agents-mcp {b.tag} (HTTP)",
                   mcp("agents-mcp", "http", str(work / f"http-{b.tag}.db"), b.python),
                   work / f"w-am-http-{b.tag}.log", am_match),
        ]  # fmt: skip
    ws += [
        Worker(MIN, "minimal loop (in-process)", [py, "-m", "benchmarks.drivers.minimal",
               "--base-url", base_url], work / "w-minimal.log"),
        Worker(HOP_STDIO, "minimal loop + MCP hop (stdio)", mcp("hop", "stdio", ""),
               work / "w-hop-stdio.log", "hop_server.py"),
        Worker(HOP_HTTP, "minimal loop + MCP hop (HTTP)", mcp("hop", "http", ""),
               work / "w-hop-http.log", "hop_server.py"),
    ]  # fmt: skip
    for peer in peers.PEERS:
        if skip.get(peer.key) is None:
            ws.append(Worker(peer.key, peer.label, peer.argv(base_url), work / f"w-{peer.key}.log"))
    return ws


class LoadMonitor:
    """The 1-minute load average every few seconds while a run goes on, and at marks."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self.marks: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sample())

    def mark(self, name: str) -> None:
        self.marks[name] = os.getloadavg()[0]

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        out = dict(self.marks)
        if self.samples:
            out |= {
                "min": min(self.samples),
                "median": statistics.median(self.samples),
                "max": max(self.samples),
            }
        return out


def _append(log: Path) -> IO[bytes]:
    return open(log, "ab")


async def _subprocess_json(argv: list[str], log: Path) -> Any:
    with _append(log) as err:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=err, env=harness.server_env(), cwd=ROOT
        )
        out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed (exit {proc.returncode}); see {log}")
    return json.loads(out)


async def _seed(python: str, db: Path, sizes: list[int], log: Path, repeat: int = 1) -> list[str]:
    argv = [python, "-m", "benchmarks.seed", "--db", str(db), "--sizes"]
    ids: list[str] = await _subprocess_json(
        [*argv, ",".join(map(str, sizes)), "--repeat", str(repeat)], log
    )
    return ids


async def _fsync(work: Path, quick: bool) -> dict[str, Any]:
    """The disk's own syncs per second where the drivers' databases are."""
    argv = [sys.executable, "-m", "benchmarks.fsync", "--dir", str(work)]
    result: dict[str, Any] = await _subprocess_json(
        [*argv, "--seconds", "0.3" if quick else "3"], work / "fsync.log"
    )
    return result


async def _commits(work: Path, quick: bool) -> list[dict[str, Any]]:
    """``benchmarks.commits``: the store's writes/s by writers and durability."""
    argv = [sys.executable, "-m", "benchmarks.commits", "--dir", str(work)]
    argv += ["--writers", "1,10", "--seconds", "0.3"] if quick else ["--seconds", "4"]
    with _append(work / "commits.log") as err:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=err, env=harness.server_env(), cwd=ROOT
        )
        out, _ = await proc.communicate()
    if proc.returncode != 0:
        print(f"benchmarks.commits failed (exit {proc.returncode})", file=sys.stderr)
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


async def one_run(
    args: argparse.Namespace,
    work: Path,
    fake: FakeLLM,
    config: tuple[Path, Path],
    peer_status: dict[str, str | None],
    bases: list[Baseline],
) -> RunData:
    """One full interleaved run of every scenario asked for."""
    t_start = time.perf_counter()
    z = scenarios.QUICK if args.quick else scenarios.FULL
    os.makedirs(work)
    monitor = LoadMonitor()
    monitor.start()
    machine = _machine()
    disk = await _fsync(work, args.quick)
    only = set(args.only.split(",")) if args.only else {"s1", "s2", "s3", "s4", "s5", "s6"}
    print("seeding databases", file=sys.stderr)
    py = sys.executable
    seed_log = work / "seed.log"
    threads: dict[str, dict[int, str]] = {}
    if "s4" in only:
        for key, python, db in [
            (AM_STDIO, py, work / "s1.db"),
            *((f"{AM_STDIO}@{b.tag}", b.python, work / f"s1-{b.tag}.db") for b in bases),
        ]:
            ids = await _seed(python, db, list(z.s4_sizes), seed_log)
            threads[key] = dict(zip(z.s4_sizes, ids, strict=True))
    for python, name in [(py, "cold.db"), *((b.python, f"cold-{b.tag}.db") for b in bases)]:
        await _seed(python, work / name, [], seed_log)
    if "s5" in only:
        await _seed(py, work / "many.db", [4], seed_log, repeat=z.s5_threads)

    workers = _workers(fake.base_url, work, config, peer_status, bases, args.otlp_endpoint)
    if args.drivers:
        keep = set(args.drivers.split(","))
        workers = [w for w in workers if w.key in keep or w.key.split("@")[0] in keep]
    print(f"starting {len(workers)} drivers", file=sys.stderr)
    started_ok = await asyncio.gather(*(w.start() for w in workers))
    live = [w for w, ok in zip(workers, started_ok, strict=True) if ok]
    d = RunData(
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        quick=args.quick,
        sizes=z,
        machine=machine,
        versions={},
        drivers=[(w.key, w.label, w.failure) for w in workers],
        baselines=[b.tag for b in bases],
        fsync=disk,
    )
    labels = {p.key: p.label for p in peers.PEERS}
    d.drivers += [(k, labels[k], why) for k, why in peer_status.items() if why is not None]
    try:
        if "s1" in only:
            print("S1", file=sys.stderr)
            monitor.mark("S1")
            d.s1 = await scenarios.s1(live, fake, z)
        if "s2" in only:
            print("S2", file=sys.stderr)
            monitor.mark("S2")
            d.s2 = await scenarios.s2(live, fake, z)
            d.rss_after_s2 = scenarios.rss_after(live)
            print("under load", file=sys.stderr)
            monitor.mark("load")
            d.load = await scenarios.load(live, fake, z)
        by_key = {w.key: w for w in live}
        stored = [(by_key[k], ids) for k, ids in threads.items() if k in by_key]
        if "s4" in only and stored and MIN in by_key:
            print("S4", file=sys.stderr)
            monitor.mark("S4")
            d.s4 = await scenarios.s4(stored, by_key[MIN], fake, z)
    finally:
        await asyncio.gather(*(w.stop() for w in live))
    if only & {"s3", "s5"}:
        print("S3/S5", file=sys.stderr)
        monitor.mark("S3/S5")
    am = [py, "-m", "agents_mcp", "serve", "--config", str(config[0]), "--db"]
    kinds = [
        scenarios.ServerKind("bare", "bare FastMCP, one tool", [py, ECHO_SERVER],
                             ("echo", {"text": "cold hi"}, "cold hi")),
        scenarios.ServerKind("hop", "minimal loop + MCP hop", [py, HOP_SERVER, "--base-url",
                             fake.base_url], scenarios.chat_call()),
        scenarios.ServerKind("agents-mcp", "agents-mcp", [*am, str(work / "cold.db")],
                             scenarios.chat_call()),
        *(scenarios.ServerKind(f"agents-mcp@{b.tag}", f"agents-mcp {b.tag}",
                               [b.python, *am[1:], str(work / f"cold-{b.tag}.db")],
                               scenarios.chat_call()) for b in bases),
        scenarios.ServerKind("agents-mcp-threads", f"agents-mcp, {z.s5_threads:,} stored threads",
                             [*am, str(work / "many.db")], scenarios.chat_call()),
    ]  # fmt: skip
    if "s5" not in only:  # its database was not seeded
        kinds = [k for k in kinds if k.key != "agents-mcp-threads"]
    reps = z.s3_reps if "s3" in only else 0
    d.cold = await scenarios.s3_s5(kinds, reps, z.s5_reps if "s5" in only else 0, work)
    d.cold = {k: c for k, c in d.cold.items() if c.init_ms or c.idle_rss_kb or c.errors}
    d.cold_labels = {k.key: k.label for k in kinds}
    if "s6" in only:
        print("S6 list_threads", file=sys.stderr)
        monitor.mark("S6")
        d.listing = await _listing(args, z, bases, work)
    d.machine["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    d.loads = await monitor.stop()
    d.duration_s = time.perf_counter() - t_start
    return d


async def _listing(
    args: argparse.Namespace, z: scenarios.Sizes, bases: list[Baseline], work: Path
) -> dict[str, dict[str, Any]]:
    """S6 for this version and each baseline, on databases seeded once per invocation."""
    out: dict[str, dict[str, Any]] = {}
    for key, python in [("agents-mcp", sys.executable), *((b.tag, b.python) for b in bases)]:
        db = args.root / f"listing-{key}-{z.list_threads}.db"
        argv = [python, "-m", "benchmarks.listing", "--db", str(db)]
        argv += ["--threads", str(z.list_threads), "--calls", str(z.list_calls)]
        try:
            out[key] = await _subprocess_json(argv, work / "listing.log")
        except (RuntimeError, ValueError) as exc:  # e.g. a baseline without this store API
            print(f"S6 {key}: {exc}", file=sys.stderr)
    return out


@contextlib.asynccontextmanager
async def _sink(wanted: bool) -> AsyncIterator[str]:
    """The endpoint of a local OTLP receiver for the ``--telemetry`` drivers ('': none)."""
    if not wanted:
        yield ""
        return
    sink = OTLPSink()
    await sink.start()
    try:
        yield sink.endpoint
    finally:
        await sink.stop()


async def run(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    if args.root.exists():  # keep the seeded listing databases: they take a while
        for old in args.root.iterdir():
            if not old.name.startswith("listing-"):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    work = args.root / started.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    source = {}
    if args.rev:
        args.src, commit = await _export(args.rev, work)
        source = {"agents-mcp commit": commit}
    elif args.src:
        source = {"agents-mcp src": args.src}
    if args.src:
        harness.use_src(args.src)
    bases = _baselines(args.baseline or [])
    peer_status = await _peers_ready(args, work)

    fake = FakeLLM()
    await fake.start()
    config = (work / "agents.toml", work / "agents-normal.toml")
    config[0].write_text(agents_config(fake.base_url))
    config[1].write_text(agents_config(fake.base_url, "may-lose-last-commits"))
    complete = not (args.quick or args.only or args.drivers)
    n_runs = args.runs if args.runs is not None else (3 if complete else 1)
    runs: list[RunData] = []
    try:
        async with _sink(args.telemetry) as args.otlp_endpoint:
            for i in range(n_runs):
                print(f"run {i + 1} of {n_runs}", file=sys.stderr)
                runs.append(
                    await one_run(args, work / f"run{i + 1}", fake, config, peer_status, bases)
                )
    finally:
        await fake.stop()
    if not args.only or "s1" in args.only:
        print("commits: the store's writes/s by durability", file=sys.stderr)
        runs[-1].commits = await _commits(work, args.quick)

    versions = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        **(source or {"agents-mcp git": await _git()}),
        **await peers.versions(sys.executable, MAIN_DISTS),
    }
    runs[-1].versions["agents-mcp side"] = versions
    for b in bases:
        runs[-1].versions[f"baseline {b.tag}"] = await peers.versions(b.python, MAIN_DISTS)
    for peer in peers.PEERS:
        if peer_status.get(peer.key) is None:
            runs[-1].versions[peer.key] = await peers.versions(str(peer.python), peer.dists)
    runs[0].machine["cpu_clock"] = (
        "per-thread nanoseconds (/proc/<pid>/task/<tid>/schedstat)"
        if procstat.PRECISE
        else "clock ticks (10 ms)"
    )
    text = report.render(runs)
    print(text)
    out = Path(args.out) if args.out else None
    if out is None and complete:
        out = new_results_file(started.strftime("%Y-%m-%d"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
        if complete and out.resolve().parent == RESULTS.resolve() and len(runs) >= 3:
            report.update_readme(BENCH / "README.md", report.summary(runs, f"results/{out.name}"))
    return max(_status(d) for d in runs)


def new_results_file(day: str, directory: Path = RESULTS) -> Path:
    """``<day>.md`` in ``directory``, or ``<day>-2.md``, ``<day>-3.md``... when taken: a
    run never writes over another run's results, nor the notes added to them."""
    out, n = directory / f"{day}.md", 2
    while out.exists():
        out, n = directory / f"{day}-{n}.md", n + 1
    return out


def _status(d: RunData) -> int:
    """1 when one of our own drivers failed or errored (peers may be missing)."""
    ours = {AM_STDIO, AM_HTTP, AM_STDIO_NORMAL, AM_HTTP_NORMAL, MIN, HOP_STDIO, HOP_HTTP}
    failed = [k for k, _, why in d.drivers if k in ours and why is not None]
    errored = [
        k for k in ours
        for s in [*d.s1.get(k, []), *d.s2.get(k, []), *(x for v in d.load.get(k, {}).values() for x in v)]
        if s.errors
    ]  # fmt: skip
    cold = [k for k, c in d.cold.items() if c.errors and "@" not in k]
    listing = [] if d.listing.get("agents-mcp") or not d.listing else ["S6"]
    for what, keys in (
        ("failed", failed), ("errors", errored), ("cold-start errors", cold), ("S6", listing)
    ):  # fmt: skip
        if keys:
            print(f"benchmark {what}: {', '.join(sorted(set(keys)))}", file=sys.stderr)
    return 1 if failed or errored or cold else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "smoke"):
        p = sub.add_parser(name, help="run the benchmark" if name == "run" else "CI smoke run")
        p.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke)")
        p.add_argument(
            "--peers",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="install and run the peer frameworks (default: yes for a full run; "
            "a quick run uses them only if already installed)",
        )
        p.add_argument("--out", help="write the Markdown report here")
        p.add_argument("--only", help="scenarios to run, e.g. s1,s2 (default: all)")
        p.add_argument(
            "--rev",
            help="benchmark agents_mcp as of this git revision (exported with git archive)",
        )
        p.add_argument(
            "--src",
            help="benchmark the agents_mcp package in this directory (e.g. a `git archive` "
            "of a commit's src/) instead of the installed one",
        )
        p.add_argument(
            "--drivers",
            help="driver keys to run, e.g. agents-mcp-stdio,hop-stdio",
        )
        p.add_argument(
            "--runs",
            type=int,
            help="full runs, one after the other (default: 3 for a complete run, else 1);"
            " the README summary is only updated from 3 or more",
        )
        p.add_argument(
            "--telemetry",
            action="store_true",
            help="also run agents-mcp exporting traces and metrics (OTLP/HTTP) to a local"
            " receiver, as extra drivers in the same interleaved run",
        )
        p.add_argument(
            "--baseline",
            action="append",
            metavar="DIR[=TAG]",
            help="also run the agents-mcp checked out in DIR, with its own DIR/.venv, as"
            " extra drivers in the same interleaved run (e.g. a `git worktree` of an older"
            " commit), or the interpreter (a script) DIR names; repeatable",
        )
    sub.add_parser("install-peers", help="create the peer virtual environments")
    args = parser.parse_args(argv)
    if args.command == "install-peers":
        WORK.mkdir(parents=True, exist_ok=True)

        async def install() -> int:
            reasons = [await peers.install(p, log=WORK / f"pip-{p.key}.log") for p in peers.PEERS]
            for peer, why in zip(peers.PEERS, reasons, strict=True):
                print(f"{peer.key}: {why or 'ok'}")
            return 1 if any(reasons) else 0

        return asyncio.run(install())
    args.smoke = args.command == "smoke"
    if not args.smoke:
        args.root = WORK
        _scratch_homes(WORK / "home")
        return asyncio.run(run(args))
    # CI's run: it writes only in a temporary directory, removed afterwards.
    with tempfile.TemporaryDirectory(prefix="agents-mcp-smoke-") as tmp:
        args.root, args.quick = Path(tmp), True
        _scratch_homes(args.root / "home")
        asyncio.run(adapters.main(conversations=2, rounds=1))  # keeps it working
        if asyncio.run(providers.main(warmup=1, rounds=1, batch=1)):
            print("benchmark errors: python -m benchmarks.providers", file=sys.stderr)
            return 1
        return asyncio.run(run(args))


def _scratch_homes(root: Path) -> None:
    """Where agents-mcp and the servers it starts keep their files (the servers' stderr
    logs, a default database, client configs): under ``root``, never the user's home.
    Set in this process's environment: every process it starts inherits it."""
    for name in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        os.environ[name] = str(root / name.removeprefix("XDG_").removesuffix("_HOME").lower())


if __name__ == "__main__":
    raise SystemExit(main())
