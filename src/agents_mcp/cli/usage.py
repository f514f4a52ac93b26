"""``agents-mcp usage``: what agents spent, by agent, owner, UTC day or model.

Read from the thread database only (every owner's threads: the operator's view). Each
row counts the model requests of the top-level threads in the group, the agents they
delegated to included; ``delegated`` is that part, shown apart. Costs are what each
request cost at the model's configured price when it was made (``unpriced`` without one).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from agents_mcp.cli.history import has_database
from agents_mcp.cli.terminal import Console
from agents_mcp.engine.usage import dollars
from agents_mcp.errors import InvalidRequest
from agents_mcp.messages import Usage
from agents_mcp.store import Spent, UsageRow, open_store, shown

GroupBy = Literal["agent", "owner", "day", "model"]


def _day(text: str, option: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidRequest(
            f"{option}: expected a date such as 2026-01-31, got {text!r}"
        ) from None


def period(since: str | None, until: str | None, days: int | None) -> tuple[str | None, str | None]:
    """The ``[since, until)`` of the report as ISO dates (None: open)."""
    if days is not None:
        if since is not None:
            raise InvalidRequest("give --since or --days, not both")
        if days < 1:
            raise InvalidRequest("--days must be at least 1")
        since = (datetime.now(UTC).date() - timedelta(days=days - 1)).isoformat()
    return (
        None if since is None else _day(since, "--since"),
        None if until is None else _day(until, "--until"),
    )


def as_dict(spent: Spent) -> dict[str, Any]:
    u = spent.usage
    return {
        "requests": spent.requests,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "cost_usd": None if u.cost_nanos is None else u.cost_nanos / 1e9,
    }


def _total(row: UsageRow) -> Spent:
    return Spent(row.own.usage + row.delegated.usage, row.own.requests + row.delegated.requests)


def report(
    by: GroupBy, rows: list[UsageRow], since: str | None, until: str | None
) -> dict[str, Any]:
    """The ``--json`` document."""
    total = Spent(Usage(), 0)
    out = []
    for row in rows:
        whole = _total(row)
        total = Spent(total.usage + whole.usage, total.requests + whole.requests)
        entry = {by: row.key, **as_dict(whole)}
        if row.delegated.requests:
            entry["delegated"] = as_dict(row.delegated)
        out.append(entry)
    return {"by": by, "since": since, "until": until, "rows": out, "total": as_dict(total)}


async def usage(
    db_path: str,
    console: Console,
    *,
    by: GroupBy,
    since: str | None,
    until: str | None,
    owner: str | None,
    agent: str | None,
    as_json: bool,
) -> int:
    rows: list[UsageRow] = []
    if await has_database(db_path):  # none yet: nothing spent, and none created
        store = await open_store(db_path)
        try:
            rows = await store.usage_report(by, since=since, until=until, owner=owner, agent=agent)
        finally:
            await store.close()
    if as_json:
        console.line(json.dumps(report(by, rows, since, until), indent=2))
        return 0
    if not rows:
        console.status(f"no model requests recorded in {shown(db_path)}")
        return 0
    table = [
        (by.upper(), "REQUESTS", "INPUT", "OUTPUT", "CACHED", "REASONING", "COST", "DELEGATED")
    ]
    for row in rows:
        u, whole = _total(row).usage, _total(row)
        part = row.delegated
        delegated = (
            f"{part.requests} req, {dollars(part.usage.cost_nanos)}" if part.requests else "-"
        )
        table.append(
            (
                row.key or "?",
                str(whole.requests),
                str(u.input_tokens),
                str(u.output_tokens),
                str(u.cache_read_tokens),
                str(u.reasoning_tokens),
                dollars(u.cost_nanos),
                delegated,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        console.line("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
