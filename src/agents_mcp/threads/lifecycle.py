"""Deleting threads: on request (``delete_thread``, ``agents-mcp threads delete``) and by
age (``[server] retain_days``, a sweep in the server's background maintenance).

What is deleted, and when it is refused, is the store's (``store.lifecycle``): a finished
top-level thread with its delegations and every row of theirs, in one transaction. Here
the refusals become messages that say what to do, in the words of the interface asking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio

from agents_mcp.errors import Conflict, StoreError, internal_error
from agents_mcp.store import Deleted, StateConflict, Store, Thread

log = logging.getLogger("agents_mcp.threads.lifecycle")

RETENTION_SECONDS = 3600.0
"""How often the server looks for threads older than ``retain_days`` (and once at start)."""
BATCH = 100
"""Threads listed per read of a sweep; each is then deleted in its own transaction."""


@dataclass(frozen=True)
class Hints:
    """What to do about a thread that is not finished, as the interface asking says it;
    ``{id}`` is the thread."""

    running: str
    waiting: str


MCP_HINTS = Hints(
    running="stop it with cancel_run (or wait for it with get_thread), then delete it",
    waiting="decide its calls with approve_call or drop them with cancel_run, then delete it",
)


async def delete_thread(store: Store, *, owner: str, thread_id: str, hints: Hints) -> Deleted:
    """Delete ``owner``'s finished thread ``thread_id`` and its delegations.

    Raises ``NotFound`` (also for someone else's), and ``Conflict`` for a delegation or
    a thread that is still running or waiting for approval, saying what to do.
    """
    try:
        return await store.delete_thread(thread_id, owner)
    except StateConflict as exc:
        raise Conflict(_unfinished(thread_id, exc.thread, hints)) from None


def _unfinished(thread_id: str, found: Thread, hints: Hints) -> str:
    where = "" if found.id == thread_id else f" (its delegation {found.id!r})"
    if found.status == "needs_approval":
        state, hint = "waits for approval", hints.waiting
    else:
        state, hint = "is running", hints.running
    return (
        f"thread {thread_id!r}{where} {state}: only a finished thread can be deleted;"
        f" {hint.format(id=thread_id)}"
    )


def cutoff(days: float, now: datetime | None = None) -> str:
    """The ``updated_at`` before which a thread is older than ``days`` (same format)."""
    at = (now or datetime.now(UTC)) - timedelta(days=days)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def sweep_expired(store: Store, days: float) -> int:
    """Delete every finished top-level thread not updated for ``days``, with its
    delegations, one transaction per thread tree; returns how many trees went."""
    before = cutoff(days)
    deleted = 0
    while True:
        roots = await store.expired_roots(before, BATCH)
        progress = 0
        for root_id in roots:
            if await store.delete_expired(root_id, before) is not None:
                progress += 1
        deleted += progress
        if len(roots) < BATCH or not progress:  # none left, or only trees still open
            return deleted


async def retain(store: Store, days: float, *, every: float = RETENTION_SECONDS) -> None:
    """Forever: :func:`sweep_expired` now, then every ``every`` seconds (in the background)."""
    while True:
        try:
            count = await sweep_expired(store, days)
            if count:
                log.info("deleted %d finished thread(s) not updated for %g days", count, days)
        except StoreError as exc:
            log.warning("the retention sweep failed: %s", exc)
        except Exception as exc:  # this loop must outlive any one bad thread
            internal_error(exc, "the retention sweep")
        await anyio.sleep(every)
