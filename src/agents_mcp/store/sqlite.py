"""SQLite, the embedded default: one connection per process, through aiosqlite.

Every statement runs on the connection's own thread (aiosqlite's); the event loop only
queues statements and awaits their results, so a commit waiting for the disk, a write
waiting for another process's lock or a long read never holds up other requests.

* WAL (readers and the writer do not wait for each other), foreign keys, and
  ``busy_timeout`` (:data:`BUSY_MS`): a transaction waits that long for another process
  (``agents-mcp chat``, say) that holds the write lock, then fails with a clear error.
* A write transaction begins (``BEGIN IMMEDIATE``: it waits for the write lock, so what
  it reads is what it changes) with its first statement. When that is an ``INSERT``,
  ``UPDATE`` or ``DELETE``, sqlite3 begins it in the same call (the connection's
  ``isolation_level``), which saves a hand-off to aiosqlite's thread per write; before
  any other statement :class:`_Tx` begins it itself. A read of one statement
  (:meth:`SQLiteDatabase.query`) needs no transaction at all: a statement sees one
  snapshot.
* Durable by default (``synchronous=FULL``): a commit returns once the log is on disk,
  so a committed approval, decision or "started" record survives a power loss.
  SQLite's automatic checkpoints run on the connection's thread at a commit.
  ``durability="may-lose-last-commits"`` (``[server] sqlite_durability``) is
  ``synchronous=NORMAL``: commits do not wait for the disk, and the last ones before a
  power loss or an OS crash may be lost (a crash of the process loses nothing).
* Group commit: a durable commit costs one sync of the disk, however much it holds.
  Writes that arrive while one holds the connection (or while it commits) wait for it,
  then run one after the other in the same transaction, a *batch*, each inside its own
  ``SAVEPOINT``: one that raises rolls back its own writes only. The batch commits when
  no other write waits to join it (or it holds :data:`BATCH_MAX`): one ``COMMIT``, one
  sync for all. No write returns (nor passes its ``after:`` point) before its batch has
  committed, and a read that ran inside a batch (it saw the batch's writes) answers only
  then too; if the commit fails, every operation of the batch fails.
* Cancellation: a caller cancelled during its operation rolls its writes back
  (shielded) before anybody else uses the connection; one whose writes are already in
  a batch waits for the batch's commit (they are whole, and they commit). The connection
  is never left in a transaction that nobody will end.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite
import anyio

from agents_mcp.errors import StoreError
from agents_mcp.store.database import SQLITE, Body, Tx
from agents_mcp.store.failures import sqlite_public
from agents_mcp.store.points import Points
from agents_mcp.store.records import Row

__all__ = ["BATCH_MAX", "BUSY_MS", "SQLITE", "Durability", "SQLiteDatabase", "store_error"]

T = TypeVar("T")

Durability = Literal["full", "may-lose-last-commits"]
"""``full``: every commit is on disk when it returns; ``may-lose-last-commits``: faster
commits, but the last ones before a power loss may be lost."""
SYNCHRONOUS: dict[Durability, int] = {"full": 2, "may-lose-last-commits": 1}
"""``PRAGMA synchronous`` for each durability: FULL (2) or NORMAL (1)."""
BUSY_MS = 5000
"""How long a transaction waits for another process's write lock before it fails."""
BATCH_MAX = 128
"""Writes in one batch at most, so that a steady stream of writes still commits."""


class _Batch:
    """One write transaction, shared by the writes that ran in it."""

    def __init__(self) -> None:
        self.members = 0
        self.begun = False
        """Its transaction has begun: the writes that join it take a savepoint."""
        self.done = anyio.Event()
        self.error: sqlite3.Error | None = None
        """Why the batch did not commit (every operation in it fails with it)."""


class SQLiteDatabase:
    """One aiosqlite connection; writes that queue for it share commits."""

    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection, location: str) -> None:
        self._conn = conn
        self._closed = False
        self.location = location
        self.points = Points()
        self._lock = anyio.Lock(fast_acquire=True)
        """Held by the operation using the connection (they take turns, first come first)."""
        self._batch: _Batch | None = None
        """The open write transaction, if any."""
        self._writers = 0
        """Writes waiting for the connection: the open batch stays open for them."""
        self.commits = 0
        """Batches committed so far (each one sync of the disk when durable)."""
        self._unsure = False
        """A rollback may not have run (its caller was interrupted): roll back whatever is
        open before the connection is used again."""

    @classmethod
    async def open(cls, path: str, *, durability: Durability = "full") -> SQLiteDatabase:
        if path != ":memory:":
            try:
                await anyio.Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory of the thread database {path}:"
                    f" {exc.strerror or exc}; choose another --db"
                ) from exc
        # IMMEDIATE: an INSERT, UPDATE or DELETE outside a transaction begins one, in the
        # same call (see _Tx); nothing else begins implicitly, and nothing commits.
        conn = aiosqlite.connect(path, isolation_level="IMMEDIATE")
        try:
            await conn
        except sqlite3.Error as exc:
            raise store_error(exc, path) from exc
        try:
            conn.row_factory = sqlite3.Row
            for pragma in (
                f"PRAGMA busy_timeout={BUSY_MS}",  # first: another process may be migrating
                "PRAGMA journal_mode=WAL",
                "PRAGMA foreign_keys=ON",
                f"PRAGMA synchronous={SYNCHRONOUS[durability]}",
            ):
                await conn.execute_fetchall(pragma)
        except BaseException as exc:
            with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise store_error(exc, path) from exc
            raise
        return cls(conn, path)

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._lock.acquire()  # after the operation using the connection, if any
            try:
                if self._closed:
                    return
                self._closed = True
                if self._batch is not None:
                    await self._commit(self._batch)
                with contextlib.suppress(sqlite3.Error):
                    await self._conn.close()
            finally:
                self._lock.release()

    async def pragma(self, name: str) -> Any:
        """The value of ``PRAGMA <name>`` on this connection (``synchronous``, say)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a pragma name: {name!r}")

        async def body(tx: Tx) -> Any:
            rows = list(await self._conn.execute_fetchall(f"PRAGMA {name}"))
            return rows[0][0] if rows else None

        return await self.read("pragma", body)

    async def on_statement(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with every statement this connection runs, on the thread that
        runs it (for debugging and tests); None stops it."""
        # aiosqlite annotates no None, which sqlite3 takes (to stop tracing)
        await self._conn.set_trace_callback(callback)  # type: ignore[arg-type]

    async def wait_changed(self, thread_id: str, seconds: float) -> None:
        await anyio.sleep(seconds)  # other processes' commits are only seen by looking

    async def transaction(self, op: str, body: Body[T]) -> T:
        points = self.points
        if points.active:
            await points.reach(f"before:{op}")
        try:
            out = await self._write(op, body)
        except sqlite3.Error as exc:
            raise store_error(exc, self.location) from exc
        if points.active:
            await points.reach(f"after:{op}")
        return out

    async def read(self, op: str, body: Body[T]) -> T:
        return await self._reading(op, body, snapshot=True)

    async def query(self, op: str, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async def body(tx: Tx) -> list[Row]:
            return await tx.fetch(sql, params)

        return await self._reading(op, body, snapshot=False)

    async def _reading(self, op: str, body: Body[T], *, snapshot: bool) -> T:
        points = self.points
        if points.active:
            await points.reach(f"before:{op}")
        try:
            out = await self._read(body, snapshot=snapshot)
        except sqlite3.Error as exc:
            raise store_error(exc, self.location) from exc
        if points.active:
            await points.reach(f"after:{op}")
        return out

    # -- taking turns on the connection -----------------------------------------------------

    def _usable(self) -> None:
        if self._closed:
            raise StoreError(f"the thread database {self.location} is closed (shutting down)")

    async def _write(self, op: str, body: Body[T]) -> T:
        """Run ``body`` in the open batch (or a new one); return once the batch committed."""
        await self._acquire(writer=True)
        failure: BaseException | None = None
        try:
            self._usable()
            if self._unsure:
                await self._reset()
            batch = self._batch
            if batch is None:
                batch = self._batch = _Batch()
            first = not batch.begun
            batch.members += 1
            try:
                # The write that begins the batch's transaction rolls it back when it fails;
                # the others, their savepoint.
                if not first:
                    await self._conn.execute("SAVEPOINT op")
                tx = _Tx(self._conn, begin=first)
                out = await body(tx)
                batch.begun = not tx.beginning
                if self.points.active:
                    await self.points.reach(f"commit:{op}")
                if not first:  # its writes join the batch: too late to give up now
                    with anyio.CancelScope(shield=True):
                        await self._conn.execute("RELEASE op")
            except BaseException as exc:
                failure = exc
                with anyio.CancelScope(shield=True):
                    await self._undo(batch, first, exc)
        finally:
            with anyio.CancelScope(shield=True):
                await self._leave()
        return await self._answer(batch, out if failure is None else failure)

    async def _read(self, body: Body[T], *, snapshot: bool) -> T:
        """Run ``body`` over one snapshot: its own (``snapshot``: in a transaction; else its
        one statement), or the open batch's (then it answers once that batch committed: it
        saw the batch's writes)."""
        await self._acquire(writer=False)
        try:
            self._usable()
            if self._unsure:
                await self._reset()
            batch = self._batch
            if batch is None:
                return await (self._snapshot(body) if snapshot else body(_Tx(self._conn)))
            try:
                result: T | BaseException = await body(_Tx(self._conn))
            except BaseException as exc:
                result = exc
        finally:
            with anyio.CancelScope(shield=True):
                await self._leave()
        return await self._answer(batch, result)

    async def _snapshot(self, body: Body[T]) -> T:
        self._unsure = True  # until the rollback below has run
        try:
            await self._conn.execute("BEGIN")  # deferred: one snapshot from the first read on
            return await body(_Tx(self._conn))
        finally:
            with anyio.CancelScope(shield=True):
                await self._conn.rollback()
            self._unsure = False

    async def _answer(self, batch: _Batch, result: T | BaseException) -> T:
        """``result`` (returned or raised) once ``batch`` committed; a cancelled operation
        left nothing in the batch, and ends at once."""
        if isinstance(result, anyio.get_cancelled_exc_class()):
            raise result
        await self._committed(batch)
        if isinstance(result, BaseException):
            raise result
        return result

    async def _acquire(self, *, writer: bool) -> None:
        """Wait for the connection; a waiting write keeps the open batch open for it."""
        self._writers += writer
        try:
            await self._lock.acquire()
        except BaseException:
            self._writers -= writer
            if self._batch is not None and not self._lock.locked():
                # The batch was left open for this write, and nobody else will end it.
                with anyio.CancelScope(shield=True):
                    await self._lock.acquire()
                    await self._leave()
            raise
        self._writers -= writer

    async def _leave(self) -> None:
        """Give the connection up (shielded by the caller), committing the open batch unless
        another write waits to join it."""
        try:
            if self._unsure:
                await self._reset()
            batch = self._batch
            if batch is not None and (self._writers == 0 or batch.members >= BATCH_MAX):
                await self._commit(batch)
        finally:
            self._lock.release()

    async def _commit(self, batch: _Batch) -> None:
        """Commit ``batch``; its operations learn the outcome from it."""
        self._batch = None
        try:
            await self._conn.commit()
            self.commits += 1
        except sqlite3.Error as exc:
            batch.error = exc
            with contextlib.suppress(sqlite3.Error):
                await self._reset()  # a failed COMMIT may leave the transaction open
        except BaseException:
            batch.error = sqlite3.OperationalError("the commit was interrupted")
            self._unsure = True
            raise
        finally:
            batch.done.set()

    async def _undo(self, batch: _Batch, first: bool, cause: BaseException) -> None:
        """Roll back the writes of an operation that failed (shielded by the caller)."""
        self._unsure = True
        if first:
            await self._conn.rollback()
            self._batch = None
            batch.done.set()
        else:
            try:
                await self._conn.execute("ROLLBACK TO op")
                await self._conn.execute("RELEASE op")
            except sqlite3.Error as exc:  # SQLite rolled the whole transaction back (a full disk)
                batch.error = cause if isinstance(cause, sqlite3.Error) else exc
                await self._reset()
        self._unsure = False

    async def _reset(self) -> None:
        """Roll back whatever is open; the open batch fails."""
        batch, self._batch = self._batch, None
        self._unsure = True
        try:
            await self._conn.rollback()  # nothing when no transaction is open
            self._unsure = False
        finally:
            if batch is not None:
                if batch.error is None:
                    batch.error = sqlite3.OperationalError(
                        "an operation of its batch was interrupted"
                    )
                batch.done.set()

    async def _committed(self, batch: _Batch) -> None:
        """Wait for ``batch`` to end (even when cancelled meanwhile: this operation is in
        it); raise its error if it did not commit."""
        cancelled: BaseException | None = None
        with anyio.CancelScope(shield=True):
            while not batch.done.is_set():
                try:
                    await batch.done.wait()
                except anyio.get_cancelled_exc_class() as exc:  # a task's own cancel()
                    cancelled = exc
        if batch.error is not None:
            raise store_error(batch.error, self.location) from batch.error
        if cancelled is not None:
            raise cancelled


_BEGUN_BY_SQLITE3 = ("INSERT", "UPDATE", "DELETE", "REPLACE")
"""Statements before which sqlite3 begins the transaction itself (``isolation_level``)."""


class _Tx:
    def __init__(self, conn: aiosqlite.Connection, *, begin: bool = False) -> None:
        self._conn = conn
        self.beginning = begin
        """The write transaction is to begin with the next statement."""

    async def _begin(self, sql: str) -> None:
        self.beginning = False
        if not sql.lstrip()[:7].upper().startswith(_BEGUN_BY_SQLITE3):
            await self._conn.execute("BEGIN IMMEDIATE")

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self.beginning:
            await self._begin(sql)
        rows: list[Row] = list(await self._conn.execute_fetchall(sql, params))
        return rows

    async def fetchrow(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self.beginning:
            await self._begin(sql)
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.beginning:
            await self._begin(sql)
        await self._conn.executemany(sql, rows)


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
