"""SQLite's connection: inline when it cannot wait, on the worker thread when it can, and
nothing half done when a caller gives up."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from agents_mcp.errors import StoreError
from agents_mcp.messages import Message
from agents_mcp.store import Claim, SQLStore, Thread, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    s = await open_store(tmp_path / "t.db")
    try:
        yield s
    finally:
        await s.close()


@contextlib.contextmanager
def other_writer(path: str) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the database's write lock."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("COMMIT")


async def new_thread(store: SQLStore) -> tuple[Thread, Claim]:
    claim = Claim.new(store.runner)
    return await store.create_thread(agent="a", owner="o", first_message="hi", claim=claim), claim


async def test_a_busy_database_is_waited_for_off_the_event_loop(store: SQLStore) -> None:
    thread, claim = await new_thread(store)
    done = anyio.Event()

    async def write() -> None:
        await store.append(thread.id, claim, Message(role="assistant", content="queued"))
        done.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            with other_writer(store.location):
                tg.start_soon(write)
                await anyio.wait_all_tasks_blocked()
                # The loop runs (this test does) while the write waits on the worker thread.
                assert not done.is_set()
            await done.wait()
    assert [h.message.content for h in await store.messages(thread.id)] == ["hi", "queued"]


async def test_nothing_else_uses_the_connection_while_the_thread_holds_it(
    store: SQLStore,
) -> None:
    thread, claim = await new_thread(store)
    order: list[str] = []

    async def write() -> None:
        await store.append(thread.id, claim, Message(role="assistant", content="first"))
        order.append("write")

    async def read() -> None:
        # A read could run inline at once (WAL readers never wait) but must queue
        # behind the write that holds the connection.
        order.append(f"read {len(await store.messages(thread.id))}")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            with other_writer(store.location):
                tg.start_soon(write)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(read)
                await anyio.wait_all_tasks_blocked()
                assert order == []
    assert order == ["write", "read 2"]


async def test_a_caller_that_gives_up_commits_nothing(store: SQLStore) -> None:
    """A client cancels while its write waits for another process's lock: the write must
    not commit later behind its back (the thread would be left in a state nobody holds)."""
    thread, claim = await new_thread(store)
    gave_up = anyio.Event()

    async def write(scope: anyio.CancelScope) -> None:
        with scope:
            await store.append(thread.id, claim, Message(role="assistant", content="abandoned"))
        gave_up.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()
            with other_writer(store.location):
                tg.start_soon(write, scope)
                await anyio.wait_all_tasks_blocked()  # waiting for the lock on the thread
                scope.cancel()
                await anyio.wait_all_tasks_blocked()
                assert not gave_up.is_set()  # it waits until the thread lets go
            # The lock is free: the thread gets it, and the cancelled write rolls back.
        contents = [h.message.content for h in await store.messages(thread.id)]
    assert gave_up.is_set()
    assert contents == ["hi"]


async def test_a_lock_held_past_the_busy_timeout_is_a_clear_error(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agents_mcp.store.sqlite.BUSY_MS", 100)
    thread, claim = await new_thread(store)
    with (
        anyio.fail_after(10),
        other_writer(store.location),
        pytest.raises(StoreError, match="stayed locked by another process"),
    ):
        await store.append(thread.id, claim, Message(role="assistant", content="late"))
    await store.append(thread.id, claim, Message(role="assistant", content="fine"))
    assert [h.message.content for h in await store.messages(thread.id)] == ["hi", "fine"]


async def test_writes_go_on_across_checkpoints(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agents_mcp.store.sqlite.CHECKPOINT_EVERY", 2)
    thread, claim = await new_thread(store)
    for i in range(5):
        await store.append(thread.id, claim, Message(role="assistant", content=str(i)))
    with contextlib.closing(sqlite3.connect(store.location)) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM messages").fetchone()
    assert count == 6
