"""Markdown for the runs of one invocation: targets over runs, then each run's tables.

A target's value in one run is the median, over that run's rounds, of the ratio between
drivers measured in the same round (drivers are interleaved), with the spread (lowest and
highest round) beside it. Over several full runs, the verdict is on the median of the
runs' values; every run's value is shown, so the best one cannot hide the others.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import Sample
from benchmarks.scenarios import ColdStart, History, Sizes

AM_STDIO, AM_HTTP = "agents-mcp-stdio", "agents-mcp-http"
OTEL = "+otel"
"""Suffix of the drivers that export telemetry (``--telemetry``)."""
NORMAL = "-normal"
"""Suffix of the drivers whose config sets ``sqlite_durability = "may-lose-last-commits"``
(``synchronous=NORMAL``); the others run with the default, ``full``."""
AM_STDIO_NORMAL, AM_HTTP_NORMAL = AM_STDIO + NORMAL, AM_HTTP + NORMAL
MIN, HOP_STDIO, HOP_HTTP = "minimal", "hop-stdio", "hop-http"
PEER_KEYS = ("openai-agents", "pydantic-ai")
README_START, README_END = "<!-- latest-results:start -->", "<!-- latest-results:end -->"


@dataclass
class RunData:
    started: str
    quick: bool
    sizes: Sizes
    machine: dict[str, Any]
    versions: dict[str, dict[str, str]]
    drivers: list[tuple[str, str, str | None]]
    """(key, label, None if it ran else why not)."""
    s1: dict[str, list[Sample]] = field(default_factory=dict)
    s2: dict[str, list[Sample]] = field(default_factory=dict)
    load: dict[str, dict[int, list[Sample]]] = field(default_factory=dict)
    """HTTP drivers under load: key → concurrency → samples (one per round)."""
    rss_after_s2: dict[str, dict[str, int]] = field(default_factory=dict)
    s4: History | None = None
    cold: dict[str, ColdStart] = field(default_factory=dict)
    cold_labels: dict[str, str] = field(default_factory=dict)
    listing: dict[str, dict[str, Any]] = field(default_factory=dict)
    """S6: variant ("agents-mcp" or a baseline's key) → ``benchmarks.listing`` output."""
    baselines: list[str] = field(default_factory=list)
    """Tags of the baseline agents-mcp versions run beside this one (``--baseline``)."""
    loads: dict[str, float] = field(default_factory=dict)
    """1-minute load average when each scenario started, and min/median/max over the run."""
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    fsync: dict[str, Any] = field(default_factory=dict)
    """``benchmarks.fsync`` in the run's directory, at its start: the disk's syncs/s."""
    commits: list[dict[str, Any]] = field(default_factory=list)
    """``benchmarks.commits`` (one line per writers × durability), after the runs."""


def _med(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _errors(samples: Sequence[Sample]) -> list[str]:
    return [e for s in samples for e in s.errors]


def _hop_for(key: str) -> str:
    return HOP_HTTP if "-http" in key else HOP_STDIO


# -- per-round values ------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """A median over rounds, with the lowest and highest round."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Spread | None:
        vs = [v for v in values if v is not None]
        return cls(statistics.median(vs), min(vs), max(vs)) if vs else None

    def fmt(self, unit: Callable[[float], str]) -> str:
        return f"{unit(self.median)} ({unit(self.low)}–{unit(self.high)})"


def _paired(
    a: Sequence[Sample], b: Sequence[Sample], value: Callable[[Sample], float | None]
) -> list[float | None]:
    """Per round: ``value`` of ``a``'s sample over that of ``b``'s (same round)."""
    return [_ratio(value(x), value(y)) for x, y in zip(a, b, strict=False)]


def s1_wall(d: RunData, key: str) -> float | None:
    return _med([w for s in d.s1.get(key, []) for w in s.walls_ms])


def s1_cpu(d: RunData, key: str, role: str = "total") -> float | None:
    return _med([s.cpu_per(role) for s in d.s1.get(key, [])])


def s1_ratio(d: RunData, key: str, other: str) -> Spread | None:
    return Spread.of(_paired(d.s1.get(key, []), d.s1.get(other, []), lambda s: s.cpu_per()))


def s2_total(d: RunData, key: str) -> float | None:
    return _med([s.total_ms for s in d.s2.get(key, []) if not s.errors])


def s2_ratio(d: RunData, key: str, other: str) -> Spread | None:
    return Spread.of(
        _paired(
            d.s2.get(key, []),
            d.s2.get(other, []),
            lambda s: None if s.errors else s.total_ms,
        )
    )


def _throughput(s: Sample) -> float | None:
    return None if s.errors or s.total_ms <= 0 else s.n / (s.total_ms / 1000.0)


def load_growth(d: RunData, key: str) -> list[float | None]:
    """Per round: CPU per conversation at the highest level over that at the lowest."""
    levels = d.load.get(key, {})
    if len(levels) < 2:
        return []
    lo, hi = levels[min(levels)], levels[max(levels)]
    return [_ratio(b.cpu_per(), a.cpu_per()) for a, b in zip(lo, hi, strict=False)]


def load_growth_vs_hop(d: RunData, key: str) -> Spread | None:
    """Per round: our growth from the lowest to the highest level over the hop's."""
    ours, hop = load_growth(d, key), load_growth(d, _hop_for(key))
    return Spread.of([_ratio(a, b) for a, b in zip(ours, hop, strict=False)])


def load_throughput_vs_hop(d: RunData, key: str) -> Spread | None:
    levels, hop = d.load.get(key, {}), d.load.get(_hop_for(key), {})
    if not levels or not hop:
        return None
    top = max(levels)
    return Spread.of(
        [
            _ratio(_throughput(a), _throughput(b))
            for a, b in zip(levels[top], hop.get(top, []), strict=False)
        ]
    )


def s4_rows(h: History, key: str = AM_STDIO) -> list[dict[str, Any]]:
    """Per stored size: medians, and the per-round ratio of the turn's own CPU (the LLM
    payload's growth, measured on the floor in the same round, taken out) to the first
    size's."""
    runs, floor = h.runs.get(key, {}), h.runs.get(MIN, {})
    sizes = sorted(runs)
    if not sizes:
        return []
    first = sizes[0]
    rows = []
    for size in sizes:
        am, fl = runs[size], floor.get(size, [])
        row: dict[str, Any] = {
            "size": size,
            "am_cpu": _med([s.cpu_per() for s in am]),
            "am_server": _med([s.cpu_per("server") for s in am]),
            "am_wall": _med([w for s in am for w in s.walls_ms]),
            "floor_cpu": _med([s.cpu_per() for s in fl]),
            "floor_wall": _med([w for s in fl for w in s.walls_ms]),
        }
        excl: list[float | None] = []
        payloads: list[float] = []
        for r, s in enumerate(am):
            try:
                f_now, f_first = fl[r], floor[first][r]
                base = runs[first][r]
            except (IndexError, KeyError):
                continue
            payload = f_now.cpu_per() - f_first.cpu_per()
            payloads.append(payload)
            excl.append(_ratio(s.cpu_per() - payload, base.cpu_per()))
        row["payload_cpu"] = _med(payloads)
        row["am_excl"] = (
            None if row["am_cpu"] is None or row["payload_cpu"] is None
            else row["am_cpu"] - row["payload_cpu"]
        )  # fmt: skip
        row["ratio"] = Spread.of(excl)
        row["ratio_raw"] = Spread.of(
            [_ratio(s.cpu_per(), b.cpu_per()) for s, b in zip(am, runs[first], strict=False)]
        )
        rows.append(row)
    return rows


# -- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    value: Spread | None
    limit: float
    below: bool = True
    unit: str = "×"
    """"×", "ms", "MiB" or "errors"."""

    def fmt(self, v: float | None) -> str:
        if v is None:
            return "–"
        if self.unit == "×":
            return f"{v:.2f}×"
        if self.unit == "errors":
            return f"{v:.0f}"
        if self.unit == "MiB":
            return f"{v:+.1f} MiB"
        return f"{v:.2f} {self.unit}"

    def shown(self) -> str:
        return "–" if self.value is None else self.value.fmt(self.fmt)

    def met(self, v: float | None) -> str:
        if v is None:
            return "not measured"
        ok = v <= self.limit if self.below else v >= self.limit
        return "**met**" if ok else "**missed**"


def targets(d: RunData, tag: str | None = None) -> list[Target]:
    """The targets of one run (see ``benchmarks/README.md``), for this version or, with
    ``tag``, for that baseline's drivers."""
    at = f"@{tag}" if tag else ""
    am_stdio, am_http = AM_STDIO + at, AM_HTTP + at
    out = [
        Target("S1 CPU/conv ≤ 1.15× minimal + hop (stdio)", s1_ratio(d, am_stdio, HOP_STDIO), 1.15)
    ]
    for peer in PEER_KEYS:
        out.append(Target(f"S1 CPU/conv ≤ 0.45× {peer}", s1_ratio(d, am_stdio, peer), 0.45))
    out.append(
        Target("S2 total ≤ 1.2× minimal + hop (stdio)", s2_ratio(d, am_stdio, HOP_STDIO), 1.2)
    )
    levels = d.sizes.load_levels
    lo, hi = (levels[0], levels[-1]) if levels else (0, 0)
    out.append(
        Target(
            f"HTTP CPU/conv growth {lo} → {hi} concurrent ≤ 1.0× the hop's growth",
            load_growth_vs_hop(d, am_http),
            1.0,
        )
    )
    out.append(
        Target(
            f"HTTP throughput at {hi} concurrent ≥ 0.95× the hop's",
            load_throughput_vs_hop(d, am_http),
            0.95,
            below=False,
        )
    )
    heavy = [s for samples in d.load.get(am_http, {}).values() for s in samples]
    if heavy:
        errs = float(len(_errors(heavy)))
        out.append(
            Target(
                f"HTTP up to {hi} concurrent: errors", Spread(errs, errs, errs), 0, unit="errors"
            )
        )
    cold_am, cold_bare = d.cold.get("agents-mcp" + at), d.cold.get("bare")
    init = None
    if cold_am and cold_bare:
        init = Spread.of(
            [_ratio(a, b) for a, b in zip(cold_am.init_ms, cold_bare.init_ms, strict=False)]
        )
    out.append(Target("S3 spawn → initialize ≤ 1.2× bare FastMCP", init, 1.2))
    if cold_am and cold_am.children_at_init:
        kids = float(max(cold_am.children_at_init))
        out.append(
            Target(
                "S3 downstream servers started before initialize is answered",
                Spread(kids, kids, kids),
                0,
                unit="errors",
            )
        )
    if d.s4 is not None:
        rows = s4_rows(d.s4, am_stdio)
        if rows:
            out.append(
                Target(
                    f"S4 turn at {rows[-1]['size']:,} messages ≤ 1.3× at {rows[0]['size']}"
                    " (LLM payload's growth excluded)",
                    rows[-1]["ratio"],
                    1.3,
                )
            )
    rss = None
    if cold_am and cold_bare:
        rss = Spread.of(
            [_ratio(a, b) for a, b in zip(cold_am.idle_rss_kb, cold_bare.idle_rss_kb, strict=False)]
        )
    out.append(Target("S5 idle RSS ≤ 1.2× bare FastMCP", rss, 1.2))
    many = None if tag else d.cold.get("agents-mcp-threads")
    if many and cold_am and many.idle_rss_kb and cold_am.idle_rss_kb:
        grow = (statistics.median(many.idle_rss_kb) - statistics.median(cold_am.idle_rss_kb)) / 1024
        out.append(
            Target(
                f"S5 {d.sizes.s5_threads:,} stored threads raise idle RSS by ≤ 2 MiB",
                Spread(grow, grow, grow),
                2.0,
                unit="MiB",
            )
        )
    listing = d.listing.get(tag or "agents-mcp")
    if listing:
        worst = max(listing["filters"].items(), key=lambda kv: kv[1]["median_ms"])
        ms = [f["median_ms"] for f in listing["filters"].values()]
        out.append(
            Target(
                f"S6 list_threads, slowest filter ≤ 5 ms at {listing['threads']:,} threads"
                f" (this run: {worst[0]})",
                Spread(max(ms), min(ms), max(ms)),
                5.0,
                unit="ms",
            )
        )
    return out


# -- tables of one run -------------------------------------------------------------------------


def main_table(d: RunData) -> list[str]:
    z = d.sizes
    head = (
        "| driver | S1 wall ms/conv | S1 CPU ms/conv | client / server / downstream | "
        "× minimal | × minimal + hop (rounds) | fake LLM CPU ms/conv | "
        f"S2 total ms ({z.s2_concurrency} conc.) | × ideal | × minimal + hop | S2 errors | "
        "server RSS after S2 MiB |"
    )
    lines = [head, "|" + "---|" * 12]
    ideal = (z.s2_k + 1) * z.s2_latency_ms
    for key, label, why in d.drivers:
        if why is not None:
            lines.append(f"| {label} | skipped: {why} |" + " |" * 10)
            continue
        cpu = s1_cpu(d, key)
        roles = " / ".join(_f(s1_cpu(d, key, r)) for r in ("client", "server", "downstream"))
        fake = _med([s.fake_cpu_ms / max(1, s.n) for s in d.s1.get(key, [])])
        total = s2_total(d, key)
        rss = d.rss_after_s2.get(key, {}).get("VmRSS")
        hop = s1_ratio(d, key, _hop_for(key))
        lines.append(
            f"| {label} | {_f(s1_wall(d, key))} | {_f(cpu, 2)} | {roles} | "
            f"{_x(_ratio(cpu, s1_cpu(d, MIN)))} | {hop.fmt(_x) if hop else '–'} | "
            f"{_f(fake)} | {_f(total, 0)} | {_x(_ratio(total, ideal))} | "
            f"{_x(_ratio(total, s2_total(d, _hop_for(key))))} | {len(_errors(d.s2.get(key, [])))} | "
            f"{_f(rss / 1024 if rss else None)} |"
        )
    return lines


def load_table(d: RunData) -> list[str]:
    labels = {k: label for k, label, _ in d.drivers}
    lines = [
        "| driver | concurrent | conversations/s | CPU ms/conv (rounds) | server CPU ms/conv | "
        "CPU × lowest level | errors |",
        "|" + "---|" * 7,
    ]
    for key, levels in d.load.items():
        base = _med([s.cpu_per() for s in levels.get(min(levels), [])]) if levels else None
        for level in sorted(levels):
            samples = levels[level]
            cpu = Spread.of([s.cpu_per() for s in samples])
            lines.append(
                f"| {labels.get(key, key)} | {level} | "
                f"{_f(_med([t for s in samples if (t := _throughput(s)) is not None]))} | "
                f"{cpu.fmt(lambda v: f'{v:.2f}') if cpu else '–'} | "
                f"{_f(_med([s.cpu_per('server') for s in samples]), 2)} | "
                f"{_x(_ratio(cpu.median if cpu else None, base))} | {len(_errors(samples))} |"
            )
    return lines


def cold_table(d: RunData) -> list[str]:
    bare = d.cold.get("bare")
    b_init = _med(bare.init_ms) if bare else None
    b_first = _med(bare.first_ms) if bare else None
    b_rss = _med(bare.idle_rss_kb) if bare else None
    lines = [
        "| server | spawn → initialize ms | × bare | spawn → first reply ms | × bare | "
        "children at initialize | idle RSS MiB | × bare | errors |",
        "|" + "---|" * 9,
    ]
    for key, cs in d.cold.items():
        init, first = _med(cs.init_ms), _med(cs.first_ms)
        rss = _med(cs.idle_rss_kb)
        lines.append(
            f"| {d.cold_labels.get(key, key)} | {_f(init, 0)} | {_x(_ratio(init, b_init))} | "
            f"{_f(first, 0)} | {_x(_ratio(first, b_first))} | "
            f"{max(cs.children_at_init, default='–')} | {_f(rss / 1024 if rss else None)} | "
            f"{_x(_ratio(rss, b_rss))} | {len(cs.errors)} |"
        )
    return lines


def history_table(h: History, labels: dict[str, str]) -> list[str]:
    lines = [
        "| driver | stored messages | CPU ms/turn (server) | wall ms/turn | floor CPU ms/turn | "
        "floor wall ms/turn | LLM payload CPU (floor − floor at first size) | "
        "CPU excl. payload | × first size (rounds) | raw CPU × first size |",
        "|" + "---|" * 10,
    ]
    for key in h.runs:
        if key == MIN:
            continue
        for row in s4_rows(h, key):
            ratio, raw = row["ratio"], row["ratio_raw"]
            lines.append(
                f"| {labels.get(key, key)} | {row['size']:,} | {_f(row['am_cpu'], 2)} "
                f"({_f(row['am_server'], 2)}) | {_f(row['am_wall'])} | "
                f"{_f(row['floor_cpu'], 2)} | {_f(row['floor_wall'])} | "
                f"{_f(row['payload_cpu'], 2)} | {_f(row['am_excl'], 2)} | "
                f"{ratio.fmt(_x) if ratio else '–'} | {raw.fmt(_x) if raw else '–'} |"
            )
    return lines


def listing_table(d: RunData) -> list[str]:
    variants = list(d.listing)
    if not variants:
        return []
    lines = [
        "| filter | " + " | ".join(f"{v} ms (min–max)" for v in variants) + " | found | "
        f"query plan ({variants[0]}) |",
        "|" + "---|" * (len(variants) + 3),
    ]
    first = d.listing[variants[0]]["filters"]
    for name, f in first.items():
        cells = []
        for v in variants:
            g = d.listing[v]["filters"].get(name)
            cells.append(
                "–" if g is None else f"{g['median_ms']:.2f} ({g['min_ms']:.2f}–{g['max_ms']:.2f})"
            )
        lines.append(f"| {name} | {' | '.join(cells)} | {f['found']} | {'; '.join(f['plan'])} |")
    return lines


def baseline_table(d: RunData) -> list[str]:
    """Each baseline's targets beside this version's, from the same interleaved run."""
    if not d.baselines:
        return []
    now = targets(d)
    cols = [targets(d, tag) for tag in d.baselines]
    lines = [
        "| target | " + " | ".join(d.baselines) + " | this version |",
        "|" + "---|" * (len(d.baselines) + 2),
    ]
    for t in now:
        olds = []
        for col in cols:
            match = next((o for o in col if o.name.split(" (")[0] == t.name.split(" (")[0]), None)
            olds.append(match.shown() if match else "–")
        lines.append(f"| {t.name} | {' | '.join(olds)} | {t.shown()} |")
    return lines


def telemetry_table(d: RunData) -> list[str]:
    """S1 with telemetry off and exported, and each baseline's, from one interleaved run."""
    keys = {k for k, _, why in d.drivers if why is None}
    if not any(k.endswith(OTEL) for k in keys):
        return []
    lines = [
        "| transport | off: wall ms / CPU ms | exported: wall ms / CPU ms | exported − off, "
        "CPU ms (per-round ratio) | "
        + " | ".join(f"{tag}: wall ms / CPU ms" for tag in d.baselines)
        + (" |" if d.baselines else "|"),
        "|" + "---|" * (4 + len(d.baselines)),
    ]
    for base in (AM_STDIO, AM_HTTP):
        on = base + OTEL
        if base not in keys or on not in keys:
            continue
        off_cpu, on_cpu = s1_cpu(d, base), s1_cpu(d, on)
        cost = None if off_cpu is None or on_cpu is None else on_cpu - off_cpu
        ratio = s1_ratio(d, on, base)
        cells = [
            f"{_f(s1_wall(d, k))} / {_f(s1_cpu(d, k), 2)}"
            for k in (base, on, *(f"{base}@{t}" for t in d.baselines))
        ]
        lines.append(
            f"| {base.removeprefix('agents-mcp-')} | {cells[0]} | {cells[1]} | "
            f"{_f(cost, 2)} ({ratio.fmt(_x) if ratio else '–'}) | "
            + " | ".join(cells[2:])
            + (" |" if cells[2:] else "")
        )
    return lines


def render_run(d: RunData, level: str = "##") -> list[str]:
    z = d.sizes
    m = d.machine
    loads = d.loads
    out = [
        f"Started {d.started}; took {d.duration_s:.0f} s. Load average (1 min) "
        f"{m.get('load_before')} before, {m.get('load_after')} after; sampled every 5 s "
        f"during the run: min {_f(loads.get('min'), 2)}, median {_f(loads.get('median'), 2)}, "
        f"max {_f(loads.get('max'), 2)}; at the start of each scenario: "
        + ", ".join(f"{k} {v:.2f}" for k, v in loads.items() if k not in ("min", "median", "max"))
        + ".",
        "",
        f"{level} Targets",
        "",
        "| target | median over rounds (lowest–highest round) | verdict |",
        "|---|---|---|",
        *(
            f"| {t.name} | {t.shown()} | {t.met(t.value.median if t.value else None)} |"
            for t in targets(d)
        ),
        "",
        f"{level} S1 and S2 by driver",
        "",
        f"S1: one conversation at a time, K={z.s1_k} tool calls, 0 ms LLM latency; "
        f"{z.s1_rounds}×{z.s1_batch} conversations per driver after {z.s1_warmup} warm-up, "
        "interleaved; wall = median per conversation, CPU = median of per-batch means "
        "(driver process tree, fake LLM excluded and shown apart); × minimal + hop = median "
        "of the per-round ratios (lowest–highest round). "
        f"S2: {z.s2_concurrency} concurrent conversations, K={z.s2_k}, {z.s2_latency_ms} ms "
        f"per LLM request (ideal {(z.s2_k + 1) * z.s2_latency_ms} ms), median of {z.s2_rounds}.",
        "",
        *main_table(d),
        "",
    ]
    if telemetry_table(d):
        out += [
            f"{level} Telemetry",
            "",
            "S1 per conversation with telemetry off (no OTEL_* set: the SDK is never imported),"
            " with traces and metrics exported over OTLP/HTTP to a receiver on this host"
            " (`--telemetry`), and on each baseline, drivers interleaved in the same run.",
            "",
            *telemetry_table(d),
            "",
        ]
    if d.load:
        out += [
            f"{level} Under load (HTTP)",
            "",
            f"{z.load_waves} × N conversations at most N at a time, K={z.load_k}, "
            f"{z.load_latency_ms} ms per LLM request, {z.load_rounds} rounds, levels and "
            "drivers interleaved. CPU = the driver's process tree (MCP client, server, "
            "downstream) per conversation.",
            "",
            *load_table(d),
            "",
        ]
    out += [
        f"{level} S3 cold start and S5 idle memory",
        "",
        f"Raw JSON-RPC over stdio, median of {z.s3_reps} (idle RSS: {z.s5_reps}, read 1 s after "
        "initialize + tools/list). First reply: `chat_with_agent` with K=1 (bare server: `echo`).",
        "",
        *cold_table(d),
        "",
    ]
    if d.s4 is not None:
        out += [
            f"{level} S4 history",
            "",
            f"One more turn (K={z.s4_k}) on a stored thread; {z.s4_rounds}×{z.s4_turns} turns per "
            "size after one warm-up turn. The floor runs the same turn after the same history held "
            "in memory, so its growth is the price of the LLM payload itself, which every loop "
            "pays; it is taken out round by round.",
            "",
            *history_table(d.s4, {k: label for k, label, _ in d.drivers}),
            "",
        ]
    if d.listing:
        n = next(iter(d.listing.values()))["threads"]
        out += [
            f"{level} S6 list_threads at {n:,} threads",
            "",
            f"One page (20) per call, in process (the store's query and the pending calls of "
            f"the waiting threads shown), median of {z.list_calls} calls after one warm-up; "
            "`benchmarks/listing.py` says how the threads are spread over owners, agents and "
            "statuses.",
            "",
            *listing_table(d),
            "",
        ]
    if d.baselines:
        out += [
            f"{level} Before and after",
            "",
            "Each baseline ran as its own drivers in this same interleaved run.",
            "",
            *baseline_table(d),
            "",
        ]
    errors = {k: _errors([*d.s1.get(k, []), *d.s2.get(k, [])]) for k in d.s1}
    errors |= {
        f"{k} under load": _errors([s for v in lv.values() for s in v]) for k, lv in d.load.items()
    }
    errors |= {f"cold {k}": c.errors for k, c in d.cold.items()}
    shown = [(k, e) for k, e in errors.items() if e]
    if shown or d.notes:
        out += [f"{level} Errors and notes", ""]
        out += [f"- {k}: {len(e)} errors, first: `{e[0][:300]}`" for k, e in shown]
        out += [f"- {n}" for n in d.notes]
        out += [""]
    return out


# -- several runs ------------------------------------------------------------------------------


def over_runs(runs: Sequence[RunData]) -> list[str]:
    """Targets: each run's value (median over its rounds) and the median over runs."""
    per_run = [targets(d) for d in runs]
    names = [t.name.split(" (this run")[0] for t in per_run[-1]]
    head = " | ".join(f"run {i + 1}" for i in range(len(runs)))
    lines = [
        f"| target | {head} | median over runs | verdict |",
        "|" + "---|" * (len(runs) + 3),
    ]
    for name in names:
        ts = [
            next((t for t in ts if t.name.split(" (this run")[0] == name), None) for ts in per_run
        ]
        proto = next(t for t in ts if t is not None)
        values = [t.value.median if t and t.value else None for t in ts]
        med = _med([v for v in values if v is not None])
        cells = " | ".join(proto.fmt(v) for v in values)
        lines.append(f"| {name} | {cells} | {proto.fmt(med)} | {proto.met(med)} |")
    return lines


def baselines_over_runs(runs: Sequence[RunData]) -> list[str]:
    """Each baseline's targets beside this version's: medians over the runs."""
    tags = runs[-1].baselines
    if not tags:
        return []

    def medians(tag: str | None) -> dict[str, tuple[Target, float | None]]:
        out: dict[str, tuple[Target, float | None]] = {}
        per_run = [targets(d, tag) for d in runs]
        for t in per_run[-1]:
            name = t.name.split(" (")[0]
            values = [
                x.value.median
                for ts in per_run
                for x in ts
                if x.name.split(" (")[0] == name and x.value is not None
            ]
            out[name] = (t, _med(values))
        return out

    now = medians(None)
    olds = [medians(tag) for tag in tags]
    lines = [
        "| target | " + " | ".join(tags) + " | this version |",
        "|" + "---|" * (len(tags) + 2),
    ]
    for name, (t, value) in now.items():
        cells = [t.fmt(o[name][1]) if name in o else "–" for o in olds]
        lines.append(f"| {name} | {' | '.join(cells)} | {t.fmt(value)} |")
    return lines


def drivers_over_runs(runs: Sequence[RunData]) -> list[str]:
    """S1 CPU per conversation of each driver: the median over runs, and each run's."""
    last = runs[-1]
    lines = [
        "| driver | S1 CPU ms/conv, median over runs (each run) | × minimal + hop | "
        "S2 total ms (50 conc.) |",
        "|---|---|---|---|",
    ]
    for key, label, why in last.drivers:
        if why is not None:
            continue
        cpus = [c for d in runs if (c := s1_cpu(d, key)) is not None]
        hops = [h.median for d in runs if (h := s1_ratio(d, key, _hop_for(key))) is not None]
        s2s = [t for d in runs if (t := s2_total(d, key)) is not None]
        lines.append(
            f"| {label} | {_f(_med(cpus), 2)} ({', '.join(f'{c:.2f}' for c in cpus)}) | "
            f"{_x(_med(hops))} | {_f(_med(s2s), 0)} |"
        )
    return lines


def _wall(s: Sample) -> float | None:
    return statistics.median(s.walls_ms) if s.walls_ms else None


def _cell(values: Sequence[float | None], digits: int, unit: Callable[[float], str]) -> str:
    """The median over runs, and each run's value."""
    vs = [v for v in values if v is not None]
    if not vs:
        return "–"
    each = ", ".join(unit(v) if v is not None else "–" for v in values)
    return f"{unit(statistics.median(vs))} ({each})" if len(values) > 1 else unit(vs[0])


def _durability_rows(
    d: RunData, full: str, normal: str, transport: str
) -> list[tuple[str, float | None, float | None, float | None, int]]:
    """(measure, full, may-lose, full ÷ may-lose paired by round, digits) of one run."""

    def med(spread: Spread | None) -> float | None:
        return spread.median if spread else None

    hop = _hop_for(full)
    a1, b1 = d.s1.get(full, []), d.s1.get(normal, [])
    rows = [
        (f"S1 CPU ms/conv ({transport})", s1_cpu(d, full), s1_cpu(d, normal),
         med(s1_ratio(d, full, normal)), 2),
        (f"S1 wall ms/conv ({transport})", s1_wall(d, full), s1_wall(d, normal),
         med(Spread.of(_paired(a1, b1, _wall))), 1),
        (f"S1 CPU × minimal + hop ({transport})", med(s1_ratio(d, full, hop)),
         med(s1_ratio(d, normal, hop)), None, 2),
        (f"S2 total ms, {d.sizes.s2_concurrency} concurrent ({transport})", s2_total(d, full),
         s2_total(d, normal), med(s2_ratio(d, full, normal)), 0),
    ]  # fmt: skip
    la, lb = d.load.get(full, {}), d.load.get(normal, {})
    for level in sorted(set(la) & set(lb)):
        xs, ys = la[level], lb[level]
        rows += [
            (f"{level} concurrent: conversations/s ({transport})",
             _med([t for s in xs if (t := _throughput(s)) is not None]),
             _med([t for s in ys if (t := _throughput(s)) is not None]),
             med(Spread.of(_paired(xs, ys, _throughput))), 1),
            (f"{level} concurrent: CPU ms/conv ({transport})",
             _med([s.cpu_per() for s in xs]), _med([s.cpu_per() for s in ys]),
             med(Spread.of(_paired(xs, ys, lambda s: s.cpu_per()))), 2),
        ]  # fmt: skip
    return rows


def durability_over_runs(runs: Sequence[RunData]) -> list[str]:
    """``sqlite_durability`` "full" (the default) beside "may-lose-last-commits": the same
    agents-mcp, two drivers of the same interleaved runs."""
    lines = [
        "| measure | full (default): median over runs (each run) | may-lose-last-commits |"
        " full ÷ may-lose (per round) |",
        "|---|---|---|---|",
    ]
    pairs = [(AM_STDIO, AM_STDIO_NORMAL, "stdio"), (AM_HTTP, AM_HTTP_NORMAL, "HTTP")]
    for full, normal, transport in pairs:
        if not any(full in d.s1 and normal in d.s1 for d in runs):
            continue
        per_run = [_durability_rows(d, full, normal, transport) for d in runs]
        for i, (name, _, _, _, digits) in enumerate(per_run[-1]):
            got = [rows[i] for rows in per_run if i < len(rows) and rows[i][0] == name]

            def num(v: float, n: int = digits) -> str:
                return f"{v:,.{n}f}"

            lines.append(
                f"| {name} | {_cell([g[1] for g in got], digits, num)} | "
                f"{_cell([g[2] for g in got], digits, num)} | "
                f"{_cell([g[3] for g in got], 2, _x) if any(g[3] for g in got) else '–'} |"
            )
    return lines if len(lines) > 2 else []


def disk_lines(runs: Sequence[RunData]) -> list[str]:
    """The disk's own syncs per second (each run's start) and the store's commits."""
    out: list[str] = []
    syncs = [(i + 1, d.fsync) for i, d in enumerate(runs) if d.fsync]
    if syncs:
        out += [
            "`python -m benchmarks.fsync` in the run's directory (the drivers' databases are "
            "there) at the start of each run: 4 KiB appended and synced in a loop, as SQLite "
            "syncs its log at each commit with `synchronous=FULL` (`fdatasync` on Linux).",
            "",
            "| run | fdatasync/s | ms per fdatasync | fsync/s |",
            "|---|---|---|---|",
            *(
                f"| {i} | {f['fdatasync_per_s']:,} | {1000 / max(1, f['fdatasync_per_s']):.2f} |"
                f" {f['fsync_per_s']:,} |"
                for i, f in syncs
            ),
            "",
        ]
    commits = runs[-1].commits
    if commits:
        out += [
            "`python -m benchmarks.commits` after the runs, in the same directory: a fresh "
            "store per case, each writer appending one message to its own thread (one "
            "transaction, the write a run makes at each step) as fast as the store lets it; "
            "the disk's own fdatasync/s measured right after each case.",
            "",
            "| concurrent writers | sqlite_durability | writes/s | writes per commit | "
            "disk fdatasync/s |",
            "|---|---|---|---|---|",
            *(
                f"| {c['writers']} | {c['durability']} | {c['writes_per_s']:,} | "
                f"{c['writes_per_commit']} | {c['disk_fdatasync_per_s']:,} |"
                for c in commits
            ),
            "",
        ]
    return out


def render(runs: Sequence[RunData]) -> str:
    first, last = runs[0], runs[-1]
    m = first.machine
    out = [
        f"# agents-mcp benchmark — {first.started}{' (quick)' if first.quick else ''}",
        "",
        f"Machine: {m.get('cores')} cores ({m.get('cpu')}), {m.get('memory')}, kernel "
        f"{m.get('kernel')}; CPU clock: {m.get('cpu_clock')}. {len(runs)} full run(s), "
        f"{sum(d.duration_s for d in runs):.0f} s in all; load average (1 min) "
        f"{m.get('load_before')} before the first, {last.machine.get('load_after')} after "
        "the last. Method: `benchmarks/README.md`.",
        "",
    ]
    if len(runs) > 1:
        out += [
            "## Targets over the runs",
            "",
            "Each run's value is the median over its rounds; the verdict is on the median "
            "over runs.",
            "",
            *over_runs(runs),
            "",
            *drivers_over_runs(runs),
            "",
        ]
        if last.baselines:
            out += [
                "## Before and after over the runs",
                "",
                "Each baseline ran as its own drivers in the same interleaved runs; medians "
                "over the runs.",
                "",
                *baselines_over_runs(runs),
                "",
            ]
    durable = durability_over_runs(runs)
    if durable:
        out += [
            "## Durable commits: sqlite_durability full vs may-lose-last-commits",
            "",
            "The same agents-mcp twice in the same interleaved runs: `full` (the default: "
            "`synchronous=FULL`, a write is answered once it is on disk) and "
            "`may-lose-last-commits` (`synchronous=NORMAL`). The ratios are taken round by "
            "round, then the median over rounds and over runs.",
            "",
            *durable,
            "",
        ]
    disk = disk_lines(runs)
    if disk:
        out += ["## The disk's syncs and the store's commits", "", *disk]
    for i, d in enumerate(runs):
        title = f"## Run {i + 1} of {len(runs)}" if len(runs) > 1 else "## The run"
        out += [title, "", *render_run(d, "###")]
    out += ["## Versions", "", "| component | versions |", "|---|---|"]
    for name, versions in last.versions.items():
        out.append(f"| {name} | {', '.join(f'{k} {v}' for k, v in versions.items())} |")
    return "\n".join(out) + "\n"


def summary(runs: Sequence[RunData], results_file: str) -> str:
    """The README section: the targets over runs (median), and S1 by driver."""
    first, last = runs[0], runs[-1]
    loads = [d.loads.get("median") for d in runs]
    return "\n".join(
        [
            f"Latest full benchmark: {first.started} ([{results_file}]({results_file})), "
            f"{len(runs)} full runs on {first.machine.get('cores')} cores; median load "
            f"average during each run: {', '.join(_f(x, 2) for x in loads)}. Figures are "
            "medians over the runs (each run's value: the median over its rounds).",
            "",
            *(over_runs(runs) if len(runs) > 1 else _single(last)),
            "",
            *drivers_over_runs(runs),
            *(["", *durability_over_runs(runs)] if durability_over_runs(runs) else []),
            *_disk_summary(runs),
        ]
    )


def _disk_summary(runs: Sequence[RunData]) -> list[str]:
    rates = [f"{d.fsync['fdatasync_per_s']:,}" for d in runs if d.fsync]
    if not rates:
        return []
    return [
        "",
        f"The disk's own fdatasync/s at the start of each run: {', '.join(rates)} (one durable "
        "commit at a time cannot beat it; concurrent writes share commits).",
    ]


def _single(d: RunData) -> list[str]:
    return [
        "| target | median over rounds (lowest–highest round) | verdict |",
        "|---|---|---|",
        *(
            f"| {t.name} | {t.shown()} | {t.met(t.value.median if t.value else None)} |"
            for t in targets(d)
        ),
    ]


def update_readme(readme: Path, text: str) -> None:
    content = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if pattern.search(content):
        block = f"{README_START}\n{text}\n{README_END}"
        readme.write_text(pattern.sub(lambda _: block, content))
