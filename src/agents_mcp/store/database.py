"""What the store needs of a database: transactions over one small ``Tx`` interface.

The store's operations are written once, as async functions over a :class:`Tx`, in SQL
with ``?`` placeholders that both SQLite and PostgreSQL run. Each database (``sqlite``,
``postgres``) provides :class:`Database`: a transaction runs its function all or nothing
and passes the named points of :mod:`agents_mcp.store.points`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from agents_mcp.store.points import Points
from agents_mcp.store.records import Row

T = TypeVar("T")


@dataclass(frozen=True)
class Dialect:
    """Where the two databases' SQL differs."""

    name: Literal["sqlite", "postgresql"]
    lock: str
    """Appended to a ``SELECT`` of the rows a transaction is about to change: PostgreSQL
    locks them (``FOR UPDATE``); SQLite's write transactions are already serial."""
    epoch: str
    """The database clock in seconds since the epoch, as an SQL expression."""


SQLITE = Dialect("sqlite", "", "((julianday('now') - 2440587.5) * 86400.0)")
POSTGRESQL = Dialect("postgresql", " FOR UPDATE", "extract(epoch from clock_timestamp())")


class Tx(Protocol):
    """One transaction (or consistent read) in progress."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query."""
        ...

    async def fetchrow(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


Body = Callable[[Tx], Awaitable[T]]


class Database(Protocol):
    """A connection (or pool) the store runs its operations on."""

    dialect: Dialect
    points: Points
    location: str
    """Where the data is, for messages: a file path or a URL without its password."""

    async def transaction(self, op: str, body: Body[T]) -> T:
        """Run ``body`` in one write transaction: all of it, or nothing."""
        ...

    async def read(self, op: str, body: Body[T]) -> T:
        """Run ``body`` over one consistent snapshot, writing nothing."""
        ...

    async def query(self, op: str, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """The rows of one read-only statement (a statement sees one snapshot: no
        transaction around it, which saves the round trips of one)."""
        ...

    async def wait_changed(self, thread_id: str, seconds: float) -> None:
        """Return once the thread may have changed in another process, or after ``seconds``
        (SQLite polls: it just waits; PostgreSQL wakes on ``NOTIFY``)."""
        ...

    async def close(self) -> None: ...
