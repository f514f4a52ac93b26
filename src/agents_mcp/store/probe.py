"""What ``agents-mcp check`` says about the thread database: which one, and can it be used.

It only looks: a SQLite file is opened read-only (or its directory checked when the file
does not exist yet), a PostgreSQL database is connected to and asked its schema version.
Nothing is created or migrated.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import anyio

from agents_mcp.config.database import is_postgres
from agents_mcp.store.migrations import MIGRATIONS

NEWEST = max(v for v, _, _ in MIGRATIONS)


@dataclass(frozen=True)
class Probe:
    ok: bool
    location: str
    detail: str
    fix: str | None = None


def _schema(version: int | None) -> str:
    if version is None:
        return "empty: the first start creates its tables"
    if version == NEWEST:
        return f"schema {version}, up to date"
    if version < NEWEST:
        return f"schema {version}: the next start upgrades it to {NEWEST}"
    return f"schema {version}, newer than this agents-mcp knows ({NEWEST}): upgrade agents-mcp"


async def probe(db: str, *, seconds: float = 10.0) -> Probe:
    """Whether the database ``db`` (a SQLite path or a PostgreSQL URL) can be used."""
    if is_postgres(db):
        return await _postgres(db, seconds)
    return await anyio.to_thread.run_sync(_sqlite, db)


def _sqlite(db: str) -> Probe:
    path = Path(os.path.expanduser(db))
    home = str(Path.home())
    shown = "~" + str(path)[len(home) :] if str(path).startswith(home + os.sep) else str(path)
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if os.access(parent, os.W_OK | os.X_OK):
            return Probe(True, shown, "SQLite, created on first use")
        return Probe(
            False, shown, f"SQLite: cannot create it ({parent} is not writable)",
            "choose another --db or [server] db",
        )  # fmt: skip
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            found = conn.execute(
                "SELECT name FROM sqlite_master WHERE name='schema_migrations'"
            ).fetchone()
            version = (
                conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
                if found
                else None
            )
    except sqlite3.Error as exc:
        return Probe(
            False, shown, f"SQLite: cannot read it ({exc})", "is it an agents-mcp database?"
        )
    return Probe(version is None or version <= NEWEST, shown, f"SQLite, {_schema(version)}")


async def _postgres(url: str, seconds: float) -> Probe:
    from agents_mcp.errors import StoreError
    from agents_mcp.store.postgres import redact, schema_version

    shown = redact(url)
    try:
        server, version = await schema_version(url, seconds)
    except StoreError as exc:
        return Probe(
            False, shown, str(exc),
            "check the URL (user, host, port, database; the password from ${VAR}) and that"
            " PostgreSQL runs",
        )  # fmt: skip
    return Probe(
        version is None or version <= NEWEST, shown, f"PostgreSQL {server}, {_schema(version)}"
    )
