"""How the store reaches SQLite: short operations inline, anything that may wait on
aiosqlite's worker thread.

aiosqlite runs every operation on its worker thread and hands the result back through
the event loop. That round trip costs about 0.1 ms of CPU, more than the few statements
of one step (in WAL mode with ``synchronous=NORMAL`` a commit appends to the log without
an fsync). So an operation runs on the event loop thread when it cannot wait:

* the connection is idle: nothing is in flight on the worker thread (which may be in
  the middle of a transaction on this same connection);
* the database lock is free right now: inline, ``busy_timeout`` is 0, and an operation
  that finds the database busy (another process writing) goes to the worker thread,
  where it waits up to :data:`BUSY_MS` without holding up the loop;
* automatic checkpoints, which fsync, are off for this connection: the worker thread
  runs a passive checkpoint every :data:`CHECKPOINT_EVERY` transactions;
* an operation that may read a lot (a whole transcript) asks for the worker thread.

Each operation is one function over the ``sqlite3`` connection, so a transaction is never
split across the two threads, and a cancelled caller never leaves one half done.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import TypeVar

import aiosqlite

T = TypeVar("T")

BUSY_MS = 5000
"""How long an operation on the worker thread waits for another process's write lock."""
CHECKPOINT_EVERY = 256
"""Transactions between two checkpoints (SQLite's automatic one is every ~1000 pages)."""


class Database:
    """One SQLite connection, shared by the event loop thread and aiosqlite's thread."""

    def __init__(self, conn: aiosqlite.Connection, raw: sqlite3.Connection) -> None:
        self._conn = conn
        self._raw = raw
        self._in_thread = 0
        self._transactions = 0

    @classmethod
    async def open(cls, target: str) -> Database:
        conn = await aiosqlite.connect(target, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row

        def setup(db: sqlite3.Connection) -> sqlite3.Connection:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA wal_autocheckpoint=0")
            return db

        try:
            raw = await conn._execute(setup, conn._conn)  # type: ignore[no-untyped-call]
        except BaseException:
            await conn.close()
            raise
        return cls(conn, raw)

    async def close(self) -> None:
        await self._conn.close()

    async def call(self, fn: Callable[[sqlite3.Connection], T], *, thread: bool = False) -> T:
        """Run ``fn`` over the connection: inline when it cannot wait, else on the thread."""
        if not thread and not self._in_thread:
            try:
                return fn(self._raw)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
        return await self._on_thread(fn)

    async def transaction(
        self, fn: Callable[[sqlite3.Connection], T], *, thread: bool = False
    ) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction: all of it or nothing."""

        def body(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # also when COMMIT itself failed
                    db.execute("ROLLBACK")
                raise
            return out

        out = await self.call(body, thread=thread)
        self._transactions += 1
        if self._transactions % CHECKPOINT_EVERY == 0:
            await self._on_thread(_checkpoint)
        return out

    async def _on_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()

        def done() -> None:
            self._in_thread -= 1

        def patient(db: sqlite3.Connection) -> T:
            db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
            try:
                return fn(db)
            finally:
                db.execute("PRAGMA busy_timeout=0")
                # Counted down when the thread is done with the connection, even if the
                # caller stopped waiting: until then nothing runs inline.
                loop.call_soon_threadsafe(done)

        self._in_thread += 1
        result: T = await self._conn._execute(patient, self._raw)  # type: ignore[no-untyped-call]
        return result


def _checkpoint(db: sqlite3.Connection) -> None:
    # Read the PRAGMA's row: a statement left unfinished would make every later COMMIT
    # on this connection fail ("SQL statements in progress").
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
