"""Durable threads in SQLite (aiosqlite): threads, their messages and their approvals.

One connection per process, WAL, foreign keys, numbered migrations recorded in the
database. Every multi-statement write runs in one ``BEGIN IMMEDIATE`` transaction, so a
crash leaves either all of a step or none of it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio

from agents_mcp._leases import Lease
from agents_mcp._migrations import migrate
from agents_mcp._records import (
    INTERRUPTED,
    THREAD_STATUSES,
    Approval,
    ApprovalStatus,
    StoredMessage,
    Thread,
    ThreadStatus,
    approval_row,
    decode_cursor,
    digest,
    encode_cursor,
    message_row,
    new_thread_id,
    now,
    thread_row,
)
from agents_mcp._sqlite import Database
from agents_mcp.errors import Conflict, NotFound
from agents_mcp.messages import Message

__all__ = [
    "INTERRUPTED",
    "LOCAL_OWNER",
    "THREAD_STATUSES",
    "Approval",
    "ApprovalStatus",
    "Store",
    "StoredMessage",
    "Thread",
    "ThreadStatus",
    "default_db_path",
    "digest",
    "new_thread_id",
    "now",
    "resolve_db_path",
]

T = TypeVar("T")

LOCAL_OWNER = "local"
"""The owner of threads over stdio, from the CLI, and over HTTP without tokens."""


def default_db_path() -> Path:
    """The database when neither ``--db`` nor ``[server] db`` names one."""
    import platformdirs

    return Path(platformdirs.user_data_dir("agents-mcp")) / "threads.db"


def resolve_db_path(configured: str | None, override: str | Path | None = None) -> str:
    """``--db``, else the config's ``[server] db``, else :func:`default_db_path`."""
    if override is not None:
        return str(override)
    return configured if configured is not None else str(default_db_path())


_TURN = (
    "SELECT * FROM messages WHERE thread_id=? AND idx >= COALESCE((SELECT MAX(idx)"
    " FROM messages WHERE thread_id=? AND role='user'), 0) ORDER BY idx"
)
"""The messages since the caller's last message (inclusive)."""


class Store:
    """The only owner of the SQLite connection."""

    def __init__(self, db: Database, path: str) -> None:
        self._db = db
        self.path = path
        self.lease = Lease(path)

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        """Open (creating and migrating as needed) the database at ``path``."""
        target = str(path)
        if target != ":memory:":
            target = str(await anyio.Path(target).expanduser())
            await anyio.Path(target).parent.mkdir(parents=True, exist_ok=True)
        store = cls(await Database.open(target), target)
        try:
            await store._db.transaction(migrate, thread=True)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        await self._db.close()
        self.lease.release()

    # Each Store method is one function over the connection (see ``_sqlite``): a whole
    # transaction runs at once, never split by an await.

    async def _call(self, fn: Callable[[sqlite3.Connection], T], *, thread: bool = False) -> T:
        return await self._db.call(fn, thread=thread)

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction: all of it or nothing."""
        return await self._db.transaction(fn)

    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Execute a read and fetch all its rows in one hop."""
        rows: list[sqlite3.Row] = await self._call(lambda db: db.execute(sql, params).fetchall())
        return rows

    # -- recovery ---------------------------------------------------------------------

    async def recover(self) -> list[str]:
        """Mark steps a crash left ``pending`` as errors; return the threads left running.

        Only threads whose process is gone count: another live process sharing the
        database (the server while ``agents-mcp chat`` runs) keeps its runs. Approvals are
        untouched: a pending approval is a durable question, not an interrupted step. The
        caller decides what each orphaned thread becomes.
        """
        rows = await self._query("SELECT id, runner FROM threads WHERE status='running'")
        orphans = [r["id"] for r in rows if not self.lease.alive(r["runner"])]
        for thread_id in orphans:
            await self.fail_interrupted(thread_id)
        return orphans

    async def fail_interrupted(self, thread_id: str) -> None:
        """Mark the steps of a thread whose process died as interrupted."""

        def body(db: sqlite3.Connection) -> None:
            # A call waiting on another agents-mcp's approvals stays pending: it resumes.
            db.execute(
                "UPDATE messages SET status='error', content=? WHERE thread_id=?"
                " AND status='pending' AND NOT EXISTS (SELECT 1 FROM approvals a"
                " WHERE a.thread_id = messages.thread_id"
                " AND a.origin_call_id = messages.tool_call_id)",
                (INTERRUPTED, thread_id),
            )
            db.execute("UPDATE threads SET revision=revision+1 WHERE id=?", (thread_id,))

        await self._tx(body)

    # -- threads ----------------------------------------------------------------------

    async def create_thread(
        self,
        *,
        agent: str,
        owner: str,
        first_message: str,
        personality: str | None = None,
        parent: tuple[str, str] | None = None,
    ) -> Thread:
        """Create a running thread holding the caller's first message.

        ``parent`` is ``(thread id, call id)`` for the child thread of a delegation.
        """
        thread_id = new_thread_id()
        stamp = now()
        title = " ".join(first_message.split())[:80]
        parent_id, parent_call = parent or (None, None)

        def body(db: sqlite3.Connection) -> Thread:
            db.execute(
                "INSERT INTO threads (id, agent, owner, title, status, created_at, updated_at,"
                " message_count, personality, parent_id, parent_call_id, runner)"
                " VALUES (?, ?, ?, ?, 'running', ?, ?, 0, ?, ?, ?, ?)",
                (
                    thread_id,
                    agent,
                    owner,
                    title,
                    stamp,
                    stamp,
                    personality,
                    parent_id,
                    parent_call,
                    self.lease.id,
                ),
            )
            self._append(db, thread_id, Message(role="user", content=first_message))
            return thread_row(
                db.execute("SELECT * FROM threads WHERE id=?", (thread_id,)).fetchone()
            )

        return await self._tx(body)

    async def get_thread(self, thread_id: str, owner: str) -> Thread:
        """The thread, or ``NotFound`` (also when it belongs to someone else)."""
        rows = await self._query("SELECT * FROM threads WHERE id=? AND owner=?", (thread_id, owner))
        row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"thread {thread_id!r} not found")
        return thread_row(row)

    async def thread(self, thread_id: str) -> Thread | None:
        """The thread whoever owns it (for internal use: recovery)."""
        rows = await self._query("SELECT * FROM threads WHERE id=?", (thread_id,))
        row = rows[0] if rows else None
        return None if row is None else thread_row(row)

    async def waiting_threads(self) -> list[str]:
        """Top-level threads waiting for approval (children resume through their root)."""
        rows = await self._query(
            "SELECT id FROM threads WHERE status='needs_approval' AND parent_id IS NULL"
        )
        return [r["id"] for r in rows]

    async def child_for_call(self, parent_id: str, call_id: str) -> Thread | None:
        """The child thread a delegation call of ``parent_id`` is running, if any."""
        rows = await self._query(
            "SELECT * FROM threads WHERE parent_id=? AND parent_call_id=?", (parent_id, call_id)
        )
        row = rows[0] if rows else None
        return None if row is None else thread_row(row)

    async def tree(self, root_id: str) -> list[tuple[Thread, tuple[str, ...]]]:
        """The thread and all its descendants, each with its agent chain from the root."""
        rows = await self._query(
            "WITH RECURSIVE t(id, depth) AS (SELECT ?, 0 UNION ALL"
            " SELECT threads.id, t.depth + 1 FROM threads JOIN t ON threads.parent_id = t.id)"
            " SELECT threads.* FROM threads JOIN t ON threads.id = t.id ORDER BY t.depth",
            (root_id,),
        )
        threads = [thread_row(r) for r in rows]
        chains: dict[str, tuple[str, ...]] = {}
        out: list[tuple[Thread, tuple[str, ...]]] = []
        for t in threads:  # ordered by depth: parents before their children
            chains[t.id] = (*chains.get(t.parent_id or "", ()), t.agent)
            out.append((t, chains[t.id]))
        return out

    async def root_of(self, thread_id: str) -> str:
        """The top-level thread a (child) thread belongs to."""
        rows = await self._query(
            "WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM threads WHERE id=?"
            " UNION ALL SELECT threads.id, threads.parent_id FROM threads"
            " JOIN up ON threads.id = up.parent_id)"
            " SELECT id FROM up WHERE parent_id IS NULL",
            (thread_id,),
        )
        row = rows[0] if rows else None
        return thread_id if row is None else str(row["id"])

    async def list_threads(
        self,
        *,
        owner: str,
        agent: str | None = None,
        status: ThreadStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
        include_children: bool = False,
    ) -> tuple[list[Thread], str | None]:
        """The owner's threads, newest first, and the cursor of the next page (or None)."""
        where = ["owner=?"]
        params: list[Any] = [owner]
        if not include_children:
            where.append("parent_id IS NULL")
        if agent is not None:
            where.append("agent=?")
            params.append(agent)
        if status is not None:
            where.append("status=?")
            params.append(status)
        if cursor is not None:
            updated_at, last_id = decode_cursor(cursor)
            where.append("(updated_at < ? OR (updated_at = ? AND id < ?))")
            params += [updated_at, updated_at, last_id]
        sql = (
            f"SELECT * FROM threads WHERE {' AND '.join(where)}"
            " ORDER BY updated_at DESC, id DESC LIMIT ?"
        )
        rows = await self._query(sql, [*params, limit + 1])
        threads = [thread_row(r) for r in rows]
        page = threads[:limit]
        next_cursor = encode_cursor(page[-1]) if len(threads) > limit else None
        return page, next_cursor

    async def set_status(
        self,
        thread_id: str,
        status: ThreadStatus,
        *,
        error: tuple[str, str] | None = None,
        expect: Iterable[ThreadStatus] | None = None,
    ) -> None:
        """Set the thread's status (and error). With ``expect``, only from those states."""

        def body(db: sqlite3.Connection) -> None:
            if expect is not None:
                allowed = tuple(expect)
                cur = db.execute("SELECT status FROM threads WHERE id=?", (thread_id,))
                row = cur.fetchone()
                if row is None or row["status"] not in allowed:
                    current = None if row is None else row["status"]
                    raise Conflict(f"thread {thread_id!r} is {current}")
            self._set_status(db, thread_id, status, error)

        await self._tx(body)

    def _set_status(
        self,
        db: sqlite3.Connection,
        thread_id: str,
        status: ThreadStatus,
        error: tuple[str, str] | None = None,
    ) -> None:
        db.execute(
            "UPDATE threads SET status=?, error_type=?, error_message=?, updated_at=?,"
            " runner=CASE WHEN ?='running' THEN ? ELSE runner END WHERE id=?",
            (status, *(error or (None, None)), now(), status, self.lease.id, thread_id),
        )

    # -- messages ---------------------------------------------------------------------

    async def messages(self, thread_id: str) -> list[StoredMessage]:
        def body(db: sqlite3.Connection) -> list[StoredMessage]:
            rows = db.execute("SELECT * FROM messages WHERE thread_id=? ORDER BY idx", (thread_id,))
            return [message_row(r) for r in rows]

        return await self._call(body, thread=True)  # a whole thread can be long

    async def transcript(
        self, thread_id: str, *, since: int = 0
    ) -> tuple[list[StoredMessage], int]:
        """Messages from index ``since`` on, and the thread's revision, read together."""

        def body(db: sqlite3.Connection) -> tuple[list[StoredMessage], int]:
            rows = db.execute(
                "SELECT * FROM messages WHERE thread_id=? AND idx >= ? ORDER BY idx",
                (thread_id, since),
            ).fetchall()
            found = db.execute("SELECT revision FROM threads WHERE id=?", (thread_id,)).fetchone()
            return [message_row(r) for r in rows], int(found["revision"]) if found else 0

        return await self._call(body, thread=since == 0)  # a whole thread can be long

    async def turn(self, thread_id: str) -> list[StoredMessage]:
        """The messages since the caller's last message (inclusive)."""
        rows = await self._query(_TURN, (thread_id, thread_id))
        return [message_row(r) for r in rows]

    async def thread_turn(self, thread_id: str, owner: str) -> tuple[Thread, list[StoredMessage]]:
        """The thread (``NotFound`` as in :meth:`get_thread`) and its latest turn, together."""

        def body(db: sqlite3.Connection) -> tuple[Thread, list[StoredMessage]]:
            found = db.execute(
                "SELECT * FROM threads WHERE id=? AND owner=?", (thread_id, owner)
            ).fetchone()
            if found is None:
                raise NotFound(f"thread {thread_id!r} not found")
            rows = db.execute(_TURN, (thread_id, thread_id)).fetchall()
            return thread_row(found), [message_row(r) for r in rows]

        return await self._call(body)

    async def append(
        self,
        thread_id: str,
        *messages: Message,
        approvals: Sequence[Approval] = (),
        status: ThreadStatus | None = None,
    ) -> list[int]:
        """Append messages in one transaction; returns their indexes.

        A step's other writes go in the same transaction: the ``approvals`` its calls
        wait for, and the thread's new ``status`` (a final answer completes it).
        """

        def body(db: sqlite3.Connection) -> list[int]:
            indexes = self._append(db, thread_id, *messages)
            if approvals:
                self._add_approvals(db, approvals)
            if status is not None:
                self._set_status(db, thread_id, status)
            return indexes

        return await self._tx(body)

    async def append_user(
        self,
        thread_id: str,
        content: str,
        *,
        expect: Sequence[ThreadStatus],
        personality: str | None = None,
        parent_call_id: str | None = None,
    ) -> None:
        """Append the caller's next message and mark the thread running, atomically.

        ``parent_call_id``: a delegation continuing this child thread from a new call.
        """

        def body(db: sqlite3.Connection) -> None:
            cur = db.execute("SELECT status FROM threads WHERE id=?", (thread_id,))
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"thread {thread_id!r} not found")
            if row["status"] not in expect:
                raise Conflict(f"thread {thread_id!r} is {row['status']}")
            self._append(db, thread_id, Message(role="user", content=content))
            db.execute(
                "UPDATE threads SET status='running', error_type=NULL, error_message=NULL,"
                " personality=?, runner=?, parent_call_id=COALESCE(?, parent_call_id) WHERE id=?",
                (personality, self.lease.id, parent_call_id, thread_id),
            )

        await self._tx(body)

    async def fail_pending(self, thread_id: str, content: str) -> None:
        """Mark the thread's steps still ``pending`` as errors with ``content``."""

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE messages SET status='error', content=? WHERE thread_id=? AND status='pending'",
                (content, thread_id),
            )
            db.execute("UPDATE threads SET revision=revision+1 WHERE id=?", (thread_id,))

        await self._tx(body)

    async def finish_call(
        self, thread_id: str, index: int, call_id: str, content: str, *, ok: bool
    ) -> None:
        """Record the result of the call ``call_id`` whose row ``index`` is still ``pending``."""
        status = "complete" if ok else "error"

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE messages SET content=?, status=? WHERE thread_id=? AND idx=?"
                " AND tool_call_id=? AND status='pending'",
                (content, status, thread_id, index, call_id),
            )
            db.execute("UPDATE threads SET revision=revision+1 WHERE id=?", (thread_id,))

        await self._tx(body)

    def _append(self, db: sqlite3.Connection, thread_id: str, *messages: Message) -> list[int]:
        """Insert messages at the end of the thread; one update of the thread row for all."""
        stamp = now()
        found = db.execute(
            "UPDATE threads SET message_count=message_count+?, revision=revision+?, updated_at=?"
            " WHERE id=? RETURNING message_count",
            (len(messages), len(messages), stamp, thread_id),
        ).fetchone()
        if found is None:
            raise NotFound(f"thread {thread_id!r} not found")
        first = int(found["message_count"]) - len(messages)
        db.executemany(
            "INSERT INTO messages (thread_id, idx, role, content, tool_calls, tool_call_id,"
            " reasoning, input_tokens, output_tokens, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    thread_id,
                    first + i,
                    m.role,
                    m.content,
                    _calls_json(m),
                    m.tool_call_id,
                    m.reasoning,
                    None if m.usage is None else m.usage.input_tokens,
                    None if m.usage is None else m.usage.output_tokens,
                    m.status,
                    stamp,
                )
                for i, m in enumerate(messages)
            ],
        )
        return list(range(first, first + len(messages)))

    # -- approvals --------------------------------------------------------------------

    async def add_approvals(self, approvals: Sequence[Approval]) -> None:
        await self._tx(lambda db: self._add_approvals(db, approvals))

    def _add_approvals(self, db: sqlite3.Connection, approvals: Sequence[Approval]) -> None:
        db.executemany(
            "INSERT INTO approvals (thread_id, call_id, server, tool, arguments, digest,"
            " status, reason, reason_hint, requested_at, decided_at, origin_call_id,"
            " remote_server, remote_thread_id, remote_call_id, via)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    a.thread_id,
                    a.call_id,
                    a.server,
                    a.tool,
                    a.arguments,
                    a.digest,
                    a.status,
                    a.reason,
                    a.reason_hint,
                    a.requested_at,
                    a.decided_at,
                    a.origin_call_id,
                    a.remote_server,
                    a.remote_thread_id,
                    a.remote_call_id,
                    json.dumps(list(a.via)) if a.via else None,
                )
                for a in approvals
            ],
        )

    async def approvals(self, thread_id: str) -> list[Approval]:
        rows = await self._query(
            "SELECT * FROM approvals WHERE thread_id=? ORDER BY requested_at, rowid", (thread_id,)
        )
        return [approval_row(r) for r in rows]

    async def pending_approvals(self, thread_ids: Sequence[str]) -> dict[str, list[Approval]]:
        """Undecided approvals of several threads at once (for the inbox)."""
        if not thread_ids:
            return {}
        marks = ",".join("?" * len(thread_ids))
        rows = await self._query(
            f"SELECT * FROM approvals WHERE status='pending' AND thread_id IN ({marks})"
            " ORDER BY requested_at, rowid",
            list(thread_ids),
        )
        out: dict[str, list[Approval]] = {}
        for row in rows:
            a = approval_row(row)
            out.setdefault(a.thread_id, []).append(a)
        return out

    async def decide(
        self,
        thread_id: str,
        call_id: str,
        *,
        approve: bool,
        reason: str | None,
        grant_tool: str | None = None,
    ) -> bool:
        """Record a decision. Returns False when the same decision was already recorded.

        A different decision on an already decided call is a ``Conflict``; nothing changes.
        With ``grant_tool``, that tool runs without asking for the rest of the thread.
        """

        def body(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "SELECT status FROM approvals WHERE thread_id=? AND call_id=?", (thread_id, call_id)
            )
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"call {call_id!r} not found in thread {thread_id!r}")
            wanted = "approved" if approve else "denied"
            if row["status"] == wanted:
                return False
            if row["status"] != "pending":
                raise Conflict(
                    f"call {call_id!r} was already {row['status']}; a decision cannot be changed"
                )
            db.execute(
                "UPDATE approvals SET status=?, reason=?, decided_at=? WHERE thread_id=? AND call_id=?",
                (wanted, reason, now(), thread_id, call_id),
            )
            if grant_tool is not None:
                db.execute(
                    "INSERT OR IGNORE INTO grants (thread_id, tool) VALUES (?, ?)",
                    (thread_id, grant_tool),
                )
            return True

        return await self._tx(body)

    async def decisions(self, thread_id: str) -> tuple[list[Approval], set[str]]:
        """The thread's approvals, and the tools allowed for the rest of it
        (``scope="thread"``), read in one go: the loop needs both at every settle."""

        def body(db: sqlite3.Connection) -> tuple[list[Approval], set[str]]:
            rows = db.execute(
                "SELECT * FROM approvals WHERE thread_id=? ORDER BY requested_at, rowid",
                (thread_id,),
            ).fetchall()
            tools = db.execute("SELECT tool FROM grants WHERE thread_id=?", (thread_id,))
            return [approval_row(r) for r in rows], {r["tool"] for r in tools}

        return await self._call(body)


def _calls_json(m: Message) -> str | None:
    if not m.tool_calls:
        return None
    return json.dumps(
        [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls]
    )
