"""Daily budgets in the store: admitted atomically, on both databases, across processes.

Two stores on one database stand for two replicas: they race for what is left of a
budget, and only one gets it.
"""

from __future__ import annotations

import anyio
import pytest

from agents_mcp.store import Charge, open_store

pytestmark = pytest.mark.anyio

DAY = "2026-03-01"
OWNER = Charge("owner:alice", tokens=None, nanos=1_000_000)
AGENT = Charge("agent:research", tokens=5_000, nanos=None)


async def test_two_replicas_racing_for_the_last_dollar_do_not_both_spend_it(db_url: str) -> None:
    first, second = await open_store(db_url), await open_store(db_url)
    try:
        # Spend all but one nanodollar.
        assert await first.budget_admit([OWNER], DAY, 0, 0) is None
        await first.budget_settle([OWNER], DAY, (0, 0), (0, 999_999))
        admitted: list[int] = []
        refused: list[int] = []

        async def request(i: int) -> None:
            store = (first, second)[i % 2]
            answer = await store.budget_admit([OWNER], DAY, 10, 50_000)
            (refused if answer else admitted).append(i)

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(request, i)
        [row] = await first.budget_days("owner:alice")
    finally:
        await first.close()
        await second.close()
    assert (len(admitted), len(refused)) == (1, 19)
    assert (row["spent_nanos"], row["reserved_nanos"], row["requests"]) == (999_999, 50_000, 2)


async def test_a_refusal_in_one_scope_reserves_nothing_in_the_others(db_url: str) -> None:
    store = await open_store(db_url)
    try:
        assert await store.budget_admit([OWNER, AGENT], DAY, 4_000, 100) is None
        await store.budget_settle([OWNER, AGENT], DAY, (4_000, 100), (5_000, 300))
        refusal = await store.budget_admit([OWNER, AGENT], DAY, 1, 1)
        owner = (await store.budget_days("owner:alice"))[0]
        agent = (await store.budget_days("agent:research"))[0]
        await store.budget_settle([OWNER], DAY, (0, 0), (0, 0))
    finally:
        await store.close()
    assert refusal is not None and refusal.charge == AGENT
    assert (refusal.spent_tokens, refusal.reserved_tokens) == (5_000, 0)
    # The owner's row was not touched by the refused request.
    assert (owner["spent_nanos"], owner["reserved_nanos"], owner["requests"]) == (300, 0, 1)
    assert (agent["spent_tokens"], agent["requests"]) == (5_000, 1)


async def test_each_day_starts_afresh(db_url: str) -> None:
    store = await open_store(db_url)
    try:
        await store.budget_settle([OWNER], DAY, (0, 0), (0, 0))  # no row yet: nothing
        assert await store.budget_admit([OWNER], DAY, 0, 0) is None
        await store.budget_settle([OWNER], DAY, (0, 0), (0, 1_000_000))
        full = await store.budget_admit([OWNER], DAY, 0, 0)
        tomorrow = await store.budget_admit([OWNER], "2026-03-02", 0, 0)
    finally:
        await store.close()
    assert full is not None and full.spent_nanos == 1_000_000
    assert tomorrow is None


async def test_migration_15_keeps_every_thread_and_allows_budget_exceeded(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database of the schema before 15, with a thread in it, is migrated: the thread
    and its answer are kept (their usage as it was), and a run can end budget_exceeded."""
    from agents_mcp.store import Claim, migrations
    from agents_mcp.store.database import Tx

    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:14])
    old = await open_store(db_url)
    try:

        async def seed(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO threads (id, agent, owner, title, status, created_at, updated_at,"
                " message_count, claim, runner) VALUES ('th_old', 'a', 'local', 't', 'running',"
                " '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 1, 'cl_x', 'r')"
            )
            await tx.execute(
                "INSERT INTO messages (thread_id, idx, role, content, input_tokens,"
                " output_tokens, status, created_at) VALUES ('th_old', 0, 'assistant', 'hi',"
                " 10, 5, 'complete', '2026-01-01T00:00:00.000Z')"
            )

        await old.db.transaction("seed", seed)
    finally:
        await old.close()
    monkeypatch.undo()
    store = await open_store(db_url)
    try:
        [answer] = await store.messages("th_old")
        await store.fail("th_old", Claim("cl_x", "r"), ("budget_exceeded", "used up"))
        thread = await store.thread("th_old")
        usage = await store.tree_usage(["th_old"])
    finally:
        await store.close()
    assert answer.message.usage is not None
    assert (answer.message.usage.tokens, answer.message.usage.cost_nanos) == (15, None)
    assert thread is not None and (thread.status, thread.error_message) == (
        "budget_exceeded",
        "used up",
    )
    assert usage["th_old"].own.requests == 1
