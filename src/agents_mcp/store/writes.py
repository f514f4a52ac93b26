"""Statements the store's operations share: reading a thread, appending messages,
counting changes, and writing a settlement (see ``sql`` for the operations themselves)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents_mcp.errors import LostClaim, NotFound, StopRequested
from agents_mcp.messages import Message
from agents_mcp.store.database import Tx
from agents_mcp.store.questions import close_with_run
from agents_mcp.store.reads import APPROVALS, THREAD, TREE, TURN
from agents_mcp.store.records import (
    MESSAGE_COLUMNS,
    Approval,
    Claim,
    StoredMessage,
    Thread,
    approval_row,
    marks,
    message_row,
    message_values,
    now,
    thread_row,
)
from agents_mcp.store.settle import Plan as Settlement


async def read_thread(tx: Tx, thread_id: str) -> Thread:
    row = await tx.fetchrow(THREAD, (thread_id,))
    if row is None:
        raise NotFound(f"thread {thread_id!r} not found")
    return thread_row(row)


async def touch(tx: Tx, thread_id: str, claim: Claim) -> None:
    """Count a change to the thread's messages, if ``claim`` still holds it."""
    changed = await tx.execute(
        "UPDATE threads SET revision=revision+1 WHERE id=? AND claim=?",
        (thread_id, claim.token),
    )
    if not changed:
        raise LostClaim(f"thread {thread_id!r} is no longer held by this run")


async def append(
    tx: Tx,
    thread_id: str,
    messages: Sequence[Message],
    claim: Claim | None = None,
    *,
    final: bool = False,
) -> list[int]:
    """Insert messages at the end of the thread; one update of the thread row for all.

    With ``claim``, only while that run holds the thread and (unless ``final``) no
    stop was requested; ``final`` (the run's answer) also completes the thread.
    ``updated_at`` moves when a turn starts or ends, not at each step of a run: every
    list index holds it, so each move rewrites four index entries (about 25 µs a step
    on SQLite), and a run's steps are not what threads are listed by.
    """
    stamp = now()
    n = len(messages)
    sets = "message_count=message_count+?, revision=revision+?"
    params: tuple[Any, ...] = (n, n)
    if claim is None or final:
        sets += ", updated_at=?"
        params += (stamp,)
    if final:
        sets += (
            ", status='completed', error_type=NULL, error_message=NULL, claim=NULL,"
            " runner=NULL, stop_requested=0"
        )
    sql = f"UPDATE threads SET {sets} WHERE id=?"
    params += (thread_id,)
    if claim is not None:
        sql += " AND claim=?" + ("" if final else " AND stop_requested=0")
        params += (claim.token,)
    found = await tx.fetchrow(sql + " RETURNING message_count", params)
    if found is None:
        if claim is None:
            raise NotFound(f"thread {thread_id!r} not found")
        current = await read_thread(tx, thread_id)
        if current.claim == claim.token:
            raise StopRequested(f"thread {thread_id!r} was asked to stop")
        raise LostClaim(f"thread {thread_id!r} is no longer held by this run")
    first = int(found["message_count"]) - n
    await tx.executemany(
        f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ({marks(range(14))})",
        [message_values(thread_id, first + i, m, stamp) for i, m in enumerate(messages)],
    )
    return list(range(first, first + n))


async def settlement_reads(
    tx: Tx, root_id: str
) -> tuple[list[Thread], dict[str, list[StoredMessage]], dict[str, list[Approval]]]:
    """What settling a tree reads: its threads, and the open ones' latest turns and approvals."""
    tree = [thread_row(r) for r in await tx.fetch(TREE, (root_id,))]
    open_threads = [t for t in tree if t.status in ("running", "needs_approval")]
    tails = {
        t.id: [message_row(r) for r in await tx.fetch(TURN, (t.id, t.id))] for t in open_threads
    }
    every = {
        t.id: [approval_row(r) for r in await tx.fetch(APPROVALS, (t.id,))] for t in open_threads
    }
    return tree, tails, every


async def write_settlement(tx: Tx, plan: Settlement, resume: Claim | None) -> None:
    """Write what :func:`~agents_mcp.store.settle.plan_settlement` decided, thread by thread."""
    stamp = now()
    for t_id, writes in plan.threads.items():
        if writes.results:
            await append(tx, t_id, writes.results)
        for index, content in writes.finished:
            await tx.execute(
                "UPDATE messages SET status='error', content=? WHERE thread_id=? AND idx=?",
                (content, t_id, index),
            )
        if writes.cancelled:
            await tx.execute(
                f"UPDATE approvals SET status='cancelled', reason=?, decided_at=?"
                f" WHERE thread_id=? AND call_id IN ({marks(writes.cancelled)})",
                ("run cancelled", stamp, t_id, *writes.cancelled),
            )
        await append(tx, t_id, (writes.event,))
        held = resume if writes.status == "running" else None
        # revision+1: rows changed in place, so kept transcripts read it all again
        await tx.execute(
            "UPDATE threads SET status=?, error_type=?, error_message=?, claim=?,"
            " runner=?, stop_requested=0, updated_at=?, revision=revision+1 WHERE id=?",
            (
                writes.status,
                *(writes.error or (None, None)),
                held.token if held else None,
                held.runner if held else None,
                stamp,
                t_id,
            ),
        )
    cancelled = [t for t, w in plan.threads.items() if w.status == "cancelled"]
    await close_with_run(tx, list(plan.threads), cancelled=cancelled)
