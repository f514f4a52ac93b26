"""Durable threads: threads, their messages, approvals, questions and who runs them.

The loop and ``threads`` depend on the :class:`Store` protocol. One implementation of its
operations (``sql.SQLStore``) runs on SQLite (``sqlite``: a file, the embedded default)
or PostgreSQL (``postgres``: several replicas on one database). The thread's state
machine is written down in ``states``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from agents_mcp.config.database import db_location, is_postgres
from agents_mcp.errors import ConfigError
from agents_mcp.store.lifecycle import Deleted
from agents_mcp.store.protocol import Store
from agents_mcp.store.questions import ACTIONS, Action, Question, new_question_id
from agents_mcp.store.records import (
    THREAD_STATUSES,
    Approval,
    ApprovalStatus,
    Claim,
    Decision,
    Settled,
    StoredMessage,
    Thread,
    ThreadStatus,
    digest,
    new_thread_id,
    now,
)
from agents_mcp.store.settle import open_calls
from agents_mcp.store.sql import SQLStore
from agents_mcp.store.states import StateConflict

__all__ = [
    "ACTIONS",
    "LOCAL_OWNER",
    "THREAD_STATUSES",
    "Action",
    "Approval",
    "ApprovalStatus",
    "Claim",
    "Decision",
    "Deleted",
    "Question",
    "SQLStore",
    "Settled",
    "StateConflict",
    "Store",
    "StoredMessage",
    "Thread",
    "ThreadStatus",
    "default_db_path",
    "digest",
    "is_url",
    "new_question_id",
    "new_thread_id",
    "now",
    "open_calls",
    "open_store",
    "resolve_db",
    "shown",
]

log = logging.getLogger("agents_mcp.store")

LOCAL_OWNER = "local"
"""The owner of threads over stdio, from the CLI, and over HTTP without tokens."""


def default_db_path() -> Path:
    """The database when neither ``--db`` nor ``[server] db`` names one."""
    import platformdirs

    return Path(platformdirs.user_data_dir("agents-mcp")) / "threads.db"


def is_url(db: str) -> bool:
    """Whether ``db`` names a PostgreSQL database rather than a SQLite file."""
    return is_postgres(db)


def shown(db: str) -> str:
    """``db`` as it may be printed or logged: a URL without its password."""
    if not is_url(db):
        return db
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(db)
    if parts.password is None:
        return db
    netloc = f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def resolve_db(configured: str | None, override: str | Path | None = None) -> str:
    """``--db``, else the config's ``[server] db``, else :func:`default_db_path`: a
    PostgreSQL URL or a SQLite path (see :mod:`agents_mcp.config.database`).

    Raises:
        ConfigError: ``--db`` names a scheme agents-mcp does not support.
    """
    if override is not None:
        return _location(str(override), "--db")
    if configured is not None:
        return _location(configured, "[server] db")
    return str(default_db_path())


def _location(db: str, given: str) -> str:
    try:
        return db_location(db)
    except ValueError as exc:
        raise ConfigError(f"{given}: {exc}") from None


async def open_store(
    db: str | Path,
    *,
    lease_seconds: float = 15.0,
    sqlite_durability: Literal["full", "may-lose-last-commits"] = "full",
) -> SQLStore:
    """Open (creating and migrating as needed) the store at ``db``: a SQLite path (or
    ``sqlite:`` URL, or ``:memory:``), or a ``postgresql://`` URL.

    ``sqlite_durability``: ``"may-lose-last-commits"`` trades durability for speed on
    SQLite (see ``sqlite``); PostgreSQL ignores it, with a warning (its server decides).
    """
    target = _location(str(db), "database")
    if is_url(target):
        from agents_mcp.store.postgres import open_postgres

        if sqlite_durability != "full":
            log.warning(
                "sqlite_durability = %r is ignored: the database is PostgreSQL, whose"
                " durability its server decides (synchronous_commit)",
                sqlite_durability,
            )
        return await open_postgres(target, lease_seconds=lease_seconds)
    from agents_mcp.store import leases as lease_kinds
    from agents_mcp.store.sqlite import SQLiteDatabase

    database = await SQLiteDatabase.open(target, durability=sqlite_durability)
    leases: lease_kinds.Leases
    try:
        if lease_kinds.has_flock() or target == ":memory:":
            leases = lease_kinds.FileLeases(target)
        else:  # no flock (Windows): leases in the database, renewed like a replica's
            leases = lease_kinds.TableLeases(database, lease_seconds)
    except BaseException:
        await database.close()
        raise
    store = SQLStore(database, leases)
    try:
        await store.migrate()
        if isinstance(leases, lease_kinds.TableLeases):
            await leases.start()
    except BaseException:
        await store.close()
        raise
    return store
