"""Questions a downstream server asks during a tool call, kept with the thread until answered.

A question belongs to the run that made the call (its claim) and to the thread of that
run (a delegation's own thread, under its top-level thread, ``root_id``). Its life is
in :mod:`agents_mcp.store.states`: ``pending`` until a person answers it (``answered``,
with the action and the content that go back to the server) or nobody can any more
(``closed``, with why: the call ended, the run stopped, the server stopped, nobody
answered in time). Each move is one conditional write on ``status = 'pending'``, so of
two racing answers one wins, and an answer to a closed question is refused with why.

While a question is pending the thread stays ``running``: its run is alive, holds its
claim and waits inside the tool call for the answer. Settling a run that is gone (or
stopped) closes its pending questions in the same write, and the call that asked says
that it did not complete.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from agents_mcp.errors import LostClaim, NotFound, StopRequested
from agents_mcp.store import states
from agents_mcp.store.database import Database, Tx
from agents_mcp.store.records import Row, marks, now

QuestionStatus = Literal["pending", "answered", "closed"]
Action = Literal["accept", "decline", "cancel"]
ACTIONS: tuple[Action, ...] = ("accept", "decline", "cancel")


@dataclass(frozen=True, kw_only=True)
class Question:
    """A server's question (form mode) during one of a run's tool calls."""

    id: str
    thread_id: str
    """The thread whose run made the call (a delegation's own thread)."""
    root_id: str
    """Its top-level thread: where the question is shown and answered."""
    call_id: str | None
    """The model's call it was asked during; None when that cannot be told."""
    claim: str
    """The run that asked: only it can take the answer."""
    server: str
    tool: str | None
    message: str
    requested_schema: dict[str, Any] | None
    status: QuestionStatus
    asked_at: str
    action: Action | None = None
    """What the person did: accept (with ``content``), decline or cancel."""
    content: dict[str, Any] | None = None
    reason: str | None = None
    """Why a closed question can no longer be answered."""
    answered_at: str | None = None
    via: tuple[str, ...] = ()
    """The agents the call comes through, from the top-level thread's agent down."""


def new_question_id() -> str:
    """An unguessable question id: 96 random bits."""
    return "q_" + secrets.token_urlsafe(12)


COLUMNS = (
    "id, thread_id, root_id, call_id, claim, server, tool, message, requested_schema,"
    " status, action, content, reason, asked_at, answered_at, via"
)


def question_row(row: Row) -> Question:
    schema, content, via = row["requested_schema"], row["content"], row["via"]
    return Question(
        id=row["id"],
        thread_id=row["thread_id"],
        root_id=row["root_id"],
        call_id=row["call_id"],
        claim=row["claim"],
        server=row["server"],
        tool=row["tool"],
        message=row["message"],
        requested_schema=json.loads(schema) if schema else None,
        status=row["status"],
        action=cast(Action | None, row["action"]),
        content=json.loads(content) if content else None,
        reason=row["reason"],
        asked_at=row["asked_at"],
        answered_at=row["answered_at"],
        via=tuple(json.loads(via)) if via else (),
    )


def _values(q: Question) -> tuple[Any, ...]:
    return (
        q.id,
        q.thread_id,
        q.root_id,
        q.call_id,
        q.claim,
        q.server,
        q.tool,
        q.message,
        None if q.requested_schema is None else json.dumps(q.requested_schema),
        q.status,
        q.action,
        None if q.content is None else json.dumps(q.content),
        q.reason,
        q.asked_at,
        q.answered_at,
        json.dumps(list(q.via)) if q.via else None,
    )


_ONE = "SELECT * FROM questions WHERE id=?"
_PENDING = (
    "SELECT * FROM questions WHERE status='pending' AND root_id IN ({}) ORDER BY asked_at, id"
)


_HELD = (
    " AND EXISTS (SELECT 1 FROM threads t WHERE t.id = questions.root_id"
    " AND t.claim = questions.claim AND t.stop_requested = 0)"
)
"""The run that asked still holds its thread, and was not asked to stop."""


class QuestionStore:
    """The store's question operations (``SQLStore`` mixes them in)."""

    db: Database

    async def _changed(self, tx: Tx, thread_id: str) -> None:
        raise NotImplementedError  # SQLStore's: tell other replicas

    async def ask_question(self, question: Question) -> None:
        """Record a pending question of the run holding ``question.claim``: refused
        (``LostClaim``, ``StopRequested``) once that run no longer holds the thread."""

        async def body(tx: Tx) -> None:
            root = await tx.fetchrow(
                "SELECT claim, status, stop_requested FROM threads WHERE id=?"
                + self.db.dialect.lock,
                (question.root_id,),
            )
            if root is None or root["status"] != "running" or root["claim"] != question.claim:
                raise LostClaim(f"thread {question.root_id!r} is no longer held by this run")
            if root["stop_requested"]:
                raise StopRequested(f"thread {question.root_id!r} was asked to stop")
            await tx.execute(
                f"INSERT INTO questions ({COLUMNS}) VALUES ({marks(range(16))})", _values(question)
            )
            await self._changed(tx, question.root_id)

        await self.db.transaction("ask_question", body)

    async def answer_question(
        self, question_id: str, action: Action, content: Mapping[str, Any] | None
    ) -> tuple[bool, Question]:
        """Record the person's answer to a pending question, only while the run that asked
        still holds its thread and was not asked to stop (a stopped run's tool never gets
        it). Returns whether this call recorded it, and the question as it is now."""

        async def body(tx: Tx) -> tuple[bool, Question]:
            changed = await tx.execute(
                "UPDATE questions SET status='answered', action=?, content=?, answered_at=?"
                " WHERE id=? AND status='pending'" + _HELD,
                (action, None if content is None else json.dumps(content), now(), question_id),
            )
            row = await tx.fetchrow(_ONE, (question_id,))
            if row is None:
                raise NotFound(f"question {question_id!r} not found")
            found = question_row(row)
            if changed:
                await self._changed(tx, found.root_id)
            return bool(changed), found

        return await self.db.transaction("answer_question", body)

    async def close_question(self, question_id: str, reason: str, *, by_run: bool = False) -> bool:
        """Nobody can answer the question any more (``reason``); False when it was
        answered or closed before. ``by_run``: only while the run that asked still holds
        its thread and was not asked to stop (else settling the run closes it, saying so)."""
        held = _HELD if by_run else ""

        async def body(tx: Tx) -> bool:
            changed = await tx.execute(
                "UPDATE questions SET status='closed', reason=?, answered_at=?"
                " WHERE id=? AND status='pending'" + held,
                (reason, now(), question_id),
            )
            return bool(changed)

        return await self.db.transaction("close_question", body)

    async def question(self, question_id: str) -> Question | None:
        rows = await self.db.query("question", _ONE, (question_id,))
        return question_row(rows[0]) if rows else None

    async def pending_questions(self, root_ids: Sequence[str]) -> dict[str, list[Question]]:
        """The pending questions of several top-level threads (and their delegations)."""
        if not root_ids:
            return {}
        rows = await self.db.query(
            "pending_questions", _PENDING.format(marks(root_ids)), list(root_ids)
        )
        out: dict[str, list[Question]] = {}
        for row in rows:
            q = question_row(row)
            out.setdefault(q.root_id, []).append(q)
        return out

    async def open_questions(self, owner: str) -> list[Question]:
        """Every pending question of ``owner``'s threads, oldest first (for an inbox)."""
        rows = await self.db.query(
            "open_questions",
            "SELECT q.* FROM questions q JOIN threads t ON t.id = q.root_id"
            " WHERE t.owner=? AND q.status='pending' ORDER BY q.asked_at, q.id",
            (owner,),
        )
        return [question_row(r) for r in rows]


async def close_with_run(tx: Tx, thread_ids: Sequence[str], *, cancelled: Sequence[str]) -> None:
    """In a settlement's write: close the pending questions of ``thread_ids`` (their run
    is gone or stopped), and say of each call that asked a question nobody answered that
    it did not complete (instead of "it may have run"). ``cancelled``: the threads that
    were cancelled rather than interrupted."""
    if not thread_ids:
        return
    await tx.execute(
        f"UPDATE questions SET status='closed', reason=?, answered_at=?"
        f" WHERE status='pending' AND thread_id IN ({marks(thread_ids)})",
        (states.QUESTION_RUN_ENDED, now(), *thread_ids),
    )
    unanswered = await tx.fetch(
        f"SELECT thread_id, call_id, message FROM questions WHERE status='closed'"
        f" AND call_id IS NOT NULL AND thread_id IN ({marks(thread_ids)}) ORDER BY asked_at, id",
        list(thread_ids),
    )
    for row in unanswered:
        stopped = row["thread_id"] in cancelled
        template = states.STOPPED_ASKING if stopped else states.INTERRUPTED_ASKING
        await tx.execute(
            "UPDATE messages SET content=? WHERE thread_id=? AND tool_call_id=? AND role='tool'"
            " AND status='error' AND content IN (?, ?)",
            (
                template.format(message=_quoted(row["message"])),
                row["thread_id"],
                row["call_id"],
                states.MAY_HAVE_RUN,
                states.STOPPED_RUNNING,
            ),
        )


async def close_with_failure(tx: Tx, thread_id: str) -> None:
    """In ``fail``'s write: the thread's pending questions are closed with its run."""
    await tx.execute(
        "UPDATE questions SET status='closed', reason=?, answered_at=?"
        " WHERE thread_id=? AND status='pending'",
        (states.QUESTION_RUN_FAILED, now(), thread_id),
    )


def _quoted(message: str, limit: int = 200) -> str:
    text = " ".join(message.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
