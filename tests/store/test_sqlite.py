"""SQLite's connection: durable, off the event loop, commits shared by the writes that
queue for it, and nothing half done when a caller gives up."""

from __future__ import annotations

import contextlib
import contextvars
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import pytest

from agents_mcp.errors import StoreError
from agents_mcp.messages import Message
from agents_mcp.store import Claim, SQLStore, Thread, open_store
from agents_mcp.store.database import Tx
from agents_mcp.store.sqlite import SQLiteDatabase

pytestmark = pytest.mark.anyio

ROLE: contextvars.ContextVar[str] = contextvars.ContextVar("role", default="")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    s = await open_store(tmp_path / "t.db")
    try:
        yield s
    finally:
        await s.close()


def sqlite_of(store: SQLStore) -> SQLiteDatabase:
    assert isinstance(store.db, SQLiteDatabase)
    return store.db


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


async def contents(store: SQLStore, thread_id: str) -> list[str | None]:
    return [h.message.content for h in await store.messages(thread_id)]


# -- durability -------------------------------------------------------------------------


async def test_commits_wait_for_the_disk_by_default(store: SQLStore) -> None:
    db = sqlite_of(store)
    assert await db.pragma("synchronous") == 2  # FULL: the log is synced at each commit
    assert await db.pragma("journal_mode") == "wal"
    assert await db.pragma("foreign_keys") == 1
    assert await db.pragma("busy_timeout") == 5000


async def test_the_option_that_may_lose_commits_is_synchronous_normal(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db", sqlite_durability="may-lose-last-commits")
    try:
        assert await sqlite_of(store).pragma("synchronous") == 1  # NORMAL
    finally:
        await store.close()


async def test_no_statement_runs_on_the_event_loop_thread(store: SQLStore) -> None:
    loop_thread = threading.get_ident()
    ran_on: set[int] = set()
    await sqlite_of(store).on_statement(lambda sql: ran_on.add(threading.get_ident()))
    thread, claim = await new_thread(store)
    await store.append(thread.id, claim, Message(role="assistant", content="a"))
    assert await contents(store, thread.id) == ["hi", "a"]
    await sqlite_of(store).on_statement(None)
    assert ran_on and loop_thread not in ran_on


# -- transactions: when they begin, and the hand-offs to aiosqlite's thread ---------------


def hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls made on aiosqlite connections from now on (each runs on the connection's
    thread and comes back: the cost that makes statements count), with their SQL's verb."""
    calls: list[str] = []
    for name in ("execute", "execute_fetchall", "executemany", "commit", "rollback"):
        method = getattr(aiosqlite.Connection, name)

        def counted(
            self: aiosqlite.Connection, *args: Any, _m: Any = method, _n: str = name
        ) -> Any:
            calls.append(" ".join([_n, *(str(args[0]).split()[:1] if args else [])]))
            return _m(self, *args)

        monkeypatch.setattr(aiosqlite.Connection, name, counted)
    return calls


async def test_a_runs_step_and_a_one_statement_read_hand_off_once_per_statement(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite3 begins the write with its first statement, an UPDATE, in the same call; a
    read of one statement needs no transaction around it."""
    thread, claim = await new_thread(store)
    calls = hand_offs(monkeypatch)
    step = (Message(role="assistant", content="a"), Message(role="user", content="b"))
    await store.append(thread.id, claim, *step)
    assert calls == ["execute_fetchall UPDATE", "executemany INSERT", "commit"]
    calls.clear()
    assert await store.thread(thread.id) is not None
    assert calls == ["execute_fetchall SELECT"]


async def test_a_write_that_reads_first_holds_the_write_lock_before_it_reads(
    store: SQLStore,
) -> None:
    """What a transaction reads is what it changes: its SELECT waits for another process's
    write to commit, and sees it."""
    seen: list[int] = []

    async def body(tx: Tx) -> None:
        row = await tx.fetchrow("SELECT count(*) AS n FROM sqlite_master WHERE name='other'")
        seen.append(row["n"] if row else -1)
        await tx.execute("UPDATE threads SET title=title WHERE 0")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            with other_writer(store.location) as other:
                other.execute("CREATE TABLE other (x)")
                tg.start_soon(store.db.transaction, "probe", body)
                await anyio.wait_all_tasks_blocked()
                assert seen == []  # not read before the other writer committed
    assert seen == [1]


async def test_a_write_after_one_that_ran_no_statement_begins_the_transaction(
    store: SQLStore,
) -> None:
    """The batch's first write ran no statement: the next one begins the transaction (with
    the write lock), rather than taking a savepoint outside of one."""
    db = sqlite_of(store)
    thread, claim = await new_thread(store)
    release = anyio.Event()
    statements: list[str] = []

    async def idle(tx: Tx) -> None:
        await release.wait()  # holds the connection, runs nothing

    async def write() -> None:
        await store.append(thread.id, claim, Message(role="assistant", content="joined"))

    await db.on_statement(statements.append)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(db.transaction, "idle", idle)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(write)
            await anyio.wait_all_tasks_blocked()  # it waits to join the open batch
            release.set()
    await db.on_statement(None)
    assert [s.split()[0] for s in statements] == ["BEGIN", "UPDATE", "INSERT", "COMMIT"]
    assert statements[0] == "BEGIN IMMEDIATE"
    assert await contents(store, thread.id) == ["hi", "joined"]


# -- another process holding the lock ---------------------------------------------------


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
                # The loop runs (this test does) while the write waits on the connection's thread.
                assert not done.is_set()
            await done.wait()
    assert await contents(store, thread.id) == ["hi", "queued"]


async def test_nothing_else_uses_the_connection_while_a_write_waits_for_the_lock(
    store: SQLStore,
) -> None:
    thread, claim = await new_thread(store)
    order: list[str] = []

    async def write() -> None:
        await store.append(thread.id, claim, Message(role="assistant", content="first"))
        order.append("write")

    async def read() -> None:
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
                assert not gave_up.is_set()  # it waits until the connection is its own again
            # The lock is free: the connection gets it, and the cancelled write rolls back.
        assert await contents(store, thread.id) == ["hi"]
    assert gave_up.is_set()
    await store.append(thread.id, claim, Message(role="assistant", content="next"))
    assert await contents(store, thread.id) == ["hi", "next"]


async def test_a_lock_held_past_the_busy_timeout_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agents_mcp.store.sqlite.BUSY_MS", 100)
    store = await open_store(tmp_path / "t.db")
    try:
        thread, claim = await new_thread(store)
        with (
            anyio.fail_after(10),  # 100 ms, not the default 5 s (or a hang)
            other_writer(store.location),
            pytest.raises(StoreError, match="stayed locked by another process"),
        ):
            await store.append(thread.id, claim, Message(role="assistant", content="late"))
        await store.append(thread.id, claim, Message(role="assistant", content="fine"))
        assert await contents(store, thread.id) == ["hi", "fine"]
    finally:
        await store.close()


# -- group commit -----------------------------------------------------------------------


class Held:
    """Holds the first write that reaches ``commit:append`` there, until released."""

    def __init__(self, store: SQLStore, then: Callable[[], None] = lambda: None) -> None:
        self.reached, self.release = anyio.Event(), anyio.Event()
        self.points: list[str] = []
        self.then = then
        """Called as the held write goes on (with no await until it gives the connection up)."""
        store.points.set("*", self.hook)

    async def hook(self, point: str) -> None:
        self.points.append(f"{point} {ROLE.get()}")
        if point == "commit:append" and ROLE.get() == "held":
            self.reached.set()
            await self.release.wait()
            self.then()
        if point == "commit:append" and ROLE.get() == "fails":
            raise RuntimeError("this write fails")


async def test_writes_that_queue_share_one_commit_and_answer_after_it(
    store: SQLStore,
) -> None:
    """Writes that arrive while one holds the connection run after it in its transaction,
    each in its savepoint, and commit with it: one commit. None answers before it, nor
    does a read that ran inside it (it saw the batch's writes)."""
    threads = [await new_thread(store) for _ in range(6)]
    db = sqlite_of(store)
    held = Held(store)
    answered: list[str] = []
    before = db.commits

    async def write(i: int, role: str) -> None:
        ROLE.set(role)
        thread, claim = threads[i]
        await store.append(thread.id, claim, Message(role="assistant", content=f"m{i}"))
        answered.append(f"write {i}")

    async def read() -> None:
        ROLE.set("reader")
        assert await contents(store, threads[0][0].id) == ["hi", "m0"]  # the batch's write
        answered.append("read")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, 0, "held")
            await held.reached.wait()
            for i in range(1, 4):
                tg.start_soon(write, i, f"w{i}")
            tg.start_soon(read)
            for i in range(4, 6):
                tg.start_soon(write, i, f"w{i}")
            await anyio.wait_all_tasks_blocked()
            assert answered == []
            held.release.set()
    assert db.commits == before + 1
    assert sorted(answered) == sorted(["read", *(f"write {i}" for i in range(6))])
    for i, (thread, _) in enumerate(threads):
        assert await contents(store, thread.id) == ["hi", f"m{i}"]
    last_commit = max(i for i, p in enumerate(held.points) if p.startswith("commit:"))
    afters = [i for i, p in enumerate(held.points) if p.startswith("after:") and "pragma" not in p]
    assert len(afters) >= 7 and min(afters) > last_commit  # told "done" only once committed


async def test_a_write_that_fails_in_a_batch_rolls_back_its_own_writes_only(
    store: SQLStore,
) -> None:
    threads = [await new_thread(store) for _ in range(3)]
    db = sqlite_of(store)
    held = Held(store)
    outcomes: dict[str, str] = {}
    before = db.commits

    async def write(i: int, role: str) -> None:
        ROLE.set(role)
        thread, claim = threads[i]
        try:
            await store.append(thread.id, claim, Message(role="assistant", content=f"m{i}"))
            outcomes[role] = "ok"
        except RuntimeError as exc:
            outcomes[role] = str(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, 0, "held")
            await held.reached.wait()
            tg.start_soon(write, 1, "fails")  # its message is written, then it raises
            tg.start_soon(write, 2, "after")
            await anyio.wait_all_tasks_blocked()
            held.release.set()
    assert outcomes == {"held": "ok", "fails": "this write fails", "after": "ok"}
    assert db.commits == before + 1
    assert await contents(store, threads[0][0].id) == ["hi", "m0"]
    assert await contents(store, threads[1][0].id) == ["hi"]
    assert await contents(store, threads[2][0].id) == ["hi", "m2"]
    # The thread row's count was rolled back with the message: the next write fits.
    await store.append(threads[1][0].id, threads[1][1], Message(role="assistant", content="x"))
    assert await contents(store, threads[1][0].id) == ["hi", "x"]


async def test_a_write_cancelled_while_it_waits_for_a_batch_leaves_the_batch_whole(
    store: SQLStore,
) -> None:
    """A write that gives up while it waits to join the batch writes nothing; the batch
    that was kept open for it (the connection handed to it) still commits."""
    threads = [await new_thread(store) for _ in range(2)]
    scope = anyio.CancelScope()
    held = Held(store, then=scope.cancel)  # it gives up as the batch is handed to it
    done: list[str] = []
    answered = anyio.Event()

    async def write(i: int, role: str, scope: anyio.CancelScope | None = None) -> None:
        ROLE.set(role)
        thread, claim = threads[i]
        with scope or anyio.CancelScope():
            await store.append(thread.id, claim, Message(role="assistant", content=f"m{i}"))
            done.append(role)
            answered.set()

    async with anyio.create_task_group() as tg:
        try:
            tg.start_soon(write, 0, "held")
            with anyio.fail_after(10):
                await held.reached.wait()
            tg.start_soon(write, 1, "gives up", scope)
            await anyio.wait_all_tasks_blocked()
            held.release.set()
            with anyio.move_on_after(10):
                await answered.wait()
            assert done == ["held"], "the batch left open for a write that gave up never ended"
        finally:
            if not answered.is_set():
                await store.close()  # ends the batch, so the held write (shielded) ends too
    assert await contents(store, threads[0][0].id) == ["hi", "m0"]
    assert await contents(store, threads[1][0].id) == ["hi"]


async def test_concurrent_writes_commit_fewer_times_than_they_write(store: SQLStore) -> None:
    threads = [await new_thread(store) for _ in range(20)]
    db = sqlite_of(store)
    before = db.commits

    async def write(i: int) -> None:
        thread, claim = threads[i]
        for n in range(5):
            await store.append(thread.id, claim, Message(role="assistant", content=str(n)))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(write, i)
    assert db.commits - before < 100
    for thread, _ in threads:
        assert await contents(store, thread.id) == ["hi", "0", "1", "2", "3", "4"]
