"""PostgreSQL, for several agents-mcp replicas on one database (asyncpg).

Why asyncpg: it is asyncio-native (our loop), the fastest PostgreSQL driver for Python
(binary protocol, prepared statements cached per connection), and it delivers ``NOTIFY``
to a listener callback on a plain connection, which is how replicas learn at once that a
thread changed. Its one dependency is itself.

* Transactions run on a pool of connections; a transition locks its top-level thread's
  row (``SELECT … FOR UPDATE``), so transitions of one thread are serial across replicas.
* Leases (:class:`TableLeases`): each replica renews its row in ``runners`` every third of
  ``lease_seconds``, on a connection and in a thread of its own (a busy pool or a busy
  event loop would delay the renewal past the lease, and the others would take over a
  live replica's runs); a replica whose row has expired is gone, and any other replica
  settles its threads (see ``threads.Threads.recover``).
* Every transition sends ``NOTIFY agents_mcp, '<thread id>'`` at commit; a request that
  follows a run on another replica wakes on it, and polls as a fallback.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, TypeVar, cast

import anyio
import asyncpg
from asyncpg import exceptions as pgx
from asyncpg.pool import PoolConnectionProxy

from agents_mcp.errors import StoreError
from agents_mcp.store.database import POSTGRESQL, Body
from agents_mcp.store.leases import TableLeases
from agents_mcp.store.points import Points
from agents_mcp.store.records import Row
from agents_mcp.store.sql import SQLStore

log = logging.getLogger("agents_mcp.store.postgres")

T = TypeVar("T")

POOL_SIZE = 10
CONNECT_SECONDS = 10.0
LOCK_MS = 5000
"""How long a transaction waits for a row another session holds (as SQLite's busy timeout)."""
SESSION_SETTINGS = {
    "lock_timeout": str(LOCK_MS),
    "statement_timeout": "60000",
    # A replica that hangs inside a transaction must not hold others' threads forever.
    "idle_in_transaction_session_timeout": "60000",
}
CHANNEL = "agents_mcp"


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from agents_mcp.store import shown

    return shown(url)


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …``."""
    count = 0

    def next_mark(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return re.sub(r"\?", next_mark, sql)


class PostgresDatabase:
    """A pool of connections, and one more that listens for changes."""

    dialect = POSTGRESQL

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self._url = url
        self.location = redact(url)
        self.points = Points()
        self._listener: asyncpg.Connection | None = None
        self._waiters: dict[str, set[anyio.Event]] = {}

    @classmethod
    async def open(
        cls, url: str, *, size: int = POOL_SIZE, listen: bool = True
    ) -> PostgresDatabase:
        """A pool of ``size`` connections, and one that listens for changes (``listen``)."""
        try:
            with anyio.fail_after(CONNECT_SECONDS):
                pool = await asyncpg.create_pool(
                    url,
                    min_size=1,
                    max_size=size,
                    server_settings=SESSION_SETTINGS,
                    command_timeout=90,
                )
        except (OSError, TimeoutError, pgx.PostgresError, pgx.InterfaceError) as exc:
            raise pg_error(exc, redact(url)) from exc
        db = cls(pool, url)
        if not listen:
            return db
        try:
            db._listener = await asyncpg.connect(url)
            await db._listener.add_listener(CHANNEL, db._notified)
        except (OSError, pgx.PostgresError, pgx.InterfaceError) as exc:
            log.warning("no change notifications (%s); replicas poll instead", exc)
        return db

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        for event in self._waiters.pop(str(payload), ()):
            event.set()

    async def wait_changed(self, thread_id: str, seconds: float) -> None:
        event = anyio.Event()
        self._waiters.setdefault(thread_id, set()).add(event)
        try:
            with anyio.move_on_after(seconds if self._listener is None else max(seconds, 2.0)):
                await event.wait()
        finally:
            waiting = self._waiters.get(thread_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiters[thread_id]

    async def transaction(self, op: str, body: Body[T]) -> T:
        return await self._run(op, body, readonly=False)

    async def read(self, op: str, body: Body[T]) -> T:
        return await self._run(op, body, readonly=True)

    async def query(self, op: str, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._run(op, lambda tx: tx.fetch(sql, params), readonly=None)

    async def _run(self, op: str, body: Body[T], *, readonly: bool | None) -> T:
        """``body`` in a transaction (``readonly``: a repeatable read) or, for ``None``
        (one statement), as it is."""
        points = self.points
        if points.active:
            await points.reach(f"before:{op}")
        try:
            async with self._pool.acquire() as conn:
                if readonly is None:
                    out = await body(_Tx(conn))
                else:
                    out = await self._in_transaction(conn, op, body, readonly=readonly)
        except (OSError, TimeoutError, pgx.PostgresError, pgx.InterfaceError) as exc:
            raise pg_error(exc, self.location) from exc
        if points.active:
            await points.reach(f"after:{op}")
        return out

    async def _in_transaction(
        self, conn: PoolConnectionProxy, op: str, body: Body[T], *, readonly: bool
    ) -> T:
        if readonly:
            tx = conn.transaction(isolation="repeatable_read", readonly=True)
        else:
            tx = conn.transaction()
        async with tx:
            out = await body(_Tx(conn))
            if self.points.active and not readonly:
                await self.points.reach(f"commit:{op}")
        return out

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=5)
        with anyio.move_on_after(10):
            await self._pool.close()


NUL = "\x00"
ESCAPE = "\U0010ffff"
"""PostgreSQL's ``text`` cannot hold U+0000, which a tool's output, a model's reply or a
message may contain: stored, U+0000 becomes ``ESCAPE`` + ``0`` and ``ESCAPE`` itself
(a noncharacter, the last code point) is doubled; both are restored on reading, so
every text round-trips, and SQL comparisons of equal texts still match."""
_ESCAPED = re.compile(ESCAPE + "([0" + ESCAPE + "])")


def escape_text(value: str) -> str:
    """``value`` as PostgreSQL stores it (unchanged unless it holds NUL or ``ESCAPE``)."""
    if NUL not in value and ESCAPE not in value:
        return value
    return value.replace(ESCAPE, ESCAPE + ESCAPE).replace(NUL, ESCAPE + "0")


def restore_text(value: str) -> str:
    """The text :func:`escape_text` stored."""
    if ESCAPE not in value:
        return value
    return _ESCAPED.sub(lambda m: NUL if m[1] == "0" else ESCAPE, value)


def _params(params: Sequence[Any]) -> list[Any]:
    return [escape_text(p) if isinstance(p, str) else p for p in params]


def _restored(row: Any) -> Row:
    """``row``, or a copy with its texts restored when one of them was escaped."""
    if not any(isinstance(v, str) and ESCAPE in v for v in row.values()):
        return cast(Row, row)
    return {k: restore_text(v) if isinstance(v, str) else v for k, v in row.items()}


class _Tx:
    def __init__(self, conn: asyncpg.Connection | PoolConnectionProxy) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: Sequence[Any] = (), *, long: bool = False) -> list[Row]:
        rows = await self._conn.fetch(numbered(sql), *_params(params))
        return [_restored(r) for r in rows]

    async def fetchrow(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = await self._conn.fetchrow(numbered(sql), *_params(params))
        return None if row is None else _restored(row)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        status: str = await self._conn.execute(numbered(sql), *_params(params))
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._conn.executemany(numbered(sql), [_params(r) for r in rows])


async def schema_version(url: str, seconds: float) -> tuple[str, int | None]:
    """The server's version and the database's schema version (None: no tables yet),
    without changing anything (for ``check``)."""
    try:
        with anyio.fail_after(seconds):
            conn = await asyncpg.connect(url)
            try:
                server = conn.get_server_version()
                table = await conn.fetchval("SELECT to_regclass('schema_migrations')")
                version = (
                    await conn.fetchval("SELECT max(version) FROM schema_migrations")
                    if table
                    else None
                )
            finally:
                await conn.close()
    except (OSError, TimeoutError, pgx.PostgresError, pgx.InterfaceError) as exc:
        raise pg_error(exc, redact(url)) from exc
    return f"{server.major}.{server.minor}", version


async def open_postgres(url: str, *, lease_seconds: float) -> SQLStore:
    db = await PostgresDatabase.open(url)

    async def renewals() -> PostgresDatabase:
        """The lease's own connection (opened in its thread, see :class:`TableLeases`)."""
        return await PostgresDatabase.open(url, size=1, listen=False)

    leases = TableLeases(db, lease_seconds, renewals=renewals)
    store = SQLStore(db, leases)
    try:
        await store.migrate()
        await leases.start()
    except BaseException:
        await store.close()
        raise
    return store


def pg_error(exc: BaseException, location: str) -> StoreError:
    """What went wrong with PostgreSQL, in words an operator can act on (the message) and
    in words a client may read (``public``: no location, no driver text)."""
    why, public = _pg_words(exc, location)
    return StoreError(why, public=public)


def _pg_words(exc: BaseException, location: str) -> tuple[str, str]:
    if isinstance(exc, pgx.LockNotAvailableError):
        public = f"it stayed locked by another session for more than {LOCK_MS // 1000} s; try again"
        return f"the thread database {location} {public}", public
    if isinstance(exc, pgx.QueryCanceledError):
        public = "it did not answer in time; try again"
        return f"the thread database {location} did not answer in time ({exc}); try again", public
    if isinstance(exc, pgx.DiskFullError):
        return f"the disk of the PostgreSQL server at {location} is full", "its disk is full"
    if isinstance(exc, pgx.ReadOnlySQLTransactionError):
        return (
            f"the PostgreSQL database {location} is read-only (a standby?); point --db at the"
            " primary",
            "it is read-only",
        )
    if isinstance(exc, pgx.InvalidPasswordError | pgx.InvalidAuthorizationSpecificationError):
        return (
            f"PostgreSQL at {location} refused the login ({exc}); check the user and password"
            " in the URL",
            "it refused agents-mcp's login",
        )
    if isinstance(exc, pgx.InvalidCatalogNameError):
        return (
            f"the PostgreSQL database in {location} does not exist; create it (createdb) first",
            "it does not exist",
        )
    if isinstance(exc, OSError | TimeoutError | pgx.ConnectionDoesNotExistError):
        return (
            f"cannot reach PostgreSQL at {location} ({exc or type(exc).__name__}); is it running?",
            "it cannot be reached; try again later",
        )
    return f"the PostgreSQL database {location} failed ({exc})", "it failed"
