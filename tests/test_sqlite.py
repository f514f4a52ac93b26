"""The store's connection: inline when it cannot wait, on aiosqlite's thread when it can."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from agents_mcp.messages import Message
from agents_mcp.store import Store

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "t.db")
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


async def test_a_busy_database_is_waited_for_off_the_event_loop(store: Store) -> None:
    thread = await store.create_thread(agent="a", owner="o", first_message="hi")
    done = anyio.Event()

    async def write() -> None:
        await store.append(thread.id, Message(role="assistant", content="queued"))
        done.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            with other_writer(store.path):
                tg.start_soon(write)
                await anyio.wait_all_tasks_blocked()
                # The loop runs (this test does) while the write waits on the worker thread.
                assert not done.is_set()
                assert store._db._in_thread == 1
            await done.wait()
    assert [h.message.content for h in await store.messages(thread.id)] == ["hi", "queued"]


async def test_nothing_runs_inline_while_the_thread_holds_the_connection(store: Store) -> None:
    thread = await store.create_thread(agent="a", owner="o", first_message="hi")
    order: list[str] = []

    async def write() -> None:
        await store.append(thread.id, Message(role="assistant", content="first"))
        order.append("write")

    async def read() -> None:
        # A read could run inline at once (WAL readers never wait) but must queue
        # behind the write that holds the connection.
        order.append(f"read {len(await store.messages(thread.id))}")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            with other_writer(store.path):
                tg.start_soon(write)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(read)
                await anyio.wait_all_tasks_blocked()
                assert order == []
    assert order == ["write", "read 2"]


async def test_a_caller_that_stops_waiting_still_keeps_the_connection_busy(store: Store) -> None:
    thread = await store.create_thread(agent="a", owner="o", first_message="hi")
    with anyio.fail_after(10), other_writer(store.path):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await store.append(thread.id, Message(role="assistant", content="abandoned"))
        # The write is still on the thread (waiting for the lock): the next operation waits too.
        assert store._db._in_thread == 1
    with anyio.fail_after(10):
        contents = [h.message.content for h in await store.messages(thread.id)]
    assert contents == ["hi", "abandoned"]


async def test_writes_go_on_across_checkpoints(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agents_mcp._sqlite.CHECKPOINT_EVERY", 2)
    thread = await store.create_thread(agent="a", owner="o", first_message="hi")
    for i in range(5):
        await store.append(thread.id, Message(role="assistant", content=str(i)))
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM messages").fetchone()
    assert count == 6
