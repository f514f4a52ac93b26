"""``python -m benchmarks.postgres``: agents-mcp on PostgreSQL (issue 12's benchmarks).

* **S1 on PostgreSQL vs SQLite**: the S1 conversation (K=5, no LLM latency, one at a time,
  stdio) through two agents-mcp drivers, one per database, interleaved round by round.
  CPU per conversation is the driver's process tree, plus, for PostgreSQL, the CPU the
  cluster's processes used during the batch (its backends do the database's work, which
  SQLite does inside the server process).
* **S2 with 1, 2 and 3 replicas**: ``--concurrency`` conversations at a time (K=3, 50 ms per
  LLM request), sent round-robin to N ``agents-mcp serve --transport http`` processes on
  one PostgreSQL database (``benchmarks/drivers/replicas.py``); conversations per second
  and CPU per conversation (replicas, their downstream servers, the MCP clients, and the
  cluster), the replica counts interleaved round by round.

The cluster is a throwaway one from the machine's PostgreSQL binaries (``initdb`` and
``pg_ctl``, as ``tests/postgres.py`` starts it for the tests: ``fsync=off``, so commits cost
less than on a durable server). Prints Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

from benchmarks import procstat
from benchmarks.harness import BENCH, FakeLLM, Sample, Worker, agents_config


def _postmaster(url: str) -> int:
    """The pid of the cluster's postmaster (its backends are its children)."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    for name in os.listdir("/proc"):
        if name.isdigit():
            cmd = procstat.cmdline(int(name))
            if "postgres" in cmd and f"-p {port}" in cmd and " -D " in cmd:
                return int(name)
    raise RuntimeError(f"no postmaster listening on port {port}")


class Cluster:
    """CPU of the cluster's processes (postmaster, backends, background workers)."""

    def __init__(self, url: str) -> None:
        self.pid = _postmaster(url)

    def cpu_ms(self) -> float:
        return procstat.tree_cpu_ms(self.pid)


async def _measured(w: Worker, cmd: dict[str, object], fake: FakeLLM, pg: Cluster) -> Sample:
    before = pg.cpu_ms()
    sample = await w.call(cmd, fake)
    sample.cpu_ms["postgres"] = pg.cpu_ms() - before
    sample.cpu_ms["total"] += sample.cpu_ms["postgres"]
    return sample


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{_med(values):.2f} ({min(values):.2f}–{max(values):.2f})"


async def s1(args: argparse.Namespace, work: Path, fake: FakeLLM, pg: Cluster, url: str) -> None:
    config = work / "agents.toml"
    py = sys.executable

    def driver(key: str, db: str) -> Worker:
        argv = [py, "-m", "benchmarks.drivers.mcp_client", "--server", "agents-mcp",
                "--base-url", fake.base_url, "--config", str(config), "--db", db]  # fmt: skip
        return Worker(key, key, argv, work / f"w-{key}.log", "serve --config")

    workers = [driver("SQLite", str(work / "s1.db")), driver("PostgreSQL", url)]
    for w in workers:
        if not await w.start():
            raise SystemExit(f"{w.key}: {w.failure}")
    out: dict[str, list[Sample]] = {w.key: [] for w in workers}
    try:
        warm = {"op": "batch", "n": 5, "k": 5, "latency_ms": 0}
        for w in workers:
            await w.call(warm, fake)
        for r in range(args.rounds):
            for w in workers[r % 2 :] + workers[: r % 2]:
                cmd = {"op": "batch", "n": args.batch, "k": 5, "latency_ms": 0, "tag": f"p{r}"}
                out[w.key].append(await _measured(w, cmd, fake, pg))
    finally:
        for w in workers:
            await w.stop()
    print(
        f"S1: K=5, one conversation at a time over stdio; {args.rounds} rounds × {args.batch}"
        " conversations, interleaved; ms per conversation, median (lowest–highest round).\n"
    )
    print("| database | CPU total | server | downstream | client | PostgreSQL cluster |"
          " wall | errors |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for key, samples in out.items():
        roles = {r: _spread([s.cpu_per(r) for s in samples]) for r in
                 ("total", "server", "downstream", "client", "postgres")}  # fmt: skip
        walls = [w for s in samples for w in s.walls_ms]
        errors = sum(len(s.errors) for s in samples)
        print(f"| {key} | {roles['total']} | {roles['server']} | {roles['downstream']} |"
              f" {roles['client']} | {roles['postgres']} | {_med(walls):.1f} | {errors} |")  # fmt: skip
    ratios = [
        p.cpu_per() / s.cpu_per()
        for s, p in zip(out["SQLite"], out["PostgreSQL"], strict=True)
        if s.cpu_per()
    ]
    print(f"\nPostgreSQL × SQLite, CPU per conversation (per round): {_spread(ratios)}×\n")


async def s2(args: argparse.Namespace, work: Path, fake: FakeLLM, pg: Cluster, url: str) -> None:
    from tests.postgres import fresh_database

    config = work / "agents.toml"
    workers = []
    for n in (1, 2, 3):
        db = await fresh_database(url)
        argv = [sys.executable, "-m", "benchmarks.drivers.replicas", "--replicas", str(n),
                "--config", str(config), "--db", db]  # fmt: skip
        workers.append(Worker(f"{n}", f"{n} replica(s)", argv, work / f"w-r{n}.log"))
    for w in workers:
        if not await w.start():
            raise SystemExit(f"{w.key} replicas: {w.failure}")
    c = args.concurrency
    out: dict[str, list[Sample]] = {w.key: [] for w in workers}
    try:
        warm = {"op": "batch", "n": 60, "k": 3, "latency_ms": 50, "concurrency": 60}
        for w in workers:
            await w.call(warm, fake)
        for r in range(args.rounds_s2):
            for w in workers[r % 3 :] + workers[: r % 3]:
                cmd = {"op": "batch", "n": 2 * c, "k": 3, "latency_ms": 50, "concurrency": c}
                out[w.key].append(await _measured(w, cmd, fake, pg))
    finally:
        for w in workers:
            await w.stop()
    print(
        f"S2 on one PostgreSQL database: {2 * c} conversations, {c} at a time, K=3, 50 ms per"
        f" LLM request, round-robin over the replicas; {args.rounds_s2} rounds, interleaved."
        " CPU per conversation: the replicas and their downstream servers, the MCP clients"
        " (one process) and the cluster.\n"
    )
    print("| replicas | conversations/s | × 1 replica | CPU ms/conv | replicas' CPU |"
          " clients' CPU | PostgreSQL CPU | errors |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    base = None
    for key, samples in out.items():
        rate = [s.n / (s.total_ms / 1000.0) for s in samples if not s.errors]
        base = base or _med(rate)
        print(f"| {key} | {_spread(rate)} | {_med(rate) / base:.2f}× |"
              f" {_spread([s.cpu_per() for s in samples])} |"
              f" {_med([s.cpu_per('other') + s.cpu_per('downstream') for s in samples]):.2f} |"
              f" {_med([s.cpu_per('client') for s in samples]):.2f} |"
              f" {_med([s.cpu_per('postgres') for s in samples]):.2f} |"
              f" {sum(len(s.errors) for s in samples)} |")  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    from tests.postgres import cluster, fresh_database

    work = BENCH / ".work" / "postgres"
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*.db*"):
        if old.is_file():
            old.unlink()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    with cluster() as admin:
        pg = Cluster(admin)
        fake = FakeLLM()
        await fake.start()
        try:
            (work / "agents.toml").write_text(agents_config(fake.base_url))
            if "s1" in args.only:
                await s1(args, work, fake, pg, await fresh_database(admin))
            if "s2" in args.only:
                await s2(args, work, fake, pg, admin)
        finally:
            await fake.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="S1 rounds")
    parser.add_argument("--batch", type=int, default=10, help="S1 conversations per round")
    parser.add_argument("--rounds-s2", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--only", default="s1,s2")
    asyncio.run(main(parser.parse_args()))
