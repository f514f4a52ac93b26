"""Markdown for one run: tables of figures, ratios, targets, versions and machine."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import Sample
from benchmarks.scenarios import ColdStart, History, Sizes

AM_STDIO, AM_HTTP = "agents-mcp-stdio", "agents-mcp-http"
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
    s2_http: dict[str, list[Sample]] = field(default_factory=dict)
    rss_after_s2: dict[str, dict[str, int]] = field(default_factory=dict)
    s4: History | None = None
    cold: dict[str, ColdStart] = field(default_factory=dict)
    cold_labels: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def _med(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def s1_wall(d: RunData, key: str) -> float | None:
    return _med([w for s in d.s1.get(key, []) for w in s.walls_ms])


def s1_cpu(d: RunData, key: str, role: str = "total") -> float | None:
    return _med([s.cpu_per(role) for s in d.s1.get(key, [])])


def s2_total(d: RunData, key: str) -> float | None:
    return _med([s.total_ms for s in d.s2.get(key, []) if not s.errors])


def _errors(samples: Sequence[Sample]) -> list[str]:
    return [e for s in samples for e in s.errors]


def _hop_for(key: str) -> str:
    return HOP_HTTP if key.endswith("-http") else HOP_STDIO


def s4_rows(h: History, key: str = AM_STDIO) -> list[dict[str, float | None]]:
    rows = []
    base_floor = None
    runs, floor = h.runs.get(key, {}), h.runs.get(MIN, {})
    for size in sorted(runs):
        am, fl = runs[size], floor.get(size, [])
        row: dict[str, float | None] = {
            "size": float(size),
            "am_cpu": _med([s.cpu_per() for s in am]),
            "am_server": _med([s.cpu_per("server") for s in am]),
            "am_wall": _med([w for s in am for w in s.walls_ms]),
            "floor_cpu": _med([s.cpu_per() for s in fl]),
            "floor_wall": _med([w for s in fl for w in s.walls_ms]),
        }
        if base_floor is None:
            base_floor = row
        payload = None
        if row["floor_cpu"] is not None and base_floor["floor_cpu"] is not None:
            payload = row["floor_cpu"] - base_floor["floor_cpu"]
        row["payload_cpu"] = payload
        row["am_excl"] = (
            None if row["am_cpu"] is None or payload is None else row["am_cpu"] - payload
        )
        wall_payload = None
        if row["floor_wall"] is not None and base_floor["floor_wall"] is not None:
            wall_payload = row["floor_wall"] - base_floor["floor_wall"]
        row["am_wall_excl"] = (
            None
            if row["am_wall"] is None or wall_payload is None
            else row["am_wall"] - wall_payload
        )
        rows.append(row)
    base = rows[0] if rows else None
    for row in rows:
        row["ratio"] = _ratio(row["am_excl"], base["am_excl"] if base else None)
        row["ratio_raw"] = _ratio(row["am_cpu"], base["am_cpu"] if base else None)
        row["ratio_wall"] = _ratio(row["am_wall_excl"], base["am_wall_excl"] if base else None)
    return rows


def _verdict(value: float | None, limit: float, *, below: bool = True) -> str:
    if value is None:
        return "not measured"
    ok = value <= limit if below else value >= limit
    return "**met**" if ok else "**missed**"


def targets(d: RunData) -> list[tuple[str, str, str]]:
    """(target, measured, verdict)."""
    out: list[tuple[str, str, str]] = []
    am, hop = s1_cpu(d, AM_STDIO), s1_cpu(d, HOP_STDIO)
    r = _ratio(am, hop)
    out.append(("S1 CPU/conv: agents-mcp ≤ 1.2× minimal + hop (stdio)", _x(r), _verdict(r, 1.2)))
    for peer in PEER_KEYS:
        r = _ratio(am, s1_cpu(d, peer))
        out.append((f"S1 CPU/conv: agents-mcp ≤ 0.5× {peer}", _x(r), _verdict(r, 0.5)))
    r = _ratio(s2_total(d, AM_STDIO), s2_total(d, HOP_STDIO))
    out.append(("S2 total: agents-mcp ≤ 1.2× minimal + hop (stdio)", _x(r), _verdict(r, 1.2)))
    heavy = d.s2_http.get(AM_HTTP, [])
    errs = len(_errors(heavy))
    n = sum(s.n for s in heavy)
    out.append(
        (
            f"S2 HTTP, {d.sizes.s2_http_concurrency} concurrent: no errors",
            f"{errs} errors in {n} conversations" if heavy else "–",
            ("**met**" if errs == 0 else "**missed**") if heavy else "not measured",
        )
    )
    cold_am, cold_bare = d.cold.get("agents-mcp"), d.cold.get("bare")
    r = _ratio(
        _med(cold_am.init_ms) if cold_am else None, _med(cold_bare.init_ms) if cold_bare else None
    )
    out.append(("S3 spawn → initialize: agents-mcp ≤ 1.2× bare FastMCP", _x(r), _verdict(r, 1.2)))
    kids = max(cold_am.children_at_init, default=None) if cold_am else None
    out.append(
        (
            "S3 no downstream connected before initialize is answered",
            "–" if kids is None else f"{kids} child processes at initialize",
            "not measured" if kids is None else ("**met**" if kids == 0 else "**missed**"),
        )
    )
    if d.s4 is not None:
        rows = s4_rows(d.s4)
        last = rows[-1] if rows else None
        value = last["ratio"] if last else None
        size = int(last["size"] or 0) if last else 0
        out.append(
            (
                f"S4 turn at {size:,} messages ≤ 1.3× at {int(rows[0]['size'] or 0)} (excl. LLM payload)",
                _x(value),
                _verdict(value, 1.3),
            )
        )
    rss_am = _med(cold_am.idle_rss_kb) if cold_am else None
    rss_bare = _med(cold_bare.idle_rss_kb) if cold_bare else None
    r = _ratio(rss_am, rss_bare)
    out.append(("S5 idle RSS: agents-mcp ≤ 1.2× bare FastMCP", _x(r), _verdict(r, 1.2)))
    many = d.cold.get("agents-mcp-threads")
    rss_many = _med(many.idle_rss_kb) if many else None
    if rss_many is not None and rss_am is not None:
        grow = (rss_many - rss_am) / 1024
        ok = rss_many <= rss_am * 1.05 or grow <= 2
        out.append(
            (
                f"S5 {d.sizes.s5_threads:,} stored threads do not raise idle RSS",
                f"{grow:+.1f} MiB",
                "**met**" if ok else "**missed**",
            )
        )
    return out


def main_table(d: RunData) -> list[str]:
    z = d.sizes
    head = (
        f"| driver | S1 wall ms/conv | S1 CPU ms/conv | client / server / downstream | "
        f"× minimal | × minimal + hop | fake LLM CPU ms/conv | S2 total ms ({z.s2_concurrency} conc.) | "
        f"× ideal | × minimal + hop | S2 errors | server RSS after S2 MiB |"
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
        lines.append(
            f"| {label} | {_f(s1_wall(d, key))} | {_f(cpu)} | {roles} | "
            f"{_x(_ratio(cpu, s1_cpu(d, MIN)))} | {_x(_ratio(cpu, s1_cpu(d, _hop_for(key))))} | "
            f"{_f(fake)} | {_f(total, 0)} | {_x(_ratio(total, ideal))} | "
            f"{_x(_ratio(total, s2_total(d, _hop_for(key))))} | {len(_errors(d.s2.get(key, [])))} | "
            f"{_f(rss / 1024 if rss else None)} |"
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
        "| driver | stored messages | CPU ms/turn (server) | wall ms/turn | "
        "floor CPU ms/turn | floor wall ms/turn | LLM payload CPU (floor − floor@first) | "
        "CPU excl. payload | × first size | raw CPU × first size | wall excl. payload × first size |",
        "|" + "---|" * 11,
    ]
    for key in h.runs:
        if key == MIN:
            continue
        for row in s4_rows(h, key):
            lines.append(_history_row(labels.get(key, key), row))
    return lines


def _history_row(label: str, row: dict[str, float | None]) -> str:
    return (
        f"| {label} | {int(row['size'] or 0):,} | {_f(row['am_cpu'])} ({_f(row['am_server'])}) | "
        f"{_f(row['am_wall'])} | {_f(row['floor_cpu'])} | {_f(row['floor_wall'])} | "
        f"{_f(row['payload_cpu'])} | {_f(row['am_excl'])} | {_x(row['ratio'])} | "
        f"{_x(row['ratio_raw'])} | {_x(row['ratio_wall'])} |"
    )


def http_table(d: RunData) -> list[str]:
    lines = [
        "| driver | conversations | total ms (median) | CPU ms/conv | errors |",
        "|---|---|---|---|---|",
    ]
    labels = {k: label for k, label, _ in d.drivers}
    for key, samples in d.s2_http.items():
        lines.append(
            f"| {labels.get(key, key)} | {sum(s.n for s in samples)} | "
            f"{_f(_med([s.total_ms for s in samples]), 0)} | "
            f"{_f(_med([s.cpu_per() for s in samples]))} | {len(_errors(samples))} |"
        )
    return lines


def render(d: RunData) -> str:
    z = d.sizes
    m = d.machine
    out = [
        f"# agents-mcp benchmark — {d.started}{' (quick)' if d.quick else ''}",
        "",
        f"Machine: {m.get('cores')} cores ({m.get('cpu')}), {m.get('memory')}, kernel "
        f"{m.get('kernel')}; load average {m.get('load_before')} before, {m.get('load_after')} "
        f"after. Run took {d.duration_s:.0f} s. Method: `benchmarks/README.md`.",
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in targets(d)),
        "",
        "## S1 and S2 by driver",
        "",
        f"S1: one conversation at a time, K={z.s1_k} tool calls, 0 ms LLM latency; "
        f"{z.s1_rounds}×{z.s1_batch} conversations per driver after {z.s1_warmup} warm-up, "
        "interleaved; wall = median per conversation, CPU = median of per-batch means "
        "(driver process tree, fake LLM excluded and shown apart). "
        f"S2: {z.s2_concurrency} concurrent conversations, K={z.s2_k}, {z.s2_latency_ms} ms "
        f"per LLM request (ideal {(z.s2_k + 1) * z.s2_latency_ms} ms), median of {z.s2_rounds}.",
        "",
        *main_table(d),
        "",
        f"S2 over HTTP at {z.s2_http_concurrency} concurrent conversations:",
        "",
        *http_table(d),
        "",
        "## S3 cold start and S5 idle memory",
        "",
        f"Raw JSON-RPC over stdio, median of {z.s3_reps} (idle RSS: {z.s5_reps}, read 1 s after "
        "initialize + tools/list). First reply: `chat_with_agent` with K=1 (bare server: `echo`).",
        "",
        *cold_table(d),
        "",
    ]
    if d.s4 is not None:
        out += [
            "## S4 history",
            "",
            f"One more turn (K={z.s4_k}) on a stored thread; {z.s4_rounds}×{z.s4_turns} turns per "
            "size after one warm-up turn. The floor runs the same turn after the same history held "
            "in memory, so its growth is the price of the LLM payload itself, which every loop pays.",
            "",
            *history_table(d.s4, {k: label for k, label, _ in d.drivers}),
            "",
        ]
    out += ["## Versions", "", "| component | versions |", "|---|---|"]
    for name, versions in d.versions.items():
        out.append(f"| {name} | {', '.join(f'{k} {v}' for k, v in versions.items())} |")
    errors = {k: _errors([*d.s1.get(k, []), *d.s2.get(k, []), *d.s2_http.get(k, [])]) for k in d.s1}
    errors |= {f"cold {k}": c.errors for k, c in d.cold.items()}
    shown = [(k, e) for k, e in errors.items() if e]
    if shown or d.notes:
        out += ["", "## Errors and notes", ""]
        out += [f"- {k}: {len(e)} errors, first: `{e[0][:300]}`" for k, e in shown]
        out += [f"- {n}" for n in d.notes]
    return "\n".join(out) + "\n"


def summary(d: RunData, results_file: str) -> str:
    """The README section: targets and the main table of the latest run."""
    return "\n".join(
        [
            f"Latest full run: {d.started} ([{results_file}]({results_file})), "
            f"{d.machine.get('cores')} cores, load {d.machine.get('load_before')}.",
            "",
            "| target | measured | verdict |",
            "|---|---|---|",
            *(f"| {a} | {b} | {c} |" for a, b, c in targets(d)),
            "",
            *main_table(d),
        ]
    )


def update_readme(readme: Path, text: str) -> None:
    content = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if pattern.search(content):
        block = f"{README_START}\n{text}\n{README_END}"
        readme.write_text(pattern.sub(lambda _: block, content))
