"""The store's reads, written once for SQLite and PostgreSQL (see ``sql`` for its writes).

Each method is one consistent read of the :class:`Database`, named after the operation so
tests can stop it at its points: one statement (``Database.query``) where that says it
all, else a read over one snapshot (``Database.read``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from agents_mcp.errors import NotFound
from agents_mcp.store.database import Database, Tx
from agents_mcp.store.records import (
    Approval,
    StoredMessage,
    Thread,
    ThreadStatus,
    approval_row,
    decode_cursor,
    encode_cursor,
    marks,
    message_row,
    thread_row,
)

THREAD = "SELECT * FROM threads WHERE id=?"


def list_threads_query(
    *,
    owner: str,
    agent: str | None,
    status: ThreadStatus | None,
    after: tuple[str, str] | None,
    include_children: bool,
) -> tuple[str, list[Any]]:
    """A page of the owner's threads, newest first: the SQL (its last parameter, the page
    size, is left to the caller) and the parameters before it. Every combination of
    filters walks an index in order (migrations 9 and 11), so a page costs the same with
    100 000 threads as with 100, however few match."""
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
    if after is not None:
        updated_at, last_id = after
        where.append("(updated_at < ? OR (updated_at = ? AND id < ?))")
        params += [updated_at, updated_at, last_id]
    sql = (
        f"SELECT * FROM threads WHERE {' AND '.join(where)}"
        " ORDER BY updated_at DESC, id DESC LIMIT ?"
    )
    return sql, params


TURN = (
    "SELECT * FROM messages WHERE thread_id=? AND idx >= COALESCE((SELECT MAX(idx)"
    " FROM messages WHERE thread_id=? AND role='user'), 0) ORDER BY idx"
)
"""The messages since the caller's last message (inclusive)."""
TREE_IDS = (
    "WITH RECURSIVE t(id, depth) AS (SELECT CAST(? AS TEXT), 0 UNION ALL"
    " SELECT threads.id, t.depth + 1 FROM threads JOIN t ON threads.parent_id = t.id)"
)
TREE = (
    TREE_IDS + " SELECT threads.* FROM threads JOIN t ON threads.id = t.id"
    " ORDER BY t.depth, threads.created_at, threads.id"
)
PENDING_IN_TREE = (
    TREE_IDS + " SELECT approvals.* FROM approvals JOIN t ON approvals.thread_id = t.id"
    " WHERE approvals.status = 'pending' ORDER BY approvals.requested_at, approvals.seq"
)
APPROVALS = "SELECT * FROM approvals WHERE thread_id=? ORDER BY requested_at, seq"


class Reads:
    """What the store reads; ``SQLStore`` adds the writes."""

    db: Database

    async def get_thread(self, thread_id: str, owner: str) -> Thread:
        """The thread, or ``NotFound`` (also when it belongs to someone else)."""
        found = await self.thread(thread_id)
        if found is None or found.owner != owner:
            raise NotFound(f"thread {thread_id!r} not found")
        return found

    async def thread(self, thread_id: str) -> Thread | None:
        """The thread whoever owns it (for internal use)."""

        rows = await self.db.query("thread", THREAD, (thread_id,))
        return thread_row(rows[0]) if rows else None

    async def thread_turn(self, thread_id: str, owner: str) -> tuple[Thread, list[StoredMessage]]:
        """The thread (``NotFound`` as in :meth:`get_thread`) and its latest turn."""

        async def body(tx: Tx) -> tuple[Thread, list[StoredMessage]]:
            found = await tx.fetchrow(THREAD, (thread_id,))
            if found is None or found["owner"] != owner:
                raise NotFound(f"thread {thread_id!r} not found")
            rows = await tx.fetch(TURN, (thread_id, thread_id))
            return thread_row(found), [message_row(r) for r in rows]

        return await self.db.read("thread_turn", body)

    async def turn(self, thread_id: str) -> list[StoredMessage]:
        return [message_row(r) for r in await self.db.query("turn", TURN, (thread_id,) * 2)]

    async def messages(self, thread_id: str) -> list[StoredMessage]:
        return (await self.transcript(thread_id))[0]

    async def transcript(
        self, thread_id: str, *, since: int = 0
    ) -> tuple[list[StoredMessage], int]:
        """Messages from index ``since`` on, and the thread's revision, read together."""

        async def body(tx: Tx) -> tuple[list[StoredMessage], int]:
            rows = await tx.fetch(
                "SELECT * FROM messages WHERE thread_id=? AND idx >= ? ORDER BY idx",
                (thread_id, since),
            )
            found = await tx.fetchrow("SELECT revision FROM threads WHERE id=?", (thread_id,))
            return [message_row(r) for r in rows], int(found["revision"]) if found else 0

        return await self.db.read("transcript", body)

    async def tree(self, root_id: str) -> list[tuple[Thread, tuple[str, ...]]]:
        """The thread and all its descendants, each with its agent chain from the root."""

        chains: dict[str, tuple[str, ...]] = {}
        out: list[tuple[Thread, tuple[str, ...]]] = []
        for row in await self.db.query("tree", TREE, (root_id,)):  # parents before children
            t = thread_row(row)
            chains[t.id] = (*chains.get(t.parent_id or "", ()), t.agent)
            out.append((t, chains[t.id]))
        return out

    async def root_of(self, thread_id: str) -> str:
        """The top-level thread a (child) thread belongs to."""

        rows = await self.db.query(
            "root_of",
            "WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM threads"
            " WHERE id=? UNION ALL SELECT threads.id, threads.parent_id FROM threads"
            " JOIN up ON threads.id = up.parent_id) SELECT id FROM up WHERE parent_id IS NULL",
            (thread_id,),
        )
        return str(rows[0]["id"]) if rows else thread_id

    async def child_for_call(self, parent_id: str, call_id: str) -> Thread | None:
        """The child thread a delegation call of ``parent_id`` is running, if any."""

        rows = await self.db.query(
            "child_for_call",
            "SELECT * FROM threads WHERE parent_id=? AND parent_call_id=?",
            (parent_id, call_id),
        )
        return thread_row(rows[0]) if rows else None

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
        sql, params = list_threads_query(
            owner=owner,
            agent=agent,
            status=status,
            after=None if cursor is None else decode_cursor(cursor),
            include_children=include_children,
        )

        rows = await self.db.query("list_threads", sql, [*params, limit + 1])
        threads = [thread_row(r) for r in rows]
        page = threads[:limit]
        return page, encode_cursor(page[-1]) if len(threads) > limit else None

    async def approvals(self, thread_id: str) -> list[Approval]:
        return [approval_row(r) for r in await self.db.query("approvals", APPROVALS, (thread_id,))]

    async def pending_in_tree(self, root_id: str) -> list[Approval]:
        """Undecided calls of the thread and of its delegations."""

        rows = await self.db.query("pending_in_tree", PENDING_IN_TREE, (root_id,))
        return [approval_row(r) for r in rows]

    async def pending_in_trees(self, root_ids: Sequence[str]) -> dict[str, list[Approval]]:
        """Undecided calls of several threads and their delegations, in one read (a page
        of ``list_threads``), each with ``via``: the agents from the thread's down."""
        if not root_ids:
            return {}
        sql = (
            "WITH RECURSIVE t(root, id, chain) AS ("
            f"SELECT id, id, agent FROM threads WHERE id IN ({marks(root_ids)})"
            " UNION ALL SELECT t.root, c.id, t.chain || ',' || c.agent"
            " FROM threads c JOIN t ON c.parent_id = t.id)"
            " SELECT t.root AS root, t.chain AS chain, approvals.* FROM approvals"
            " JOIN t ON approvals.thread_id = t.id WHERE approvals.status = 'pending'"
            " ORDER BY approvals.requested_at, approvals.seq"
        )

        out: dict[str, list[Approval]] = {}
        for row in await self.db.query("pending_in_trees", sql, list(root_ids)):
            a = approval_row(row)
            via = (*row["chain"].split(","), *a.via)
            out.setdefault(row["root"], []).append(replace(a, via=via))
        return out

    async def pending_approvals(self, thread_ids: Sequence[str]) -> dict[str, list[Approval]]:
        """Undecided approvals of several threads at once (for the inbox)."""
        if not thread_ids:
            return {}

        rows = await self.db.query(
            "pending_approvals",
            f"SELECT * FROM approvals WHERE status='pending' AND thread_id IN"
            f" ({marks(thread_ids)}) ORDER BY requested_at, seq",
            list(thread_ids),
        )
        out: dict[str, list[Approval]] = {}
        for a in map(approval_row, rows):
            out.setdefault(a.thread_id, []).append(a)
        return out

    async def decisions(self, thread_id: str) -> tuple[list[Approval], set[str]]:
        """The thread's approvals and the tools allowed for the rest of it, together."""

        async def body(tx: Tx) -> tuple[list[Approval], set[str]]:
            rows = await tx.fetch(APPROVALS, (thread_id,))
            tools = await tx.fetch("SELECT tool FROM grants WHERE thread_id=?", (thread_id,))
            return [approval_row(r) for r in rows], {r["tool"] for r in tools}

        return await self.db.read("decisions", body)

    @property
    def runner(self) -> str:
        raise NotImplementedError  # SQLStore's: this process's lease

    async def stop_requests(self) -> list[Thread]:
        """Threads this process runs that ``cancel_run`` (from anywhere) asked to stop."""

        rows = await self.db.query(
            "stop_requests",
            "SELECT * FROM threads WHERE status='running' AND runner=? AND stop_requested=1"
            " AND parent_id IS NULL",
            (self.runner,),
        )
        return [thread_row(r) for r in rows]

    async def running_roots(self) -> list[Thread]:
        """Top-level threads whose status is ``running`` (their runs may be gone)."""

        rows = await self.db.query(
            "running_roots", "SELECT * FROM threads WHERE status='running' AND parent_id IS NULL"
        )
        return [thread_row(r) for r in rows]

    async def paused_roots(self) -> list[str]:
        """Top-level threads waiting for approval with none of their own calls undecided:
        candidates to resume (a run ended abnormally after every decision was made). A
        thread whose delegations still have undecided calls may be among them; the
        resume itself checks the whole tree."""

        rows = await self.db.query(
            "paused_roots",
            "SELECT id FROM threads t WHERE status='needs_approval' AND parent_id IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.thread_id = t.id"
            " AND a.status = 'pending')",
        )
        return [r["id"] for r in rows]
