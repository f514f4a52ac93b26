"""The store's operations, written once for SQLite and PostgreSQL.

Each method is one transaction (or one consistent read) of the :class:`Database` it runs
on, named after the operation so tests can stop it at its points. Transitions of a
thread's status follow :mod:`agents_mcp.store.states`: one conditional write each, so
that of two racing requests one wins and the other is refused with the thread's state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents_mcp.errors import Conflict, LostClaim, NotFound, StopRequested
from agents_mcp.messages import Message
from agents_mcp.store import states
from agents_mcp.store.database import Database, Tx
from agents_mcp.store.leases import Leases
from agents_mcp.store.lifecycle import Lifecycle
from agents_mcp.store.migrations import migrate
from agents_mcp.store.questions import QuestionStore, close_with_failure
from agents_mcp.store.reads import (
    PENDING_IN_TREE,
    THREAD,
    TREE_IDS,
    Reads,
)
from agents_mcp.store.records import (
    APPROVAL_COLUMNS,
    MESSAGE_COLUMNS,
    MESSAGE_MARKS,
    Approval,
    Claim,
    Decision,
    Settled,
    Thread,
    approval_row,
    approval_values,
    chain_text,
    marks,
    message_values,
    new_thread_id,
    now,
    schema_text,
    thread_row,
)
from agents_mcp.store.settle import plan_settlement
from agents_mcp.store.signins import SignInWrites
from agents_mcp.store.states import StateConflict
from agents_mcp.store.usage import UsageStore
from agents_mcp.store.writes import append, read_thread, settlement_reads, touch, write_settlement


class SQLStore(Reads, Lifecycle, QuestionStore, SignInWrites, UsageStore):
    """Threads, their messages, approvals, sign-ins and questions, in one database (what
    runs spend: ``usage``)."""

    def __init__(self, db: Database, leases: Leases) -> None:
        self.db = db
        self.leases = leases
        self.points = db.points
        self._notify = db.dialect.name == "postgresql"

    @property
    def runner(self) -> str:
        """This process, as recorded on the threads it runs."""
        return self.leases.id

    @property
    def location(self) -> str:
        return self.db.location

    async def migrate(self) -> list[int]:
        return await self.db.transaction("migrate", lambda tx: migrate(tx, self.db.dialect))

    async def alive(self, runner: str | None) -> bool:
        return await self.leases.alive(runner)

    async def wait_changed(self, thread_id: str, seconds: float) -> None:
        """Return once the thread may have changed in another process, or after ``seconds``."""
        await self.db.wait_changed(thread_id, seconds)

    async def close(self) -> None:
        try:
            await self.leases.close()
        finally:
            await self.db.close()

    # -- transitions into running (chat, approve, recovery) -------------------------------

    async def create_thread(
        self,
        *,
        agent: str,
        owner: str,
        first_message: str,
        claim: Claim,
        personality: str | None = None,
        parent: tuple[str, str] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        caller_chain: tuple[tuple[str, str], ...] = (),
    ) -> Thread:
        """A new thread holding the caller's first message, running under ``claim``.

        ``parent`` is ``(thread id, call id)`` for the child thread of a delegation;
        ``output_schema``: the JSON Schema the turn's final answer must meet;
        ``caller_chain``: the delegation chain of the agent asking (``Thread.caller_chain``).
        """
        thread_id = new_thread_id()
        stamp = now()
        title = " ".join(first_message.split())[:80]
        parent_id, parent_call = parent or (None, None)

        async def body(tx: Tx) -> Thread:
            rows = await tx.fetch(
                "INSERT INTO threads (id, agent, owner, title, status, created_at, updated_at,"
                " message_count, personality, parent_id, parent_call_id, runner, claim,"
                " output_schema, caller_chain, revision)"
                " VALUES (?, ?, ?, ?, 'running', ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING *",
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
                    claim.runner,
                    claim.token,
                    schema_text(output_schema),
                    chain_text(caller_chain),
                ),
            )
            first = Message(role="user", content=first_message)  # counted in the row above
            await tx.execute(
                f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ({MESSAGE_MARKS})",
                message_values(thread_id, 0, first, stamp),
            )
            await self._changed(tx, thread_id)
            return thread_row(rows[0])  # the row inserted

        return await self.db.transaction("create_thread", body)

    async def start_turn(
        self,
        thread_id: str,
        message: str,
        *,
        claim: Claim,
        personality: str | None = None,
        parent_call_id: str | None = None,
        output_schema: Mapping[str, Any] | None = None,
        caller_chain: tuple[tuple[str, str], ...] = (),
    ) -> Thread:
        """The caller's next message, and the thread running under ``claim``: one write.

        Refused with :class:`StateConflict` unless the thread's last run has finished.
        ``parent_call_id``: a delegation continuing this child thread from a new call;
        ``output_schema``: the JSON Schema this turn's final answer must meet;
        ``caller_chain``: the delegation chain of the agent asking.
        """

        async def body(tx: Tx) -> Thread:
            changed = await tx.execute(
                "UPDATE threads SET status='running', error_type=NULL, error_message=NULL,"
                " personality=?, runner=?, claim=?, stop_requested=0,"
                " parent_call_id=COALESCE(?, parent_call_id), output_schema=?, caller_chain=?"
                f" WHERE id=? AND status IN ({marks(states.FINISHED)})",
                (
                    personality,
                    claim.runner,
                    claim.token,
                    parent_call_id,
                    schema_text(output_schema),
                    chain_text(caller_chain),
                    thread_id,
                    *states.FINISHED,
                ),
            )
            if not changed:
                raise StateConflict(await read_thread(tx, thread_id))
            await append(tx, thread_id, (Message(role="user", content=message),))
            await self._changed(tx, thread_id)
            return await read_thread(tx, thread_id)

        return await self.db.transaction("start_turn", body)

    async def decide(
        self,
        root_id: str,
        thread_id: str,
        call_id: str,
        *,
        approve: bool,
        reason: str | None,
        claim: Claim,
        grant_tool: str | None = None,
    ) -> Decision:
        """Record a decision on a call of ``thread_id`` (``root_id`` or one of its
        delegations). When it is the tree's last undecided call and the tree waits, the
        top-level thread is claimed by ``claim`` in the same write (``resumed``).

        A different decision on a decided call is a ``Conflict``; nothing changes. With
        ``grant_tool``, that tool runs without asking for the rest of the thread.
        """
        wanted = "approved" if approve else "denied"

        async def body(tx: Tx) -> Decision:
            root = await self._lock(tx, root_id)
            row = await tx.fetchrow(
                "SELECT * FROM approvals WHERE thread_id=? AND call_id=?", (thread_id, call_id)
            )
            if row is None:
                raise NotFound(f"call {call_id!r} not found in thread {thread_id!r}")
            approval = approval_row(row)
            if approval.status == "cancelled":
                raise Conflict(
                    f"call {call_id!r} was cancelled by cancel_run, so it will never run;"
                    " send the thread a new message to continue"
                )
            outcome: Any = "unchanged"
            if approval.status == "pending":
                await tx.execute(
                    "UPDATE approvals SET status=?, reason=?, decided_at=?"
                    " WHERE thread_id=? AND call_id=?",
                    (wanted, reason, now(), thread_id, call_id),
                )
                if grant_tool is not None:
                    await tx.execute(
                        "INSERT INTO grants (thread_id, tool) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        (thread_id, grant_tool),
                    )
                outcome = "recorded"
            elif approval.status != wanted:
                raise Conflict(
                    f"call {call_id!r} was already {approval.status}; a decision cannot be changed"
                )
            if root.status == "needs_approval" and await self._claim_paused(tx, root_id, claim):
                outcome = "resumed"
            await self._changed(tx, root_id)
            return Decision(outcome, approval)

        return await self.db.transaction("decide", body)

    async def resume_paused(self, root_id: str, claim: Claim) -> bool:
        """Claim a waiting thread whose calls are all decided (after a crash); False when
        it is not waiting or still has undecided calls."""

        async def body(tx: Tx) -> bool:
            root = await self._lock(tx, root_id)
            return root.status == "needs_approval" and await self._claim_paused(tx, root_id, claim)

        return await self.db.transaction("resume_paused", body)

    async def resume_child(self, thread_id: str, claim: Claim) -> None:
        """A run continues its own delegation that waited for approvals (now decided)."""

        async def body(tx: Tx) -> None:
            changed = await tx.execute(
                "UPDATE threads SET status='running', claim=?, runner=?, updated_at=?"
                " WHERE id=? AND status='needs_approval'",
                (claim.token, claim.runner, now(), thread_id),
            )
            if not changed:
                raise StateConflict(await read_thread(tx, thread_id))

        await self.db.transaction("resume_child", body)

    # -- a run's own writes (each checks the run's claim) --------------------------------

    async def append(
        self,
        thread_id: str,
        claim: Claim,
        *messages: Message,
        approvals: Sequence[Approval] = (),
        complete: bool = False,
    ) -> list[int]:
        """A step's writes in one transaction; returns the messages' indexes.

        The model's answer goes in with the ``started`` rows of the calls about to run and
        the ``approvals`` the others wait for; with ``complete`` (a final answer) the run
        ends and the thread is ``completed``.
        """

        async def body(tx: Tx) -> list[int]:
            indexes = await append(tx, thread_id, messages, claim, final=complete)
            if approvals:
                await tx.executemany(
                    f"INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ({marks(range(18))})",
                    [approval_values(a) for a in approvals],
                )
            if complete:
                await self._changed(tx, thread_id)
            return indexes

        return await self.db.transaction("append", body)

    async def finish_call(
        self, thread_id: str, claim: Claim, index: int, call_id: str, content: str, *, ok: bool
    ) -> None:
        """Record the result of the call whose row ``index`` is ``started`` (or ``waiting``).

        Recorded even when a stop was requested: the call has run.
        """

        async def body(tx: Tx) -> None:
            await touch(tx, thread_id, claim)
            await tx.execute(
                "UPDATE messages SET content=?, status=? WHERE thread_id=? AND idx=?"
                " AND tool_call_id=? AND status IN ('started', 'waiting')",
                (content, "complete" if ok else "error", thread_id, index, call_id),
            )

        await self.db.transaction("finish_call", body)

    async def hold_call(
        self, thread_id: str, claim: Claim, index: int, call_id: str, asked: Sequence[Approval]
    ) -> None:
        """The call reached another agents-mcp that asks for approvals: its row waits, and
        the approvals it asks for (those not known yet) are ours to decide."""

        async def body(tx: Tx) -> None:
            await touch(tx, thread_id, claim)
            await tx.execute(
                "UPDATE messages SET status='waiting' WHERE thread_id=? AND idx=?"
                " AND tool_call_id=? AND status IN ('started', 'waiting')",
                (thread_id, index, call_id),
            )
            known = {
                r["call_id"]
                for r in await tx.fetch(
                    "SELECT call_id FROM approvals WHERE thread_id=? AND origin_call_id=?",
                    (thread_id, call_id),
                )
            }
            new = [approval_values(a) for a in asked if a.call_id not in known]
            if new:
                await tx.executemany(
                    f"INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ({marks(range(18))})",
                    new,
                )

        await self.db.transaction("hold_call", body)

    async def pause(self, thread_id: str, claim: Claim) -> bool:
        """The run waits for decisions: ``needs_approval`` and the claim dropped, if any
        call of the thread or its delegations is undecided. False (still running, the
        run goes on) when every call was decided meanwhile."""

        async def body(tx: Tx) -> bool:
            found = await self._lock(tx, thread_id)
            if found.claim != claim.token or found.status != "running":
                raise LostClaim(f"thread {thread_id!r} is no longer held by this run")
            if found.stop_requested:
                raise StopRequested(f"thread {thread_id!r} was asked to stop")
            if not await tx.fetch(PENDING_IN_TREE, (thread_id,)):
                return False
            await tx.execute(
                "UPDATE threads SET status='needs_approval', claim=NULL, runner=NULL,"
                " updated_at=? WHERE id=?",
                (now(), thread_id),
            )
            await self._changed(tx, thread_id)
            return True

        return await self.db.transaction("pause", body)

    async def fail(self, thread_id: str, claim: Claim, error: tuple[str, str]) -> None:
        """The run cannot go on: calls still ``started`` and undecided approvals end with
        it, and the thread is ``failed`` (or ``budget_exceeded``) with ``error`` (kind, message)."""

        async def body(tx: Tx) -> None:
            changed = await tx.execute(
                "UPDATE threads SET status=?, error_type=?, error_message=?, claim=NULL,"
                " runner=NULL, stop_requested=0, updated_at=?, revision=revision+1"
                " WHERE id=? AND claim=? AND status='running'",
                (states.ended(error[0]), *error, now(), thread_id, claim.token),
            )
            if not changed:
                raise LostClaim(f"thread {thread_id!r} is no longer held by this run")
            await tx.execute(
                "UPDATE messages SET status='error', content=? WHERE thread_id=?"
                " AND status IN ('started', 'waiting')",
                (f"Error: the run failed: {error[1]}", thread_id),
            )
            await tx.execute(
                "UPDATE approvals SET status='cancelled', reason=?, decided_at=?"
                " WHERE thread_id=? AND status='pending'",
                ("the run failed", now(), thread_id),
            )
            await close_with_failure(tx, thread_id)
            await self._changed(tx, thread_id)

        await self.db.transaction("fail", body)

    # -- stopping and settling -------------------------------------------------------------

    async def request_stop(self, root_id: str, claim: str) -> bool:
        """Ask the run holding ``claim`` to stop (it may run in another process): the whole
        tree, so a delegation's next step is refused as well as its parent's.

        False when the thread is no longer held by that run.
        """

        async def body(tx: Tx) -> bool:
            changed = await tx.execute(
                "UPDATE threads SET stop_requested=1 WHERE id=? AND status='running' AND claim=?",
                (root_id, claim),
            )
            if changed:
                await tx.execute(
                    TREE_IDS + " UPDATE threads SET stop_requested=1"
                    " WHERE id IN (SELECT id FROM t) AND status='running' AND claim=?",
                    (root_id, claim),
                )
                await self._changed(tx, root_id)
            return bool(changed)

        return await self.db.transaction("request_stop", body)

    async def settle(
        self,
        root_id: str,
        *,
        claim: str | None,
        cancel: bool,
        resume: Claim | None = None,
        error: tuple[str, str] | None = None,
    ) -> Settled | None:
        """End a thread tree's run that cannot end itself, in one write.

        The tree must be ``running`` under ``claim`` (a run that stopped, or whose process
        is gone), or, with ``cancel``, waiting for approval. ``cancel`` (or a stop that
        was requested): every unfinished call is cancelled and every undecided approval
        too, and the threads are ``cancelled``. Otherwise (interrupted): started calls
        "may have run", calls that never started "did not run", except approved ones
        (and delegations that can go on), which stay for the run to resume under
        ``resume``. Returns None when the tree was not in that state (somebody else
        settled it, or a new run holds it).
        """

        async def body(tx: Tx) -> Settled | None:
            root = await self._lock(tx, root_id)
            if root.status == "running" and root.claim != claim:
                return None
            if root.status not in ("running", "needs_approval") or (
                root.status == "needs_approval" and not cancel
            ):
                return None
            tree, tails, every = await settlement_reads(tx, root_id)
            plan = plan_settlement(
                root,
                tree,
                tails,
                every,
                cancel=cancel or root.stop_requested,
                resume=resume,
                error=error,
            )
            await write_settlement(tx, plan, resume)
            await self._changed(tx, root_id)
            return Settled(plan.threads[root_id].status, tuple(plan.remote))

        return await self.db.transaction("settle", body)

    # -- internals ---------------------------------------------------------------------

    async def _lock(self, tx: Tx, thread_id: str) -> Thread:
        """Read the thread, locking it for the rest of the transaction (PostgreSQL)."""
        row = await tx.fetchrow(THREAD + self.db.dialect.lock, (thread_id,))
        if row is None:
            raise NotFound(f"thread {thread_id!r} not found")
        return thread_row(row)

    async def _claim_paused(self, tx: Tx, root_id: str, claim: Claim) -> bool:
        if await tx.fetch(PENDING_IN_TREE, (root_id,)):
            return False
        await tx.execute(
            "UPDATE threads SET status='running', claim=?, runner=?, stop_requested=0,"
            " updated_at=? WHERE id=? AND status='needs_approval'",
            (claim.token, claim.runner, now(), root_id),
        )
        return True

    async def _changed(self, tx: Tx, thread_id: str) -> None:
        """Tell other replicas the thread changed (PostgreSQL ``NOTIFY``, at commit)."""
        if self._notify:
            await tx.execute("SELECT pg_notify('agents_mcp', ?)", (thread_id,))
