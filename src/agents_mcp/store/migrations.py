"""Numbered schema migrations, applied in order and recorded in ``schema_migrations``.

One list serves both databases. A migration is SQL that SQLite and PostgreSQL both run,
or a pair when they must differ (SQLite cannot change a CHECK constraint in place, so it
rebuilds the table; PostgreSQL alters it). Never edit a migration that has shipped; add
the next number instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from agents_mcp.errors import ConfigError
from agents_mcp.store import tasks
from agents_mcp.store.database import Dialect, Tx

_MESSAGE_COLUMNS = (
    "thread_id, idx, role, content, tool_calls, tool_call_id, reasoning, input_tokens,"
    " output_tokens, status, created_at"
)
_APPROVAL_COLUMNS = (
    "thread_id, call_id, server, tool, arguments, digest, status, reason, reason_hint,"
    " requested_at, decided_at, origin_call_id, remote_server, remote_thread_id,"
    " remote_call_id, via"
)
# A tool row "pending" was a call in flight, or one waiting on another agents-mcp's
# approvals (those have relayed approvals pointing at it): now "started" and "waiting".
_CALL_STATUS = (
    "CASE WHEN status <> 'pending' THEN status WHEN EXISTS (SELECT 1 FROM approvals a"
    " WHERE a.thread_id = messages.thread_id AND a.origin_call_id = messages.tool_call_id)"
    " THEN 'waiting' ELSE 'started' END"
)
_V9_COMMON = """
    ALTER TABLE threads ADD COLUMN claim TEXT;
    ALTER TABLE threads ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX threads_by_owner_status ON threads (owner, status, updated_at DESC, id DESC);
    CREATE INDEX threads_by_owner_agent ON threads (owner, agent, updated_at DESC, id DESC);
"""
_V9_SQLITE = (
    _V9_COMMON
    + f"""
    CREATE TABLE messages_v9 (
        thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool', 'event')),
        content TEXT,
        tool_calls TEXT,
        tool_call_id TEXT,
        reasoning TEXT,
        reasoning_payload TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cache_read_tokens INTEGER,
        cache_write_tokens INTEGER,
        status TEXT NOT NULL CHECK (status IN ('started', 'waiting', 'complete', 'error')),
        created_at TEXT NOT NULL,
        PRIMARY KEY (thread_id, idx)
    );
    INSERT INTO messages_v9 ({_MESSAGE_COLUMNS})
        SELECT thread_id, idx, role, content, tool_calls, tool_call_id, reasoning,
        input_tokens, output_tokens, {_CALL_STATUS}, created_at FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_v9 RENAME TO messages;
    CREATE INDEX messages_by_role ON messages (thread_id, role, idx);
    CREATE TABLE approvals_v9 (
        seq INTEGER PRIMARY KEY,
        thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        call_id TEXT NOT NULL,
        server TEXT NOT NULL,
        tool TEXT NOT NULL,
        arguments TEXT NOT NULL,
        digest TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'cancelled')),
        reason TEXT,
        reason_hint TEXT,
        requested_at TEXT NOT NULL,
        decided_at TEXT,
        origin_call_id TEXT,
        remote_server TEXT,
        remote_thread_id TEXT,
        remote_call_id TEXT,
        via TEXT,
        UNIQUE (thread_id, call_id)
    );
    INSERT INTO approvals_v9 (seq, {_APPROVAL_COLUMNS})
        SELECT rowid, {_APPROVAL_COLUMNS} FROM approvals ORDER BY rowid;
    DROP TABLE approvals;
    ALTER TABLE approvals_v9 RENAME TO approvals;
    CREATE INDEX approvals_pending ON approvals (thread_id) WHERE status = 'pending';
    CREATE TABLE runners (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
"""
)
_V9_POSTGRESQL = (
    _V9_COMMON
    + f"""
    ALTER TABLE messages DROP CONSTRAINT messages_role_check;
    ALTER TABLE messages ADD CONSTRAINT messages_role_check
        CHECK (role IN ('user', 'assistant', 'tool', 'event'));
    ALTER TABLE messages DROP CONSTRAINT messages_status_check;
    UPDATE messages SET status = {_CALL_STATUS} WHERE status = 'pending';
    ALTER TABLE messages ADD CONSTRAINT messages_status_check
        CHECK (status IN ('started', 'waiting', 'complete', 'error'));
    ALTER TABLE messages ADD COLUMN reasoning_payload TEXT;
    ALTER TABLE messages ADD COLUMN cache_read_tokens INTEGER;
    ALTER TABLE messages ADD COLUMN cache_write_tokens INTEGER;
    ALTER TABLE approvals DROP CONSTRAINT approvals_status_check;
    ALTER TABLE approvals ADD CONSTRAINT approvals_status_check
        CHECK (status IN ('pending', 'approved', 'denied', 'cancelled'));
    ALTER TABLE approvals ADD COLUMN seq BIGSERIAL;
    CREATE TABLE runners (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    )
"""
)

_V15 = """
    ALTER TABLE messages ADD COLUMN reasoning_tokens INTEGER;
    ALTER TABLE messages ADD COLUMN cost_nanos BIGINT;
    ALTER TABLE messages ADD COLUMN model TEXT;
    CREATE TABLE budget_days (
        scope TEXT NOT NULL,
        day TEXT NOT NULL,
        spent_tokens BIGINT NOT NULL DEFAULT 0,
        spent_nanos BIGINT NOT NULL DEFAULT 0,
        reserved_tokens BIGINT NOT NULL DEFAULT 0,
        reserved_nanos BIGINT NOT NULL DEFAULT 0,
        requests BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, day)
    );
    CREATE TABLE turn_budgets (
        thread_id TEXT PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
        turn INTEGER NOT NULL,
        max_tokens BIGINT,
        max_nanos BIGINT
    );
    CREATE TABLE thread_traces (
        thread_id TEXT PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
        traceparent TEXT NOT NULL,
        tracestate TEXT
    )
"""
_STATUSES_V15 = "'completed', 'needs_approval', 'running', 'failed', 'cancelled', 'budget_exceeded'"


async def _v15(tx: Tx, dialect: Dialect) -> None:
    """Usage and cost per message, budgets, traces; ``budget_exceeded`` as a status.

    SQLite cannot alter a CHECK constraint, and rebuilding ``threads`` would need foreign
    keys off, which a transaction cannot do: the constraint is widened in the schema
    text, as SQLite documents for loosening a constraint (lang_altertable.html, "making
    other kinds of table schema changes"); every existing row still meets it. The schema
    version moves on so every connection reads the new text.
    """
    for statement in migrate_sql(dialect, _V15):
        await tx.execute(statement)
    if dialect.name == "postgresql":
        await tx.execute("ALTER TABLE threads DROP CONSTRAINT threads_status_check")
        await tx.execute(
            f"ALTER TABLE threads ADD CONSTRAINT threads_status_check"
            f" CHECK (status IN ({_STATUSES_V15}))"
        )
        return
    row = await tx.fetchrow("PRAGMA schema_version")
    assert row is not None
    version = int(row["schema_version"])
    await tx.execute("PRAGMA writable_schema=ON")
    try:
        changed = await tx.execute(
            "UPDATE sqlite_schema SET sql=replace(sql, ?, ?) WHERE type='table' AND name='threads'",
            ("'failed', 'cancelled')", "'failed', 'cancelled', 'budget_exceeded')"),
        )
        await tx.execute(f"PRAGMA schema_version={version + 1}")
    finally:
        await tx.execute("PRAGMA writable_schema=OFF")
    if changed != 1:
        raise ConfigError("migration 15: the threads table is not as migration 1 made it")


Migration = str | tuple[str, str] | Callable[[Tx, Dialect], Awaitable[None]]
"""SQL both databases run, a (SQLite, PostgreSQL) pair, or a function of the transaction."""

MIGRATIONS: tuple[tuple[int, str, Migration], ...] = (
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
    (
        9,
        "one owner per thread: claims, stop requests, started calls, leases, status indexes",
        (_V9_SQLITE, _V9_POSTGRESQL),
    ),
    (
        10,
        "the output schema the latest turn's answer must meet",
        "ALTER TABLE threads ADD COLUMN output_schema TEXT",
    ),
    (
        11,
        "list_threads by agent and status: one index walk, however few threads match",
        "CREATE INDEX threads_by_owner_agent_status"
        " ON threads (owner, agent, status, updated_at DESC, id DESC)",
    ),
    (
        12,
        "the delegation chain of the agent that asked the latest turn, kept for its resumption",
        "ALTER TABLE threads ADD COLUMN caller_chain TEXT",
    ),
    (13, "MCP tasks on threads' turns, and the secrets every replica shares", tasks.MIGRATION),
    (
        14,
        "questions downstream servers ask during tool calls, until a person answers",
        """
        CREATE TABLE questions (
            id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            root_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            call_id TEXT,
            claim TEXT NOT NULL,
            server TEXT NOT NULL,
            tool TEXT,
            message TEXT NOT NULL,
            requested_schema TEXT,
            status TEXT NOT NULL CHECK (status IN ('pending', 'answered', 'closed')),
            action TEXT CHECK (action IN ('accept', 'decline', 'cancel')),
            content TEXT,
            reason TEXT,
            asked_at TEXT NOT NULL,
            answered_at TEXT,
            via TEXT
        );
        CREATE INDEX questions_by_root ON questions (root_id, status);
        CREATE INDEX questions_by_thread ON questions (thread_id, status)
        """,
    ),
    (15, "usage and cost per message, budgets, traces, budget_exceeded", _v15),
    (
        16,
        "sign-ins to downstream servers: tokens per owner, client registrations, pending",
        """
        ALTER TABLE approvals ADD COLUMN kind TEXT;
        ALTER TABLE approvals ADD COLUMN url TEXT;
        CREATE INDEX approvals_authorizations ON approvals (server) WHERE kind = 'authorization'
            AND status = 'pending';
        CREATE TABLE oauth_clients (
            id TEXT PRIMARY KEY,
            server TEXT NOT NULL,
            redirect_uri TEXT NOT NULL,
            issuer TEXT,
            info TEXT NOT NULL,
            retired INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE INDEX oauth_clients_by_server ON oauth_clients (server, redirect_uri, created_at);
        CREATE TABLE oauth_tokens (
            owner TEXT NOT NULL,
            server TEXT NOT NULL,
            issuer TEXT NOT NULL,
            client_ref TEXT,
            token TEXT NOT NULL,
            expires_at DOUBLE PRECISION,
            token_endpoint TEXT NOT NULL,
            resource TEXT,
            scope TEXT,
            version INTEGER NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (owner, server, issuer)
        );
        CREATE TABLE oauth_pending (
            state_hash TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            server TEXT NOT NULL,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX oauth_pending_by_owner ON oauth_pending (owner, server)
        """,
    ),
)


def migrate_sql(dialect: Dialect, sql: str | tuple[str, str]) -> list[str]:
    """A migration's statements for ``dialect``."""
    text = sql if isinstance(sql, str) else sql[0 if dialect.name == "sqlite" else 1]
    # One statement at a time: SQLite's executescript would commit our transaction.
    return [s for s in (part.strip() for part in text.split(";")) if s]


async def migrate(tx: Tx, dialect: Dialect) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied.

    Runs inside the caller's transaction, so a failed migration leaves nothing behind.
    """
    if dialect.name == "postgresql":  # replicas starting together: one migrates
        await tx.execute("SELECT pg_advisory_xact_lock(727000001)")
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = {int(r["version"]) for r in await tx.fetch("SELECT version FROM schema_migrations")}
    newest = max(v for v, _, _ in MIGRATIONS)
    if done and max(done) > newest:
        raise ConfigError(
            f"the database has schema version {max(done)}, newer than this agents-mcp knows"
            f" ({newest}); upgrade agents-mcp or use another --db"
        )
    applied = []
    for version, name, sql in MIGRATIONS:
        if version in done:
            continue
        if callable(sql):
            await sql(tx, dialect)
        else:
            for statement in migrate_sql(dialect, sql):
                await tx.execute(statement)
        await tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (version, name, datetime.now(UTC).isoformat()),
        )
        applied.append(version)
    return applied
