"""Tasks and shared secrets in the store, on SQLite and PostgreSQL: owners, turns,
expiry, the first final state kept, one secret for every process on a database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agents_mcp.messages import Message
from agents_mcp.store import Claim, SQLStore, open_store
from agents_mcp.store.tasks import TaskStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SQLStore]:
    s = await open_store(db_url)
    try:
        yield s
    finally:
        await s.close()


async def test_a_task_is_its_owners_and_follows_a_turn(store: SQLStore) -> None:
    tasks = TaskStore(store.db)
    claim = Claim.new(store.runner)
    thread = await store.create_thread(agent="a", owner="alice", first_message="hi", claim=claim)
    first = await tasks.create(owner="alice", thread_id=thread.id, ttl_ms=60_000)
    await store.append(thread.id, claim, Message(role="assistant", content="yes"), complete=True)
    again = await store.start_turn(thread.id, "more", claim=Claim.new(store.runner))
    second = await tasks.create(owner="alice", thread_id=thread.id, ttl_ms=60_000)

    assert first.id.startswith("task_") and len(first.id) == len("task_") + 24
    assert (first.turn, second.turn) == (0, 2)
    assert await tasks.current_turn(again.id) == 2
    assert await tasks.get(first.id, "alice") == first
    assert await tasks.get(first.id, "bob") is None
    assert await tasks.get("task_unknown", "alice") is None
    assert [t.id for t in await tasks.open_on(thread.id)] == sorted([first.id, second.id])


async def test_an_expired_task_is_gone(store: SQLStore) -> None:
    tasks = TaskStore(store.db)
    claim = Claim.new(store.runner)
    thread = await store.create_thread(agent="a", owner="alice", first_message="hi", claim=claim)
    gone = await tasks.create(owner="alice", thread_id=thread.id, ttl_ms=-1)
    kept = await tasks.create(owner="alice", thread_id=thread.id, ttl_ms=60_000)
    assert await tasks.get(gone.id, "alice") is None
    assert await tasks.get(kept.id, "alice") == kept
    assert [t.id for t in await tasks.open_on(thread.id)] == [kept.id]  # swept on create


async def test_the_first_final_state_kept_wins(store: SQLStore) -> None:
    tasks = TaskStore(store.db)
    claim = Claim.new(store.runner)
    thread = await store.create_thread(agent="a", owner="alice", first_message="hi", claim=claim)
    task = await tasks.create(owner="alice", thread_id=thread.id, ttl_ms=60_000)
    first = await tasks.settle(task.id, {"status": "completed", "result": {"n": 1}})
    second = await tasks.settle(task.id, {"status": "cancelled"})
    assert first is not None and second is not None
    assert first.outcome == second.outcome == {"status": "completed", "result": {"n": 1}}
    assert await tasks.open_on(thread.id) == []


async def test_a_secret_is_made_once_for_every_process(db_url: str) -> None:
    one, two = await open_store(db_url), await open_store(db_url)
    try:
        a, b = TaskStore(one.db), TaskStore(two.db)
        secret = await a.secret("key")
        assert await b.secret("key") == secret
        assert await a.secret("other") != secret
        assert len(secret) >= 43  # 256 bits, base64url
    finally:
        await one.close()
        await two.close()


async def test_a_cancellation_is_seen_by_every_process(db_url: str) -> None:
    one, two = await open_store(db_url), await open_store(db_url)
    try:
        a, b = TaskStore(one.db), TaskStore(two.db)
        assert not await b.cancelled("sl1.x", "7")
        await a.record_cancel("sl1.x", "7")
        await a.record_cancel("sl1.x", "7")  # twice is once
        assert await b.cancelled("sl1.x", "7")
        assert not await b.cancelled("sl1.x", "8")
        assert not await b.cancelled("sl1.y", "7")
    finally:
        await one.close()
        await two.close()
