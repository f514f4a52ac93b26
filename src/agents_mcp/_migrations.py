"""Numbered schema migrations, applied in order and recorded in ``schema_migrations``.

Never edit a migration that has shipped; add the next number instead.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "threads, messages, approvals",
        """
        CREATE TABLE threads (
            id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            owner TEXT NOT NULL,
            title TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('completed', 'needs_approval', 'running', 'failed', 'cancelled')),
            error_type TEXT,
            error_message TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            message_count INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX threads_by_owner ON threads (owner, updated_at DESC, id DESC);
        CREATE INDEX threads_by_status ON threads (status);

        CREATE TABLE messages (
            thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
            content TEXT,
            tool_calls TEXT,
            tool_call_id TEXT,
            reasoning TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            status TEXT NOT NULL CHECK (status IN ('pending', 'complete', 'error')),
            created_at TEXT NOT NULL,
            PRIMARY KEY (thread_id, idx)
        );
        CREATE INDEX messages_pending ON messages (status) WHERE status = 'pending';

        CREATE TABLE approvals (
            thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            call_id TEXT NOT NULL,
            server TEXT NOT NULL,
            tool TEXT NOT NULL,
            arguments TEXT NOT NULL,
            digest TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
            reason TEXT,
            reason_hint TEXT,
            requested_at TEXT NOT NULL,
            decided_at TEXT,
            PRIMARY KEY (thread_id, call_id)
        );
        CREATE INDEX approvals_pending ON approvals (thread_id) WHERE status = 'pending';

        CREATE TABLE grants (
            thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            tool TEXT NOT NULL,
            PRIMARY KEY (thread_id, tool)
        );
        """,
    ),
    (
        2,
        "personality chosen for the thread's latest turn",
        "ALTER TABLE threads ADD COLUMN personality TEXT",
    ),
    (
        3,
        "child threads of delegations",
        """
        ALTER TABLE threads ADD COLUMN parent_id TEXT REFERENCES threads (id) ON DELETE CASCADE;
        ALTER TABLE threads ADD COLUMN parent_call_id TEXT;
        CREATE INDEX threads_by_parent ON threads (parent_id, parent_call_id)
        """,
    ),
    (
        4,
        "approvals relayed from another agents-mcp",
        """
        ALTER TABLE approvals ADD COLUMN origin_call_id TEXT;
        ALTER TABLE approvals ADD COLUMN remote_server TEXT;
        ALTER TABLE approvals ADD COLUMN remote_thread_id TEXT;
        ALTER TABLE approvals ADD COLUMN remote_call_id TEXT;
        ALTER TABLE approvals ADD COLUMN via TEXT
        """,
    ),
    (
        5,
        "the process running each thread",
        "ALTER TABLE threads ADD COLUMN runner TEXT",
    ),
    (
        6,
        "find the start of a thread's latest turn without scanning it",
        "CREATE INDEX messages_by_role ON messages (thread_id, role, idx)",
    ),
    (
        7,
        "a revision counter of each thread's messages, for transcripts kept in memory",
        "ALTER TABLE threads ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
    ),
    (
        8,
        "every query of pending rows names its thread: the primary key serves them",
        "DROP INDEX IF EXISTS messages_pending",
    ),
)


def migrate(db: sqlite3.Connection) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied.

    Runs inside the caller's transaction, so a failed migration leaves nothing behind.
    """
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = {int(r[0]) for r in db.execute("SELECT version FROM schema_migrations")}
    newest = max(v for v, _, _ in MIGRATIONS)
    if done and max(done) > newest:
        from agents_mcp.errors import ConfigError

        raise ConfigError(
            f"the database has schema version {max(done)}, newer than this agents-mcp knows"
            f" ({newest}); upgrade agents-mcp or use another --db"
        )
    applied = []
    for version, name, sql in MIGRATIONS:
        if version in done:
            continue
        # executescript would COMMIT our transaction; run statement by statement instead.
        for statement in filter(None, (s.strip() for s in sql.split(";"))):
            db.execute(statement)
        db.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (version, name, datetime.now(UTC).isoformat()),
        )
        applied.append(version)
    return applied
