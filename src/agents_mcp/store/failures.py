"""What a failing SQLite database tells MCP clients (``StoreError.public``): what
happened, without the file's path or the driver's words, which only the log gets
(PostgreSQL's are in ``postgres.pg_error``)."""

from __future__ import annotations

import sqlite3

_SQLITE = {
    sqlite3.SQLITE_FULL: "its disk is full",
    sqlite3.SQLITE_READONLY: "it is read-only",
    sqlite3.SQLITE_CANTOPEN: "it cannot be opened",
    sqlite3.SQLITE_BUSY: "it stayed locked by another process too long; try again",
    sqlite3.SQLITE_LOCKED: "it stayed locked by another process too long; try again",
    sqlite3.SQLITE_IOERR: "it had an I/O error",
    sqlite3.SQLITE_CORRUPT: "it is damaged",
    sqlite3.SQLITE_NOTADB: "it is damaged",
}


def sqlite_public(code: int) -> str:
    """What happened, for a client, from SQLite's primary result ``code``."""
    return _SQLITE.get(code, "it failed")
