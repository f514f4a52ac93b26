"""``python -m benchmarks run [--quick] [--peers | --no-peers]``: one command, one report.

``python -m benchmarks smoke`` is the CI entry point: the quick run, no results file,
exit status 1 if an agents-mcp or floor driver failed or any conversation errored.
``python -m benchmarks install-peers`` only prepares the peer venvs.
``python -m benchmarks.adapters`` compares the provider adapters' own CPU per conversation,
``python -m benchmarks.providers`` S1 through agents-mcp on each provider's fake.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import shutil
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import adapters, harness, peers, providers, report, scenarios
from benchmarks.harness import BENCH, ECHO_SERVER, HOP_SERVER, FakeLLM, Worker, agents_config
from benchmarks.report import AM_HTTP, AM_STDIO, HOP_HTTP, HOP_STDIO, MIN, RunData

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


def _workers(base_url: str, work: Path, config: Path, skip: dict[str, str | None]) -> list[Worker]:
    py = sys.executable

    def mcp(server: str, transport: str, db: str) -> list[str]:
        argv = [py, "-m", "benchmarks.drivers.mcp_client", "--server", server]
        argv += ["--transport", transport, "--base-url", base_url]
        return [*argv, "--config", str(config), "--db", db]

    am_match = "serve --config"
    ws = [
        Worker(AM_STDIO, "agents-mcp (stdio)", mcp("agents-mcp", "stdio", str(work / "s1.db")),
               work / "w-am-stdio.log", am_match),
        Worker(AM_HTTP, "agents-mcp (HTTP)", mcp("agents-mcp", "http", str(work / "http.db")),
               work / "w-am-http.log", am_match),
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


async def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    z = scenarios.QUICK if args.quick else scenarios.FULL
    started = datetime.now(UTC)
    if WORK.exists():
        shutil.rmtree(WORK)
    work = WORK / started.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    machine = _machine()
    source = {}
    if args.rev:
        args.src, commit = await _export(args.rev, work)
        source = {"agents-mcp commit": commit}
    elif args.src:
        source = {"agents-mcp src": args.src}
    if args.src:
        harness.use_src(args.src)
    peer_status = await _peers_ready(args, work)

    from agents_mcp.store import open_store
    from benchmarks.seed import seed_threads

    fake = FakeLLM()
    await fake.start()
    config = work / "agents.toml"
    config.write_text(agents_config(fake.base_url))
    only = set(args.only.split(",")) if args.only else {"s1", "s2", "s3", "s4", "s5"}
    print("seeding databases", file=sys.stderr)
    ids = await seed_threads(str(work / "s1.db"), list(z.s4_sizes))
    threads: dict[str, dict[int, str]] = {AM_STDIO: dict(zip(z.s4_sizes, ids, strict=True))}
    store = await open_store(str(work / "cold.db"))
    await store.close()
    if "s5" in only:
        await seed_threads(str(work / "many.db"), [4] * z.s5_threads)

    workers = _workers(fake.base_url, work, config, peer_status)
    if args.drivers:
        keep = set(args.drivers.split(","))
        workers = [w for w in workers if w.key in keep]
    print(f"starting {len(workers)} drivers", file=sys.stderr)
    started_ok = await asyncio.gather(*(w.start() for w in workers))
    live = [w for w, ok in zip(workers, started_ok, strict=True) if ok]
    d = RunData(
        started=started.strftime("%Y-%m-%d %H:%M UTC"),
        quick=args.quick,
        sizes=z,
        machine=machine,
        versions={},
        drivers=[(w.key, w.label, w.failure) for w in workers],
    )
    labels = {p.key: p.label for p in peers.PEERS}
    d.drivers += [(k, labels[k], why) for k, why in peer_status.items() if why is not None]
    try:
        if "s1" in only:
            print("S1", file=sys.stderr)
            d.s1 = await scenarios.s1(live, fake, z)
        if "s2" in only:
            print("S2", file=sys.stderr)
            d.s2, d.s2_http = await scenarios.s2(live, fake, z)
            d.rss_after_s2 = scenarios.rss_after(live)
        by_key = {w.key: w for w in live}
        stored = [(by_key[k], ids) for k, ids in threads.items() if k in by_key]
        if "s4" in only and stored and MIN in by_key:
            print("S4", file=sys.stderr)
            d.s4 = await scenarios.s4(stored, by_key[MIN], fake, z)
    finally:
        await asyncio.gather(*(w.stop() for w in live))
    if only & {"s3", "s5"}:
        print("S3/S5", file=sys.stderr)
    py = sys.executable
    am = [py, "-m", "agents_mcp", "serve", "--config", str(config), "--db"]
    kinds = [
        scenarios.ServerKind("bare", "bare FastMCP, one tool", [py, ECHO_SERVER],
                             ("echo", {"text": "cold hi"}, "cold hi")),
        scenarios.ServerKind("hop", "minimal loop + MCP hop", [py, HOP_SERVER, "--base-url",
                             fake.base_url], scenarios.chat_call()),
        scenarios.ServerKind("agents-mcp", "agents-mcp", [*am, str(work / "cold.db")],
                             scenarios.chat_call()),
        scenarios.ServerKind("agents-mcp-threads", f"agents-mcp, {z.s5_threads:,} stored threads",
                             [*am, str(work / "many.db")], scenarios.chat_call()),
    ]  # fmt: skip
    if "s5" not in only:  # its database was not seeded
        kinds = [k for k in kinds if k.key != "agents-mcp-threads"]
    reps = z.s3_reps if "s3" in only else 0
    d.cold = await scenarios.s3_s5(kinds, reps, z.s5_reps if "s5" in only else 0, work)
    d.cold = {k: c for k, c in d.cold.items() if c.init_ms or c.idle_rss_kb or c.errors}
    d.cold_labels = {k.key: k.label for k in kinds}
    await fake.stop()

    d.versions["agents-mcp side"] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        **(source or {"agents-mcp git": await _git()}),
        **await peers.versions(sys.executable, MAIN_DISTS),
    }
    for peer in peers.PEERS:
        if peer_status.get(peer.key) is None:
            d.versions[peer.key] = await peers.versions(str(peer.python), peer.dists)
    d.machine["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    d.duration_s = time.perf_counter() - t_start
    text = report.render(d)
    print(text)
    out = Path(args.out) if args.out else None
    complete = not (args.quick or args.only or args.drivers)
    if out is None and complete:
        out = RESULTS / f"{started.strftime('%Y-%m-%d')}.md"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
        if complete and out.parent == RESULTS:
            report.update_readme(BENCH / "README.md", report.summary(d, f"results/{out.name}"))
    return _status(d)


def _status(d: RunData) -> int:
    """1 when one of our own drivers failed or errored (peers may be missing)."""
    ours = {AM_STDIO, AM_HTTP, MIN, HOP_STDIO, HOP_HTTP}
    failed = [k for k, _, why in d.drivers if k in ours and why is not None]
    errored = [
        k for k in ours for s in [*d.s1.get(k, []), *d.s2.get(k, []), *d.s2_http.get(k, [])]
        if s.errors
    ]  # fmt: skip
    cold = [k for k, c in d.cold.items() if c.errors]
    for what, keys in (("failed", failed), ("errors", errored), ("cold-start errors", cold)):
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
    if args.smoke:
        args.quick = True
        asyncio.run(adapters.main(conversations=2, rounds=1))  # keeps it working
        if asyncio.run(providers.main(warmup=1, rounds=1, batch=1)):
            print("benchmark errors: python -m benchmarks.providers", file=sys.stderr)
            return 1
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
