"""SQLite, the embedded default: one connection per process, WAL, and one worker thread.

A step's few statements cost less than a hop to another thread and back (in WAL mode with
``synchronous=NORMAL`` a commit appends to the log without an fsync), so an operation runs
on the event loop thread when it cannot wait:

* the database lock is free right now: inline, ``busy_timeout`` is 0, and a transaction
  that finds the database busy (another process writing) waits for the lock on the
  worker thread, up to :data:`BUSY_MS`, without holding up the loop;
* a read that may be long (a whole transcript) runs on the worker thread;
* automatic checkpoints, which fsync, are off: the worker thread runs a passive one every
  :data:`CHECKPOINT_EVERY` transactions.

One asyncio lock serialises the connection's users, so the two threads never use it at
once. A caller cancelled while the worker thread works waits (shielded) until the thread
is done, then rolls back: nothing half done is ever committed, and the connection is
idle again before anyone else touches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anyio

from agents_mcp.errors import StoreError
from agents_mcp.store.database import SQLITE, Body
from agents_mcp.store.failures import sqlite_public
from agents_mcp.store.points import Points
from agents_mcp.store.records import Row

T = TypeVar("T")

BUSY_MS = 5000
"""How long a transaction waits for another process's write lock before it fails."""
CHECKPOINT_EVERY = 256
"""Transactions between two checkpoints (SQLite's automatic one is every ~1000 pages)."""


class SQLiteDatabase:
    """One SQLite connection, shared by the event loop thread and one worker thread."""

    dialect = SQLITE

    def __init__(self, raw: sqlite3.Connection, executor: ThreadPoolExecutor, location: str):
        self._raw = raw
        self._executor = executor
        self._lock = asyncio.Lock()
        self._transactions = 0
        self.location = location
        self.points = Points()

    @classmethod
    async def open(cls, path: str) -> SQLiteDatabase:
        if path != ":memory:":
            try:
                await anyio.Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory of the thread database {path}:"
                    f" {exc.strerror or exc}; choose another --db"
                ) from exc
        executor = ThreadPoolExecutor(1, thread_name_prefix="agents-mcp-sqlite")
        try:
            raw = await asyncio.wrap_future(executor.submit(_connect, path))
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise store_error(exc, path) from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(raw, executor, path)

    async def close(self) -> None:
        async with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._raw.close()
        self._executor.shutdown(wait=False)

    async def wait_changed(self, thread_id: str, seconds: float) -> None:
        await anyio.sleep(seconds)  # other processes' commits are only seen by looking

    async def transaction(self, op: str, body: Body[T]) -> T:
        points = self.points
        if points.active:
            await points.reach(f"before:{op}")
        try:
            async with self._lock:
                tx = _Tx(self, points.threaded(op))
                try:
                    await self._begin(tx.threaded)  # cancelled while waiting: rolled back
                    out = await body(tx)
                    if points.active:
                        await points.reach(f"commit:{op}")
                    await tx.execute("COMMIT")
                except BaseException:
                    if self._raw.in_transaction:  # also when COMMIT itself failed
                        with contextlib.suppress(sqlite3.Error):
                            self._raw.execute("ROLLBACK")
                    raise
                self._transactions += 1
                if self._transactions % CHECKPOINT_EVERY == 0:
                    await self._on_thread(_checkpoint)
        except sqlite3.Error as exc:
            raise store_error(exc, self.location) from exc
        if points.active:
            await points.reach(f"after:{op}")
        return out

    async def read(self, op: str, body: Body[T]) -> T:
        points = self.points
        if points.active:
            await points.reach(f"before:{op}")
        try:
            async with self._lock:
                tx = _Tx(self, points.threaded(op))
                self._raw.execute("BEGIN")  # deferred: one snapshot from the first read on
                try:
                    out = await body(tx)
                finally:
                    if self._raw.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._raw.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise store_error(exc, self.location) from exc
        if points.active:
            await points.reach(f"after:{op}")
        return out

    async def _begin(self, threaded: bool) -> None:
        if not threaded:
            try:
                self._raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
        await self._on_thread(lambda db: db.execute("BEGIN IMMEDIATE"))

    async def _on_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the worker thread, waiting for locks up to ``BUSY_MS``."""

        def patient(db: sqlite3.Connection) -> T:
            db.execute(f"PRAGMA busy_timeout={BUSY_MS}").fetchall()
            try:
                return fn(db)
            finally:
                db.execute("PRAGMA busy_timeout=0").fetchall()

        future = asyncio.wrap_future(self._executor.submit(patient, self._raw))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The thread still uses the connection: wait until it is done (bounded by
            # the busy timeout) so nobody else touches the connection meanwhile.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await future
            raise


class _Tx:
    def __init__(self, db: SQLiteDatabase, threaded: bool) -> None:
        self._db = db
        self.threaded = threaded

    async def fetch(self, sql: str, params: Sequence[Any] = (), *, long: bool = False) -> list[Row]:
        if long or self.threaded:
            rows: list[Row] = await self._db._on_thread(lambda c: c.execute(sql, params).fetchall())
            return rows
        return self._db._raw.execute(sql, params).fetchall()

    async def fetchrow(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self.threaded:
            return await self._db._on_thread(lambda c: c.execute(sql, params).rowcount)
        return self._db._raw.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.threaded:
            await self._db._on_thread(lambda c: c.executemany(sql, rows))
        else:
            self._db._raw.executemany(sql, rows)


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout={BUSY_MS}").fetchall()  # others may be migrating
        db.execute("PRAGMA journal_mode=WAL").fetchall()
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0").fetchall()
        db.execute("PRAGMA busy_timeout=0").fetchall()
    except BaseException:
        db.close()
        raise
    return db


def _checkpoint(db: sqlite3.Connection) -> None:
    # Read the PRAGMA's row: a statement left unfinished would make every later COMMIT
    # on this connection fail ("SQL statements in progress").
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def store_error(exc: sqlite3.Error, location: str) -> StoreError:
    """What went wrong with the database, in words an operator can act on."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    detail = str(exc)
    name = Path(location).name if location != ":memory:" else location
    if code == sqlite3.SQLITE_FULL:
        why = f"the disk holding the thread database {location} is full; free some space"
    elif code == sqlite3.SQLITE_READONLY:
        why = (
            f"the thread database {location} is read-only ({detail}); make it and its"
            " directory writable, or choose another --db"
        )
    elif code == sqlite3.SQLITE_CANTOPEN:
        why = (
            f"cannot open the thread database {location} ({detail}); check that its"
            " directory exists and is writable, or choose another --db"
        )
    elif code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        why = (
            f"the thread database {name} stayed locked by another process for more than"
            f" {BUSY_MS // 1000} s; try again"
        )
    elif code == sqlite3.SQLITE_IOERR:
        why = f"the thread database {location} had an I/O error ({detail}); check the disk"
    elif code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        why = f"the thread database {location} is damaged or not a database ({detail})"
    else:
        why = f"the thread database {location} failed ({detail})"
    return StoreError(why, public=sqlite_public(code))
