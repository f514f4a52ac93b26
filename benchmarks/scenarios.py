"""The scenarios S1–S5, run against live workers and raw stdio servers.

Every scenario interleaves its drivers round by round (rotating the order each round), so
load from the rest of the machine falls on all of them alike.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import procstat
from benchmarks.drivers.protocol import directive, expected
from benchmarks.harness import FakeLLM, RawStdio, Sample, Worker


@dataclass(frozen=True)
class Sizes:
    s1_warmup: int
    s1_rounds: int
    s1_batch: int
    s2_rounds: int
    s2_concurrency: int
    load_levels: tuple[int, ...]
    load_rounds: int
    load_waves: int
    s3_reps: int
    s4_sizes: tuple[int, ...]
    s4_rounds: int
    s4_turns: int
    s5_reps: int
    s5_threads: int
    s1_k: int = 5
    s2_k: int = 3
    s2_latency_ms: int = 50
    s4_k: int = 1
    load_k: int = 3
    load_latency_ms: int = 50
    list_threads: int = 100_000
    list_calls: int = 30


FULL = Sizes(
    s1_warmup=5,
    s1_rounds=10,
    s1_batch=10,
    s2_rounds=9,
    s2_concurrency=50,
    load_levels=(50, 100, 200, 400),
    load_rounds=3,
    load_waves=2,
    s3_reps=5,
    s4_sizes=(10, 1000, 5000),
    s4_rounds=5,
    s4_turns=10,
    s5_reps=3,
    s5_threads=10_000,
)
QUICK = Sizes(
    s1_warmup=2,
    s1_rounds=2,
    s1_batch=3,
    s2_rounds=1,
    s2_concurrency=10,
    load_levels=(10, 20),
    load_rounds=1,
    load_waves=1,
    s3_reps=1,
    s4_sizes=(10, 500),
    s4_rounds=1,
    s4_turns=2,
    s5_reps=1,
    s5_threads=300,
    list_threads=2_000,
    list_calls=3,
)


def _rotated(items: Sequence[Worker], r: int) -> list[Worker]:
    k = r % len(items) if items else 0
    return [*items[k:], *items[:k]]


async def s1(workers: Sequence[Worker], fake: FakeLLM, z: Sizes) -> dict[str, list[Sample]]:
    """One conversation at a time, K tool calls, no LLM latency."""
    warm = {"op": "batch", "n": z.s1_warmup, "k": z.s1_k, "latency_ms": 0, "tag": "warm"}
    for w in workers:
        await w.call(warm, fake)
    out: dict[str, list[Sample]] = {w.key: [] for w in workers}
    for r in range(z.s1_rounds):
        for w in _rotated(workers, r):
            cmd = {"op": "batch", "n": z.s1_batch, "k": z.s1_k, "latency_ms": 0, "tag": f"s1-{r}"}
            out[w.key].append(await w.call(cmd, fake))
    return out


async def s2(workers: Sequence[Worker], fake: FakeLLM, z: Sizes) -> dict[str, list[Sample]]:
    """Concurrent conversations with LLM latency."""
    c = z.s2_concurrency
    out: dict[str, list[Sample]] = {w.key: [] for w in workers}
    for r in range(z.s2_rounds):
        for w in _rotated(workers, r):
            cmd = {
                "op": "batch",
                "n": c,
                "k": z.s2_k,
                "latency_ms": z.s2_latency_ms,
                "concurrency": c,
                "tag": f"s2-{r}",
            }
            out[w.key].append(await w.call(cmd, fake))
    return out


async def load(
    workers: Sequence[Worker], fake: FakeLLM, z: Sizes
) -> dict[str, dict[int, list[Sample]]]:
    """The HTTP drivers at each concurrency level: ``load_waves`` × level conversations
    (K=3, 50 ms per LLM request), at most ``level`` at a time; levels and drivers
    interleaved round by round. Worker key → level → samples."""
    http = [w for w in workers if "-http" in w.key]
    out: dict[str, dict[int, list[Sample]]] = {w.key: {} for w in http}
    for r in range(z.load_rounds):
        for i, level in enumerate(z.load_levels):
            for w in _rotated(http, r + i):
                cmd = {
                    "op": "batch",
                    "n": level * z.load_waves,
                    "k": z.load_k,
                    "latency_ms": z.load_latency_ms,
                    "concurrency": level,
                    "tag": f"load{level}-{r}",
                }
                out[w.key].setdefault(level, []).append(await w.call(cmd, fake))
    return out


def rss_after(workers: Sequence[Worker]) -> dict[str, dict[str, int]]:
    """RSS of each driver's server process (or of the driver itself when in-process)."""
    out: dict[str, dict[str, int]] = {}
    for w in workers:
        pid = w.server_pid() or (w.proc.pid if w.proc is not None else None)
        if pid is not None:
            out[w.key] = procstat.memory_kb(pid)
    return out


@dataclass
class History:
    runs: dict[str, dict[int, list[Sample]]] = field(default_factory=dict)
    """Worker key → stored messages → samples (the floor under its own key)."""


async def s4(
    stored: Sequence[tuple[Worker, dict[int, str]]], floor: Worker, fake: FakeLLM, z: Sizes
) -> History:
    """One more turn on a stored thread of each size (``stored``: workers with the thread
    ids seeded in their databases), next to the floor with that history held in memory,
    which isolates what the LLM payload itself costs."""
    h = History()
    threads = {w.key: ids for w, ids in stored}

    def cmd(w: Worker, size: int, n: int) -> dict[str, Any]:
        if w.key in threads:
            return {"op": "turns", "thread_id": threads[w.key][size], "n": n, "k": z.s4_k}
        return {"op": "history_turns", "size": size, "n": n, "k": z.s4_k}

    workers = [*(w for w, _ in stored), floor]
    for size in z.s4_sizes:  # warm-up: first touch of each thread / history
        for w in workers:
            await w.call(cmd(w, size, 1), fake)
    for r in range(z.s4_rounds):
        for i, size in enumerate(z.s4_sizes):
            for w in _rotated(workers, r + i):
                sample = await w.call(cmd(w, size, z.s4_turns), fake)
                h.runs.setdefault(w.key, {}).setdefault(size, []).append(sample)
    return h


@dataclass
class ServerKind:
    key: str
    label: str
    argv: list[str]
    call: tuple[str, dict[str, Any], str]
    """First tools/call: (tool, arguments, text expected in the answer)."""


@dataclass
class ColdStart:
    init_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    children_at_init: list[int] = field(default_factory=list)
    idle_rss_kb: list[int] = field(default_factory=list)
    idle_children: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def chat_call() -> tuple[str, dict[str, Any], str]:
    return "chat_with_agent", {"agent": "bench", "message": directive(1, 0, "cold")}, expected(1)


async def _one_cold(kind: ServerKind, log: Path, cs: ColdStart) -> None:
    srv = RawStdio(kind.argv, log)
    try:
        await srv.spawn()
        init = await srv.initialize()
        assert srv.proc is not None
        kids = len(procstat.children(srv.proc.pid))
        tool, arguments, want = kind.call
        reply = await srv.request(2, "tools/call", {"name": tool, "arguments": arguments})
        text = str(reply.get("result", reply))
        if want not in text:
            raise RuntimeError(f"unexpected first reply: {text[:300]}")
        cs.init_ms.append(init["elapsed_ms"])
        cs.children_at_init.append(kids)
        cs.first_ms.append(reply["elapsed_ms"])
    except Exception as exc:
        cs.errors.append(f"{type(exc).__name__}: {exc}"[:400])
    finally:
        await srv.close()


async def _one_idle(kind: ServerKind, log: Path, cs: ColdStart, settle: float) -> None:
    srv = RawStdio(kind.argv, log)
    try:
        await srv.spawn()
        await srv.initialize()
        await srv.request(2, "tools/list", {})
        await asyncio.sleep(settle)
        assert srv.proc is not None
        cs.idle_rss_kb.append(procstat.memory_kb(srv.proc.pid).get("VmRSS", 0))
        cs.idle_children.append(len(procstat.children(srv.proc.pid)))
    except Exception as exc:
        cs.errors.append(f"idle: {type(exc).__name__}: {exc}"[:400])
    finally:
        await srv.close()


async def s3_s5(
    kinds: Sequence[ServerKind], reps: int, idle_reps: int, logs: Path, settle: float = 1.0
) -> dict[str, ColdStart]:
    """S3 cold start (spawn → initialize answered, spawn → first reply) and S5 idle RSS
    (after initialize and tools/list, ``settle`` seconds later), each kind interleaved."""
    out = {k.key: ColdStart() for k in kinds}
    for r in range(reps):
        for kind in _rotated_kinds(kinds, r):
            await _one_cold(kind, logs / f"cold-{kind.key}.log", out[kind.key])
    for r in range(idle_reps):
        for kind in _rotated_kinds(kinds, r):
            await _one_idle(kind, logs / f"idle-{kind.key}.log", out[kind.key], settle)
    return out


def _rotated_kinds(kinds: Sequence[ServerKind], r: int) -> list[ServerKind]:
    k = r % len(kinds) if kinds else 0
    return [*kinds[k:], *kinds[:k]]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None
