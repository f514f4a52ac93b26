"""What a caller is told about a thread's latest turn, derived from its transcript."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agents_mcp import structured
from agents_mcp.engine.agent import DELEGATION_SERVER
from agents_mcp.messages import Usage
from agents_mcp.store import (
    Approval,
    Question,
    Spent,
    Store,
    StoredMessage,
    Thread,
)
from agents_mcp.store.states import STOPPED_BEFORE, STOPPED_RUNNING

UNAVAILABLE_EVENT = "unavailable: server {server!r}: {reason}"
DELEGATION_PREFIX = f"{DELEGATION_SERVER}__"

UNAVAILABLE = re.compile(r"unavailable: server '([^']*)': (.*)", re.S)


@dataclass(frozen=True, kw_only=True)
class TurnSummary:
    """What the caller is told about the thread's latest turn."""

    thread: Thread
    reply: str | None
    usage: Usage
    llm_requests: int
    tool_calls: int
    pending: list[Approval]
    """What the turn waits for: calls to decide and sign-ins (see ``calls``, ``sign_ins``)."""
    cancelled: list[str] = field(default_factory=list[str])
    """For a cancelled turn: each call the cancel cut short, and what became of it."""
    unavailable: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    """Servers whose tools could not be offered in this turn: ``(server, reason)``."""
    output: Any = None
    """The final answer's JSON value, when the turn had an output schema and completed."""
    questions: list[Question] = field(default_factory=list[Question])
    """Unanswered questions of downstream servers (the run waits inside their calls)."""
    delegated: Spent | None = None
    """What the agents this turn delegated to spent (at any depth), when it delegated."""

    @property
    def calls(self) -> list[Approval]:
        """The pending calls to decide (not the sign-ins)."""
        return [a for a in self.pending if not a.is_sign_in]

    @property
    def sign_ins(self) -> list[Approval]:
        """The sign-ins the run waits for."""
        return [a for a in self.pending if a.is_sign_in]


async def pending_in_tree(store: Store, thread: Thread) -> list[Approval]:
    """Undecided calls of the thread and of its delegations, each with its agent chain."""
    pending = await store.pending_in_tree(thread.id)
    if not pending:
        return []
    chains = {t.id: via for t, via in await store.tree(thread.id)}
    return [replace(a, via=(*chains.get(a.thread_id, ()), *a.via)) for a in pending]


async def pending_questions(store: Store, thread: Thread) -> list[Question]:
    """Unanswered questions of the thread and of its delegations (while it runs)."""
    if thread.status != "running":
        return []
    root = thread.id if thread.parent_id is None else await store.root_of(thread.id)
    found = (await store.pending_questions([root])).get(root, [])
    if thread.parent_id is None or not found:
        return found
    mine = {t.id for t, _ in await store.tree(thread.id)}
    return [q for q in found if q.thread_id in mine]


async def summarize(
    store: Store, thread: Thread, turn: Sequence[StoredMessage] | None = None
) -> TurnSummary:
    """The result of the thread's latest turn, derived from the transcript."""
    if turn is None:
        turn = await store.turn(thread.id)
    answers = [h.message for h in turn if h.message.role == "assistant"]
    usage = Usage()
    for m in answers:
        usage = usage + (m.usage or Usage())
    reply = next((m.content for m in reversed(answers) if m.content), None)
    pending = await pending_in_tree(store, thread) if thread.status == "needs_approval" else []
    structured_answer = thread.status == "completed" and thread.output_schema is not None
    delegating = any(c.name.startswith(DELEGATION_PREFIX) for m in answers for c in m.tool_calls)
    delegated = (await store.turn_usage(thread.id)).delegated if delegating else None
    return TurnSummary(
        thread=thread,
        reply=reply,
        usage=usage,
        llm_requests=len(answers),
        tool_calls=sum(1 for h in turn if h.message.role == "tool"),
        pending=pending,
        cancelled=_cut_short(turn) if thread.status == "cancelled" else [],
        unavailable=_unavailable(turn),
        output=structured.parse_output(reply) if structured_answer else None,
        questions=await pending_questions(store, thread),
        delegated=delegated,
    )


def _unavailable(turn: Sequence[StoredMessage]) -> list[tuple[str, str]]:
    """The servers recorded as unavailable in ``turn``, each once (its latest reason)."""
    found: dict[str, str] = {}
    for h in turn:
        if h.message.role == "event" and (m := UNAVAILABLE.fullmatch(h.message.content or "")):
            found[m[1]] = m[2]
    return list(found.items())


def _cut_short(turn: Sequence[StoredMessage]) -> list[str]:
    """The calls of ``turn`` that a cancel stopped, as ``tool (call id): what happened``."""
    names = {c.id: c.name for h in turn for c in h.message.tool_calls}
    fates = {STOPPED_BEFORE: "did not run", STOPPED_RUNNING: "was stopped while running"}
    return [
        f"{names.get(m.tool_call_id or '', '?')} (call {m.tool_call_id}): {fates[m.content or '']}"
        for h in turn
        if (m := h.message).role == "tool" and m.content in fates
    ]
