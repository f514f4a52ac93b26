"""The end of a thread's life: deleting a finished thread tree, by request or by age.

A thread is deleted with its whole tree (the top-level thread and every delegation
under it), each row that belongs to one of them (messages, approvals, grants, questions,
a turn's limits, a trace context) and nothing else, in one transaction: a reader sees the
tree whole or not at all. A deleted thread's usage leaves the usage reports with it; daily
budgets keep what it spent. Only a finished tree is deleted (every thread in it
``completed``, ``failed``, ``cancelled`` or ``budget_exceeded``): a running one has a run
writing to it, and a waiting one has calls a
person may still decide. A delegation is never deleted alone: its parent's transcript
holds the call that made it, so it goes with its top-level thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents_mcp.errors import Conflict, NotFound
from agents_mcp.store import states
from agents_mcp.store.database import Database, Tx
from agents_mcp.store.reads import THREAD, TREE
from agents_mcp.store.records import Thread, marks, thread_row
from agents_mcp.store.states import StateConflict

PER_THREAD_TABLES = (
    "messages",
    "approvals",
    "grants",
    "questions",
    "turn_budgets",
    "thread_traces",
)
"""Every table whose rows belong to one thread (by ``thread_id``): deleted with it."""


@dataclass(frozen=True)
class Deleted:
    """What deleting a thread removed."""

    thread: Thread
    """The top-level thread, as it was."""
    threads: tuple[str, ...]
    """Every thread deleted: the top-level one first, then its delegations."""


class Lifecycle:
    """Deleting threads; ``SQLStore`` mixes it in."""

    db: Database

    async def _changed(self, tx: Tx, thread_id: str) -> None: ...

    async def delete_thread(self, thread_id: str, owner: str) -> Deleted:
        """Delete ``owner``'s finished top-level thread and its delegations, in one write.

        Raises ``NotFound`` (also for someone else's thread), ``Conflict`` for a
        delegation (deleted with its top-level thread only), and ``StateConflict`` with
        the thread of the tree that is still running or waiting for approval.
        """

        async def body(tx: Tx) -> Deleted:
            thread = await self._locked(tx, thread_id)
            if thread is None or thread.owner != owner:
                raise NotFound(f"thread {thread_id!r} not found")
            if thread.parent_id is not None:
                raise Conflict(
                    f"thread {thread_id!r} is a delegation (agent {thread.agent!r}) inside"
                    f" thread {await _root_id(tx, thread)!r}: it is deleted with that"
                    " top-level thread, not on its own"
                )
            return await self._delete_tree(tx, thread)

        return await self.db.transaction("delete_thread", body)

    async def expired_roots(self, before: str, limit: int) -> list[str]:
        """Up to ``limit`` finished top-level threads last updated before ``before`` (a
        timestamp as ``records.now`` writes them), oldest first."""
        rows = await self.db.query(
            "expired_roots",
            "SELECT id FROM threads WHERE parent_id IS NULL"
            f" AND status IN ({marks(states.FINISHED)}) AND updated_at < ?"
            " ORDER BY updated_at, id LIMIT ?",
            (*states.FINISHED, before, limit),
        )
        return [str(r["id"]) for r in rows]

    async def delete_expired(self, root_id: str, before: str) -> Deleted | None:
        """Delete the finished tree ``root_id`` if it still was last updated before
        ``before`` (checked again in the same write: a new turn may have started since
        it was listed); None when it was not deleted."""

        async def body(tx: Tx) -> Deleted | None:
            root = await self._locked(tx, root_id)
            if root is None or root.parent_id is not None or root.updated_at >= before:
                return None
            try:
                return await self._delete_tree(tx, root)
            except StateConflict:
                return None

        return await self.db.transaction("delete_expired", body)

    async def _locked(self, tx: Tx, thread_id: str) -> Thread | None:
        """The thread, locked for the rest of the transaction (PostgreSQL)."""
        row = await tx.fetchrow(THREAD + self.db.dialect.lock, (thread_id,))
        return None if row is None else thread_row(row)

    async def _delete_tree(self, tx: Tx, root: Thread) -> Deleted:
        """Delete the (locked) top-level thread ``root`` and its delegations, if every
        thread of the tree is finished; else ``StateConflict`` with the first that is not."""
        tree = [thread_row(r) for r in await tx.fetch(TREE, (root.id,))]
        open_ = [t for t in tree if t.status not in states.FINISHED]
        if open_:
            raise StateConflict(open_[0])
        ids = [t.id for t in tree]
        for table in PER_THREAD_TABLES:
            await tx.execute(f"DELETE FROM {table} WHERE thread_id IN ({marks(ids)})", ids)
        # One statement for the whole tree: the delegations' parent_id points into it.
        await tx.execute(f"DELETE FROM threads WHERE id IN ({marks(ids)})", ids)
        await self._changed(tx, root.id)
        return Deleted(root, tuple(ids))


async def _root_id(tx: Tx, thread: Thread) -> str:
    """The top-level thread above ``thread``."""
    while thread.parent_id is not None:
        row = await tx.fetchrow(THREAD, (thread.parent_id,))
        if row is None:
            break
        thread = thread_row(row)
    return thread.id
