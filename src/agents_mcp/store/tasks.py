"""MCP tasks kept with the threads, and the secrets every replica shares.

A task (the MCP Tasks extension) is a handle on one turn of one thread: the turn that a
``chat_with_agent`` or ``approve_call`` call started or resumed and that did not end
within the call's wait. Its status is read from the thread, so it needs no run of its
own; the row holds only what the thread cannot say: who may see it (the owner of the
call that made it), which turn it follows (the index of the turn's first message, taken
in the same write), when it expires, and, once read in a final state, that state
(``outcome``), so the answer stays the same after the thread goes on with a new turn.

Task ids are unguessable (144 random bits): there is no way to list them, and another
owner's id answers exactly as one that does not exist.

``cancels`` holds the ``notifications/cancelled`` of stateless HTTP clients that reached
a replica other than the one holding the call (see ``server.stateless``), for an hour.

``secrets`` holds values that every process on the database must share and nobody
configures, such as the key that seals the state of input-required results: made once
by whichever process needs it first.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from agents_mcp.store.database import Database, Tx
from agents_mcp.store.records import Row, now

MIGRATION = """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        turn INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        ttl_ms BIGINT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        outcome TEXT
    );
    CREATE INDEX tasks_by_thread ON tasks (thread_id);
    CREATE INDEX tasks_by_expiry ON tasks (expires_at);
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE cancels (
        session TEXT NOT NULL,
        request_id TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (session, request_id)
    )
"""
"""The tables, for ``store.migrations`` (one SQL for both databases)."""

TURN_START = "COALESCE((SELECT MAX(idx) FROM messages WHERE thread_id=? AND role='user'), 0)"
"""The index of the first message of a thread's latest turn (the caller's message)."""


def new_task_id() -> str:
    """An unguessable task id: 144 random bits."""
    return "task_" + secrets.token_urlsafe(18)


@dataclass(frozen=True)
class TaskRecord:
    """One task: whose it is, which turn of which thread it follows."""

    id: str
    owner: str
    thread_id: str
    turn: int
    """The index of the first message of the turn the task follows."""
    created_at: str
    ttl_ms: int
    outcome: dict[str, Any] | None
    """The final state, once read (``{"status": ..., ...}``); None before."""


def _task(row: Row) -> TaskRecord:
    outcome = row["outcome"]
    return TaskRecord(
        id=row["id"],
        owner=row["owner"],
        thread_id=row["thread_id"],
        turn=int(row["turn"]),
        created_at=row["created_at"],
        ttl_ms=int(row["ttl_ms"]),
        outcome=json.loads(outcome) if outcome is not None else None,
    )


class TaskStore:
    """The tasks and shared secrets in the thread database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, *, owner: str, thread_id: str, ttl_ms: int) -> TaskRecord:
        """A new task on the thread's latest turn, committed before it is returned (a
        ``tasks/get`` for it then resolves on every replica). Expired tasks go."""
        epoch = self.db.dialect.epoch
        task_id, stamp = new_task_id(), now()

        async def body(tx: Tx) -> TaskRecord:
            await tx.execute(f"DELETE FROM tasks WHERE expires_at < {epoch}")
            found = await tx.fetchrow(
                "INSERT INTO tasks (id, owner, thread_id, turn, created_at, ttl_ms, expires_at)"
                f" VALUES (?, ?, ?, {TURN_START}, ?, ?, {epoch} + ?) RETURNING *",
                (task_id, owner, thread_id, thread_id, stamp, ttl_ms, ttl_ms / 1000),
            )
            assert found is not None
            return _task(found)

        return await self.db.transaction("create_task", body)

    async def get(self, task_id: str, owner: str) -> TaskRecord | None:
        """The owner's task, or None: unknown, another owner's, or expired alike."""
        epoch = self.db.dialect.epoch
        rows = await self.db.query(
            "get_task",
            f"SELECT * FROM tasks WHERE id=? AND owner=? AND expires_at >= {epoch}",
            (task_id, owner),
        )
        return _task(rows[0]) if rows else None

    async def current_turn(self, thread_id: str) -> int:
        """The index of the first message of the thread's latest turn."""
        rows = await self.db.query("task_turn", f"SELECT {TURN_START} AS turn", (thread_id,))
        return int(rows[0]["turn"]) if rows else 0

    async def settle(self, task_id: str, outcome: dict[str, Any]) -> TaskRecord | None:
        """Keep the task's final state (the first one kept wins); the task as stored."""

        async def body(tx: Tx) -> TaskRecord | None:
            await tx.execute(
                "UPDATE tasks SET outcome=? WHERE id=? AND outcome IS NULL",
                (json.dumps(outcome), task_id),
            )
            found = await tx.fetchrow("SELECT * FROM tasks WHERE id=?", (task_id,))
            return _task(found) if found is not None else None

        return await self.db.transaction("settle_task", body)

    async def open_on(self, thread_id: str) -> list[TaskRecord]:
        """The thread's tasks whose final state has not been kept yet."""
        rows = await self.db.query(
            "open_tasks",
            "SELECT * FROM tasks WHERE thread_id=? AND outcome IS NULL ORDER BY id",
            (thread_id,),
        )
        return [_task(r) for r in rows]

    async def secret(self, name: str) -> str:
        """The shared secret ``name``: made (256 random bits) by the first process to ask,
        the same for every process on this database from then on."""

        async def body(tx: Tx) -> str:
            await tx.execute(
                "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (name, secrets.token_urlsafe(32), now()),
            )
            found = await tx.fetchrow("SELECT value FROM secrets WHERE name=?", (name,))
            assert found is not None
            return str(found["value"])

        return await self.db.transaction("secret", body)

    async def record_cancel(self, session: str, request_id: str) -> None:
        """A stateless client cancelled its request ``request_id`` (kept for an hour)."""
        epoch = self.db.dialect.epoch

        async def body(tx: Tx) -> None:
            await tx.execute(f"DELETE FROM cancels WHERE expires_at < {epoch}")
            await tx.execute(
                "INSERT INTO cancels (session, request_id, expires_at)"
                f" VALUES (?, ?, {epoch} + 3600) ON CONFLICT (session, request_id) DO NOTHING",
                (session, request_id),
            )

        await self.db.transaction("record_cancel", body)

    async def cancelled(self, session: str, request_id: str) -> bool:
        """Whether that request was cancelled (on any replica)."""
        rows = await self.db.query(
            "cancelled",
            "SELECT 1 AS hit FROM cancels WHERE session=? AND request_id=?",
            (session, request_id),
        )
        return bool(rows)
