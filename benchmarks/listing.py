"""S6: ``list_threads`` on a database of many threads, with every filter.

``python -m benchmarks.listing --db PATH [--threads 100000] [--calls 30]`` seeds ``PATH``
(unless it exists) and prints one JSON object: per filter, the median and the spread of
the time one ``list_threads`` page takes in process (the store's query, plus the pending
calls of the waiting threads on the page, as the ``list_threads`` tool reads them), the
number of threads it returned, and SQLite's ``EXPLAIN QUERY PLAN`` of the query.

The database is seeded through :class:`agents_mcp.store.Store` itself (one template thread
per status, the same rows agents-mcp writes), then copied row by row with new ids,
owners, agents and times, so a 100 000-thread database takes seconds, whatever the schema
version. Most threads are ``completed``; the other statuses and one agent are rare, which
is where an index that does not fit the filter shows: the query then scans the owner's
threads until it has filled a page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import time
from typing import Any

OWNER = "local"
AGENTS = (("main", 0.6), ("other", 0.38), ("rare", 0.02))
"""Agents and their shares of the threads."""
STATUSES = (("completed", 0.955), ("failed", 0.02), ("cancelled", 0.02), ("needs_approval", 0.005))
"""Statuses and their shares (none ``running``: a server would settle them as orphans)."""
CHILDREN = 0.05
"""Share of threads that are delegations (``parent_id`` set)."""
OTHER_OWNERS = 0.1
"""Share of threads of ten other owners."""


async def _templates(path: str) -> dict[str, str]:
    """One thread per status, written through the store; status → thread id."""
    from agents_mcp.messages import Message, ToolCall
    from agents_mcp.store import Approval, Claim, digest, now, open_store

    store = await open_store(path)
    out: dict[str, str] = {}
    try:
        for status, _ in STATUSES:
            claim = Claim.new(store.runner)
            t = await store.create_thread(
                agent="main", owner=OWNER, first_message=f"a {status} thread", claim=claim
            )
            if status == "completed":
                await store.append(
                    t.id, claim, Message(role="assistant", content="done"), complete=True
                )
            elif status == "failed":
                await store.fail(t.id, claim, ("run_error", "seeded failure"))
            elif status == "cancelled":
                await store.settle(t.id, claim=claim.token, cancel=True)
            else:
                call = ToolCall(id="call_1", name="echo__echo", arguments='{"text": "x"}')
                ask = Approval(
                    thread_id=t.id, call_id=call.id, server="echo", tool="echo",
                    arguments=call.arguments, digest=digest(call.arguments), status="pending",
                    reason=None, requested_at=now(), decided_at=None,
                )  # fmt: skip
                said = Message(role="assistant", content=None, tool_calls=(call,))
                await store.append(t.id, claim, said, approvals=[ask])
                await store.pause(t.id, claim)
            out[status] = t.id
    finally:
        await store.close()
    return out


def _pick(rng: random.Random, shares: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for name, share in shares:
        x -= share
        if x < 0:
            return name
    return shares[-1][0]


def _copy(path: str, templates: dict[str, str], n: int) -> None:
    """``n`` threads copied from the templates, with their messages and approvals."""
    rng = random.Random(16)
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    rows = {
        s: dict(db.execute("SELECT * FROM threads WHERE id=?", (tid,)).fetchone())
        for s, tid in templates.items()
    }
    children = {
        table: {
            s: [dict(r) for r in db.execute(f"SELECT * FROM {table} WHERE thread_id=?", (tid,))]
            for s, tid in templates.items()
        }
        for table in ("messages", "approvals")
    }
    threads: list[dict[str, Any]] = []
    extra: dict[str, list[dict[str, Any]]] = {"messages": [], "approvals": []}
    roots: list[str] = []
    start = time.time() - n  # one thread a second, oldest first
    for i in range(n - len(templates)):
        status = _pick(rng, STATUSES)
        row = dict(rows[status])
        tid = f"bench{i:07d}{rng.getrandbits(32):08x}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i)) + f".{i % 1000:03d}Z"
        owner = OWNER if rng.random() >= OTHER_OWNERS else f"owner{rng.randrange(10)}"
        row |= {"id": tid, "owner": owner, "agent": _pick(rng, AGENTS)}
        row |= {"created_at": stamp, "updated_at": stamp, "runner": None, "claim": None}
        if roots and rng.random() < CHILDREN:
            row |= {"parent_id": rng.choice(roots), "parent_call_id": f"call_{i}"}
        else:
            roots.append(tid)
        threads.append(row)
        for table, kept in extra.items():
            kept += [r | {"thread_id": tid} for r in children[table][status]]
    for table, batch in (("threads", threads), *extra.items()):
        if not batch:
            continue
        columns = [c for c in batch[0] if not (table == "approvals" and c == "seq")]
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        )
        db.executemany(sql, [[r[c] for c in columns] for r in batch])
    db.commit()  # no ANALYZE: agents-mcp never runs it, so neither do we
    db.close()


FILTERS: dict[str, dict[str, Any]] = {
    "no filter": {},
    "status=completed": {"status": "completed"},
    "status=needs_approval": {"status": "needs_approval"},
    "status=failed": {"status": "failed"},
    "status=running (none)": {"status": "running"},
    "agent=main": {"agent": "main"},
    "agent=rare": {"agent": "rare"},
    "agent=rare, status=failed": {"agent": "rare", "status": "failed"},
    "agent=main, status=running (none)": {"agent": "main", "status": "running"},
    "include_children": {"include_children": True},
    "page 50 (cursor)": {"page": 50},
}


def _sql(f: dict[str, Any]) -> tuple[str, list[Any]]:
    """The query ``store.reads.list_threads`` runs for ``f`` (for EXPLAIN QUERY PLAN): the
    store's own builder when it has one, else the same SQL written here (older versions)."""
    after = ("9", "z") if "page" in f else None
    try:
        from agents_mcp.store.reads import list_threads_query
    except ImportError:
        pass
    else:
        sql, params = list_threads_query(
            owner=OWNER,
            agent=f.get("agent"),
            status=f.get("status"),
            after=after,
            include_children=bool(f.get("include_children")),
        )
        return sql, [*params, 21]
    where, params = ["owner=?"], [OWNER]
    if not f.get("include_children"):
        where.append("parent_id IS NULL")
    for key in ("agent", "status"):
        if key in f:
            where.append(f"{key}=?")
            params.append(f[key])
    if "page" in f:
        where.append("(updated_at < ? OR (updated_at = ? AND id < ?))")
        params += ["9", "9", "z"]
    sql = f"SELECT * FROM threads WHERE {' AND '.join(where)} ORDER BY updated_at DESC, id DESC LIMIT 21"
    return sql, params


async def measure(path: str, calls: int) -> dict[str, Any]:
    from agents_mcp.store import open_store

    store = await open_store(path)  # migrated before its plans are read
    plans = {}
    db = sqlite3.connect(path)
    for name, f in FILTERS.items():
        sql, params = _sql(f)
        plans[name] = [r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    total = db.execute("SELECT count(*) FROM threads").fetchone()[0]
    db.close()
    out: dict[str, Any] = {"threads": total, "filters": {}}
    try:

        async def page(f: dict[str, Any], cursor: str | None) -> int:
            args = {k: v for k, v in f.items() if k != "page"}
            threads, _ = await store.list_threads(owner=OWNER, cursor=cursor, **args)
            for t in threads:  # as Threads.list_threads: the pending calls of waiting ones
                if t.status == "needs_approval":
                    await store.pending_in_tree(t.id)
            return len(threads)

        for name, f in FILTERS.items():
            cursor = None
            for _ in range(f.get("page", 1) - 1):  # the cursor of the page measured
                _, cursor = await store.list_threads(owner=OWNER, cursor=cursor)
            await page(f, cursor)  # warm the cache
            times: list[float] = []
            found = 0
            for _ in range(calls):
                t0 = time.perf_counter()
                found = await page(f, cursor)
                times.append((time.perf_counter() - t0) * 1000.0)
            out["filters"][name] = {
                "median_ms": statistics.median(times),
                "min_ms": min(times),
                "max_ms": max(times),
                "found": found,
                "plan": plans[name],
            }
    finally:
        await store.close()
    return out


async def main(args: argparse.Namespace, seed: bool) -> None:
    if seed:
        templates = await _templates(args.db)
        _copy(args.db, templates, args.threads)
    print(json.dumps(await measure(args.db, args.calls)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--threads", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args, seed=not os.path.exists(args.db)))
