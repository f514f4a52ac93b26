"""What runs spend, written once for SQLite and PostgreSQL: budgets, usage reads, traces.

Every model request's usage is stored with the answer it produced (the ``messages``
columns ``input_tokens`` … ``cost_nanos``, ``model``), so usage per thread, agent, owner
and day is read from the messages; a delegation's messages are in its child thread,
rolled up to the top-level thread (the *root*) that delegated.

Daily budgets are rows of ``budget_days``, one per (scope, UTC day): ``owner:<name>`` or
``agent:<name>``. A request is admitted by one conditional ``UPDATE`` per scope that
reserves its estimated cost while the scope's spent plus reserved amount is under the
limit, all scopes in one transaction; once answered, the estimate is replaced by what it
cost. On PostgreSQL the row lock makes replicas take turns, so two of them cannot both
spend the last dollar, and a budget is overshot by at most the request in flight of each
conversation that was admitted before the limit was reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agents_mcp.messages import Usage
from agents_mcp.store.database import Database, Tx
from agents_mcp.store.reads import TREE_IDS
from agents_mcp.store.records import Row, marks

GroupBy = Literal["agent", "owner", "day", "model"]

_SUMS = (
    "COUNT(*) AS requests, SUM(m.input_tokens) AS input_tokens,"
    " SUM(m.output_tokens) AS output_tokens, SUM(m.cache_read_tokens) AS cache_read_tokens,"
    " SUM(m.cache_write_tokens) AS cache_write_tokens,"
    " SUM(m.reasoning_tokens) AS reasoning_tokens, SUM(m.cost_nanos) AS cost_nanos,"
    " COUNT(m.cost_nanos) AS priced"
)
_ANSWERS = "m.role = 'assistant' AND m.input_tokens IS NOT NULL"
_TURN_USAGE = (
    TREE_IDS + f" SELECT CASE WHEN m.thread_id = ? THEN 0 ELSE 1 END AS delegated, {_SUMS}"
    f" FROM messages m JOIN t ON m.thread_id = t.id WHERE {_ANSWERS}"
    " AND m.created_at >= COALESCE((SELECT MAX(created_at) FROM messages"
    " WHERE thread_id=? AND role='user'), '') GROUP BY delegated"
)
"""A thread's usage and its delegations' since its caller's last message (parameters:
the thread's id, three times)."""


@dataclass(frozen=True)
class Charge:
    """A daily budget a request counts against: its scope and limits (None: no limit)."""

    scope: str
    """``owner:<name>`` or ``agent:<name>``."""
    tokens: int | None
    nanos: int | None


@dataclass(frozen=True)
class Refusal:
    """A daily budget that admitted no more requests: which, and what it had spent."""

    charge: Charge
    spent_tokens: int
    spent_nanos: int
    reserved_tokens: int
    reserved_nanos: int


@dataclass(frozen=True)
class Spent:
    """Usage summed over some model requests (``requests`` of them)."""

    usage: Usage
    requests: int


@dataclass(frozen=True)
class TreeUsage:
    """A thread's usage with its delegations': its own, and theirs apart."""

    own: Spent
    delegated: Spent

    @property
    def total(self) -> Spent:
        return Spent(
            self.own.usage + self.delegated.usage, self.own.requests + self.delegated.requests
        )


NOTHING = Spent(Usage(), 0)


@dataclass(frozen=True)
class UsageRow:
    """One row of a usage report: the group's key, and its usage own and delegated."""

    key: str
    own: Spent
    delegated: Spent


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _spent(row: Row) -> Spent:
    usage = Usage(
        input_tokens=_int(row["input_tokens"]),
        output_tokens=_int(row["output_tokens"]),
        cache_read_tokens=_int(row["cache_read_tokens"]),
        cache_write_tokens=_int(row["cache_write_tokens"]),
        reasoning_tokens=_int(row["reasoning_tokens"]),
        cost_nanos=_int(row["cost_nanos"]) if _int(row["priced"]) else None,
    )
    return Spent(usage, _int(row["requests"]))


class UsageStore:
    """The store's operations on usage, budgets and traces (mixed into ``SQLStore``)."""

    db: Database

    # -- daily budgets ------------------------------------------------------------------

    async def budget_admit(
        self, charges: Sequence[Charge], day: str, tokens: int, nanos: int
    ) -> Refusal | None:
        """Reserve ``tokens``/``nanos`` (the request's estimate) in every scope, or in
        none: the first scope whose spent and reserved amounts reached its limit."""

        async def body(tx: Tx) -> Refusal | None:
            for charge in sorted(charges, key=lambda c: c.scope):  # one lock order
                await tx.execute(
                    "INSERT INTO budget_days (scope, day) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (charge.scope, day),
                )
                where = ["scope=?", "day=?"]
                params: list[Any] = [charge.scope, day]
                if charge.tokens is not None:
                    where.append("spent_tokens + reserved_tokens < ?")
                    params.append(charge.tokens)
                if charge.nanos is not None:
                    where.append("spent_nanos + reserved_nanos < ?")
                    params.append(charge.nanos)
                admitted = await tx.execute(
                    "UPDATE budget_days SET reserved_tokens=reserved_tokens+?,"
                    " reserved_nanos=reserved_nanos+?, requests=requests+1"
                    f" WHERE {' AND '.join(where)}",
                    (tokens, nanos, *params),
                )
                if not admitted:
                    row = await tx.fetchrow(
                        "SELECT * FROM budget_days WHERE scope=? AND day=?", (charge.scope, day)
                    )
                    assert row is not None
                    raise _Refused(
                        Refusal(
                            charge,
                            _int(row["spent_tokens"]),
                            _int(row["spent_nanos"]),
                            _int(row["reserved_tokens"]),
                            _int(row["reserved_nanos"]),
                        )
                    )
            return None

        try:
            return await self.db.transaction("budget_admit", body)
        except _Refused as refused:  # nothing reserved anywhere: the transaction rolled back
            return refused.refusal

    async def budget_settle(
        self,
        charges: Sequence[Charge],
        day: str,
        reserved: tuple[int, int],
        spent: tuple[int, int],
    ) -> None:
        """Replace a request's reservation by what it spent (0, 0 when it failed)."""

        async def body(tx: Tx) -> None:
            for charge in sorted(charges, key=lambda c: c.scope):
                await tx.execute(
                    "UPDATE budget_days SET spent_tokens=spent_tokens+?,"
                    " spent_nanos=spent_nanos+?, reserved_tokens=reserved_tokens-?,"
                    " reserved_nanos=reserved_nanos-? WHERE scope=? AND day=?",
                    (*spent, *reserved, charge.scope, day),
                )

        await self.db.transaction("budget_settle", body)

    async def budget_days(self, scope: str) -> list[Row]:
        """The rows of one scope, newest day first (for reports and tests)."""
        return await self.db.query(
            "budget_days", "SELECT * FROM budget_days WHERE scope=? ORDER BY day DESC", (scope,)
        )

    # -- a turn's limits and spending ------------------------------------------------------

    async def save_turn_limits(
        self, thread_id: str, turn: int, tokens: int | None, nanos: int | None
    ) -> None:
        """The per-call limits a caller set for the thread's turn starting at ``turn``."""

        async def body(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO turn_budgets (thread_id, turn, max_tokens, max_nanos)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (thread_id) DO UPDATE SET"
                " turn=excluded.turn, max_tokens=excluded.max_tokens,"
                " max_nanos=excluded.max_nanos",
                (thread_id, turn, tokens, nanos),
            )

        await self.db.transaction("save_turn_limits", body)

    async def turn_limits(self, thread_id: str, turn: int) -> tuple[int | None, int | None]:
        """The limits a caller set for that turn ((None, None): none)."""
        rows = await self.db.query(
            "turn_limits",
            "SELECT max_tokens, max_nanos FROM turn_budgets WHERE thread_id=? AND turn=?",
            (thread_id, turn),
        )
        if not rows:
            return None, None
        tokens, nanos = rows[0]["max_tokens"], rows[0]["max_nanos"]
        return (None if tokens is None else int(tokens)), (None if nanos is None else int(nanos))

    async def turn_usage(self, root_id: str) -> TreeUsage:
        """The usage of the thread's latest turn (from its caller's last message on), its
        delegations' apart: what one call has spent so far."""
        rows = await self.db.query("turn_usage", _TURN_USAGE, (root_id,) * 3)
        parts = {int(row["delegated"]): _spent(row) for row in rows}
        return TreeUsage(parts.get(0, NOTHING), parts.get(1, NOTHING))

    async def tree_usage(self, root_ids: Sequence[str]) -> dict[str, TreeUsage]:
        """Each thread's usage over its whole life, its delegations' apart."""
        if not root_ids:
            return {}
        rows = await self.db.query(
            "tree_usage",
            "WITH RECURSIVE t(id, root) AS ("
            f" SELECT id, id FROM threads WHERE id IN ({marks(root_ids)}) UNION ALL"
            " SELECT threads.id, t.root FROM threads JOIN t ON threads.parent_id = t.id)"
            f" SELECT t.root AS root, CASE WHEN m.thread_id = t.root THEN 0 ELSE 1 END"
            f" AS delegated, {_SUMS} FROM messages m JOIN t ON m.thread_id = t.id"
            f" WHERE {_ANSWERS} GROUP BY t.root, delegated",
            tuple(root_ids),
        )
        parts: dict[str, dict[int, Spent]] = {}
        for row in rows:
            parts.setdefault(row["root"], {})[int(row["delegated"])] = _spent(row)
        return {
            root: TreeUsage(
                parts.get(root, {}).get(0, NOTHING), parts.get(root, {}).get(1, NOTHING)
            )
            for root in root_ids
        }

    # -- reports ----------------------------------------------------------------------------

    async def usage_report(
        self,
        by: GroupBy,
        *,
        since: str | None = None,
        until: str | None = None,
        owner: str | None = None,
        agent: str | None = None,
    ) -> list[UsageRow]:
        """Usage grouped by the top-level thread's agent or owner, by UTC day or by model;
        delegations count for the thread that delegated (apart). ``since``/``until``:
        ISO dates or times (``until`` excluded)."""
        where = [_ANSWERS]
        params: list[Any] = []
        for clause, value in (
            ("m.created_at >= ?", since),
            ("m.created_at < ?", until),
            ("rt.owner = ?", owner),
            ("rt.agent = ?", agent),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        key = {
            "agent": "rt.agent",
            "owner": "rt.owner",
            "day": "substr(m.created_at, 1, 10)",
            "model": "COALESCE(m.model, '')",
        }[by]
        rows = await self.db.query(
            "usage_report",
            "WITH RECURSIVE r(id, root) AS ("
            " SELECT id, id FROM threads WHERE parent_id IS NULL UNION ALL"
            " SELECT threads.id, r.root FROM threads JOIN r ON threads.parent_id = r.id)"
            f" SELECT {key} AS key, CASE WHEN m.thread_id = r.root THEN 0 ELSE 1 END"
            f" AS delegated, {_SUMS} FROM messages m JOIN r ON m.thread_id = r.id"
            f" JOIN threads rt ON rt.id = r.root WHERE {' AND '.join(where)}"
            " GROUP BY key, delegated ORDER BY key",
            tuple(params),
        )
        grouped: dict[str, dict[int, Spent]] = {}
        for row in rows:
            grouped.setdefault(str(row["key"]), {})[int(row["delegated"])] = _spent(row)
        return [
            UsageRow(k, parts.get(0, NOTHING), parts.get(1, NOTHING))
            for k, parts in grouped.items()
        ]

    # -- traces and metrics -------------------------------------------------------------

    async def save_trace(self, thread_id: str, traceparent: str, tracestate: str | None) -> None:
        """The trace context of the thread's latest run, for the run that resumes it."""

        async def body(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO thread_traces (thread_id, traceparent, tracestate) VALUES (?, ?, ?)"
                " ON CONFLICT (thread_id) DO UPDATE SET traceparent=excluded.traceparent,"
                " tracestate=excluded.tracestate",
                (thread_id, traceparent, tracestate),
            )

        await self.db.transaction("save_trace", body)

    async def trace_of(self, thread_id: str) -> tuple[str, str | None] | None:
        rows = await self.db.query(
            "trace_of",
            "SELECT traceparent, tracestate FROM thread_traces WHERE thread_id=?",
            (thread_id,),
        )
        return (rows[0]["traceparent"], rows[0]["tracestate"]) if rows else None

    async def pending_count(self) -> int:
        """Calls waiting for a decision, in every thread (not sign-ins: they wait for no
        decision, but for the owner to sign in)."""
        rows = await self.db.query(
            "pending_count",
            "SELECT COUNT(*) AS n FROM approvals WHERE status='pending'"
            " AND (kind IS NULL OR kind <> 'authorization')",
        )
        return int(rows[0]["n"]) if rows else 0


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.charge.scope)
        self.refusal = refusal
