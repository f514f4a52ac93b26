"""The shapes our MCP tools return: pydantic models (for ``outputSchema``) and their text.

Clients differ in what they show the calling model (``structuredContent`` only, text only,
or both; see shared/docs/clients.md), so every fact the caller needs to go on, above all
the thread id and how to continue, is in both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from agents_mcp.engine.summary import TurnSummary
from agents_mcp.server.pages import (
    MIN_ARGUMENTS,
    MIN_CUT,
    call_uri,
    fit_arguments,
    message_uri,
    shorten,
    thread_uri,
)
from agents_mcp.server.questions import (
    PendingQuestion,
    pending_question,
    question_lines,
)
from agents_mcp.server.signins import (
    PendingAuthorization,
    pending_authorization,
    sign_in_text,
)
from agents_mcp.server.spending import RunUsage, ThreadUsage, cost_usd, totals
from agents_mcp.store import Approval, StoredMessage, Thread

META_THREAD_ID = "agents-mcp/thread_id"
META_STATUS = "agents-mcp/status"
META_REPLY_CHARS = "agents-mcp/reply_chars"

META_USAGE = "agents-mcp/usage"

Status = Literal["completed", "needs_approval", "running", "failed", "cancelled", "budget_exceeded"]


class PendingApproval(BaseModel):
    call_id: str = Field(description="Pass this to approve_call")
    thread_id: str = Field(description="The thread the call belongs to (a delegation's own)")
    server: str
    tool: str
    arguments: Any = Field(
        description="The arguments that will run if approved: whole, unless arguments_uri"
        " is present; then long strings are cut here (each says how much is left out)"
    )
    arguments_chars: int | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="Only when the arguments were cut: the length of their JSON text",
    )
    arguments_uri: str | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="Only when the arguments were cut: the resource with them whole (the"
        " exact text that runs if approved)",
    )
    reason_hint: str | None = None
    requested_at: str
    via: list[str] = Field(
        default_factory=list[str],
        description="The agents the call comes through, from this thread's agent down",
    )


class RunErrorInfo(BaseModel):
    type: str = Field(description="Stable kind, e.g. llm_error, max_iterations, interrupted")
    message: str


class UnavailableServer(BaseModel):
    server: str = Field(description="A downstream server of the agent")
    reason: str = Field(description="Why its tools could not be offered")


class AgentResult(BaseModel):
    """The result of chat_with_agent, approve_call and get_thread."""

    thread_id: str = Field(description="Pass this as thread_id to continue the conversation")
    agent: str
    status: Status
    reply: str | None = Field(description="The agent's latest answer in this turn, if any")
    pending_approvals: list[PendingApproval] = Field(
        description="Tool calls waiting for approve_call (status needs_approval)"
    )
    error: RunErrorInfo | None
    usage: RunUsage
    unavailable: list[UnavailableServer] = Field(
        default_factory=list[UnavailableServer],
        description="Servers whose tools the agent could not use in this turn, and why"
        " (present only when there are some)",
    )
    pending_authorizations: list[PendingAuthorization] = Field(
        default_factory=list[PendingAuthorization],
        description="Sign-ins the agent waits for (status needs_approval; present only when"
        " there are some): give the user each url; the run goes on once they signed in",
    )
    pending_questions: list[PendingQuestion] = Field(
        default_factory=list[PendingQuestion],
        description="Questions a tool of the agent asks the user, waiting for"
        " answer_question (status running: the run waits inside the call; present only"
        " when there are some)",
    )

    @model_serializer(mode="wrap")
    def _only_when_some(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in ("unavailable", "pending_authorizations", "pending_questions"):
            if not data.get(key):
                data.pop(key, None)
        return data

    output: Any = Field(
        None,
        exclude_if=lambda v: v is None,
        description="The answer as JSON, valid against the output schema (only when one was"
        " asked for and the turn completed)",
    )


class TranscriptMessage(BaseModel):
    index: int
    role: Literal["user", "assistant", "tool", "event"] = Field(
        description="event: what happened to the run (interrupted, cancelled); not model input"
    )
    content: str | None
    tool_calls: list[dict[str, str]] = Field(default_factory=list[dict[str, str]])
    tool_call_id: str | None = None
    status: Literal["pending", "complete", "error"] = Field(
        description="pending: the call has no result yet (running, or waiting on approvals)"
    )


class ChildThread(BaseModel):
    thread_id: str
    agent: str
    status: Status
    parent_call_id: str | None


class ThreadResult(AgentResult):
    """get_thread's result: the agent result, and with include_messages the transcript."""

    thread_usage: ThreadUsage | None = Field(
        None, description="The thread's usage over all its turns, its delegations' included"
    )

    children: list[ChildThread] = Field(
        default_factory=list[ChildThread],
        description="Threads of the agents this thread delegated to",
    )
    messages: list[TranscriptMessage] | None = Field(
        None,
        description="A page of the transcript, oldest first (include_messages=true), of"
        " at most about reply_budget characters; a message cut to fit says so and names"
        " the resource that has it whole",
    )
    messages_before: int | None = Field(
        None, description="Pass as before to read the previous page; null at the start"
    )


def transcript_page(
    history: Sequence[StoredMessage],
    *,
    limit: int,
    before: int | None,
    budget: int,
    thread_id: str,
) -> tuple[list[TranscriptMessage], int | None]:
    """Up to ``limit`` messages before index ``before`` (the newest when None), newest
    kept first, within ``budget`` characters of content and arguments.

    The page ends where the next (older) message no longer fits. A message that does
    not fit a page on its own, or that ends a page with room for at least ``MIN_CUT``
    characters, is cut to fit, with a note naming the resource that has it whole. So a
    page is never empty and never much over ``budget``, whatever the thread holds.
    """
    end = len(history) if before is None else max(0, min(before, len(history)))
    page: list[TranscriptMessage] = []
    room = budget
    start = end
    while start > 0 and len(page) < limit:
        m = history[start - 1]
        size = _size(m)
        if size > room and page and room < MIN_CUT:
            break
        page.append(_page_message(m, room, thread_id))
        start -= 1
        room -= size
        if room <= 0:
            break
    page.reverse()
    return page, (start if start > 0 else None)


def _size(h: StoredMessage) -> int:
    return len(h.message.content or "") + sum(len(c.arguments) for c in h.message.tool_calls)


def _page_message(h: StoredMessage, room: int, thread_id: str) -> TranscriptMessage:
    """``h`` for a page, its content and arguments cut to ``room`` characters in all."""
    m = h.message
    content = _cut(m.content, room, f"message is in the resource {message_uri(thread_id, h.index)}")
    room -= len(m.content or "")
    calls = []
    for c in m.tool_calls:
        whole = f"arguments are in the resource {call_uri(thread_id, c.id)}"
        calls.append({"id": c.id, "name": c.name, "arguments": _cut(c.arguments, room, whole)})
        room -= len(c.arguments)
    return TranscriptMessage(
        index=h.index,
        role=m.role,
        content=content,
        tool_calls=calls,
        tool_call_id=m.tool_call_id,
        status="pending" if m.status in ("started", "waiting") else m.status,
    )


def _cut(text: str | None, room: int, whole: str) -> str | None:
    if text is None or len(text) <= room:
        return text
    shown = max(0, room)
    return f"{text[:shown]}\n[cut: {shown} of {len(text)} characters shown; the whole {whole}]"


def child_info(t: Thread) -> ChildThread:
    return ChildThread(
        thread_id=t.id, agent=t.agent, status=t.status, parent_call_id=t.parent_call_id
    )


def agent_result(s: TurnSummary, budget: int | None = None) -> AgentResult:
    """The result of ``s``; with ``budget``, the pending calls' arguments share it (each
    cut to fit, with the resource that has it whole), else they are whole (the CLI)."""
    t = s.thread
    calls = s.calls
    limit = None if budget is None else max(MIN_ARGUMENTS, budget // max(1, len(calls)))
    error = (
        RunErrorInfo(type=t.error_type or "error", message=t.error_message or "")
        if t.status == "failed" or t.error_type
        else None
    )
    return AgentResult(
        thread_id=t.id,
        agent=t.agent,
        status=t.status,
        reply=s.reply,
        pending_approvals=[_pending(a, limit) for a in calls],
        pending_authorizations=[pending_authorization(a) for a in s.pending if a.is_sign_in],
        error=error,
        unavailable=[UnavailableServer(server=n, reason=why) for n, why in s.unavailable],
        usage=RunUsage(
            input_tokens=s.usage.input_tokens,
            output_tokens=s.usage.output_tokens,
            llm_requests=s.llm_requests,
            tool_calls=s.tool_calls,
            cache_read_tokens=s.usage.cache_read_tokens,
            reasoning_tokens=s.usage.reasoning_tokens,
            cost_usd=cost_usd(s.usage),
            delegated=totals(s.delegated) if s.delegated and s.delegated.requests else None,
        ),
        output=s.output,
        pending_questions=[pending_question(q) for q in s.questions],
    )


def _pending(a: Approval, limit: int | None) -> PendingApproval:
    arguments, cut = fit_arguments(a.arguments, len(a.arguments) if limit is None else limit)
    return PendingApproval(
        call_id=a.call_id,
        thread_id=a.thread_id,
        server=a.server,
        tool=a.tool,
        arguments=arguments,
        arguments_chars=len(a.arguments) if cut else None,
        arguments_uri=call_uri(a.thread_id, a.call_id) if cut else None,
        reason_hint=a.reason_hint,
        requested_at=a.requested_at,
        via=list(a.via),
    )


def fit_reply(r: AgentResult, budget: int) -> tuple[AgentResult, int | None]:
    """``r`` with its reply cut to ``budget`` characters, and the full length if it was cut.

    Clients cap tool results (Claude Code at about 25k tokens), and some show the model
    only ``structuredContent``, so the reply is cut there too, with a note saying where to
    read the rest.
    """
    if r.reply is None or len(r.reply) <= budget:
        return r, None
    full = len(r.reply)
    note = (
        f"\n\n[reply truncated: {budget} of {full} characters shown. Read it all in the"
        f" resource {thread_uri(r.thread_id)}]"
    )
    return r.model_copy(update={"reply": r.reply[:budget] + note}), full


def result_text(
    r: AgentResult, *, person_decides: bool = False, cancelled: Sequence[str] = ()
) -> str:
    """The result for clients that show the model only text.

    ``person_decides``: the client shows the thread view and approvals are the person's
    (``[server] approver = "person"``), so the model is told to wait rather than decide.
    ``cancelled``: the calls a cancel cut short (see ``TurnSummary.cancelled``).
    """
    lines: list[str] = []
    if r.reply:
        lines += [r.reply, ""]
    for u in r.unavailable:
        lines.append(
            f"Unavailable to the agent in this turn: the tools of server {u.server!r} ({u.reason})."
        )
    if r.status == "needs_approval" and r.pending_authorizations:
        lines += sign_in_text(r.thread_id, r.pending_authorizations)
    if r.status == "needs_approval" and r.pending_approvals:
        lines.append(
            f"The agent wants to run {len(r.pending_approvals)} tool call(s) that need approval:"
        )
        for p in r.pending_approvals:
            args = json.dumps(p.arguments, ensure_ascii=False)
            where = f"call_id: {p.call_id}"
            if p.thread_id != r.thread_id:  # asked by a delegated agent
                where += f", thread_id: {p.thread_id}, asked by {' › '.join(p.via)}"
            lines.append(f"- {p.server}__{p.tool} {shorten(args, 500)} ({where})")
            if p.arguments_uri is not None or len(args) > 500:
                whole = p.arguments_uri or call_uri(p.thread_id, p.call_id)
                size = p.arguments_chars or len(args)
                lines.append(f"  (arguments cut; all {size} characters: the resource {whole})")
        if person_decides:
            lines.append(
                "The person decides each call in the agents-mcp view shown with this result"
                " (Approve, Deny, Allow for this thread); approve_call is theirs, not yours."
                " Tell them the agent is waiting for their decision, then call"
                f" get_thread(thread_id={r.thread_id!r}, wait_seconds=30) for the outcome."
            )
        else:
            lines.append(
                f"Ask the user, then answer each with approve_call(thread_id={r.thread_id!r},"
                " call_id=…, approve=true|false)."
            )
    elif r.pending_questions:
        lines += question_lines(r.thread_id, r.pending_questions, person_decides=person_decides)
    elif r.status == "running":
        lines.append("The agent is still working.")
    elif r.status == "cancelled":
        lines.append("The run was cancelled (cancel_run); the steps it finished are kept.")
        lines += [f"- {c}" for c in cancelled]
    elif r.status == "budget_exceeded" and r.error is not None:
        lines.append(f"The run stopped before its next model request: {r.error.message}")
    elif r.error is not None:
        lines.append(f"The run failed ({r.error.type}): {r.error.message}")
    lines.append(
        f"[thread_id: {r.thread_id} · agent: {r.agent} · status: {r.status}]"
        f" {_next(r, person_decides)}"
    )
    return "\n".join(lines)


def _next(r: AgentResult, person_decides: bool) -> str:
    """The footer's next step: a call that works for ``r.status``."""
    tid = repr(r.thread_id)
    if r.status == "needs_approval" and not r.pending_approvals and r.pending_authorizations:
        return f"Next: get_thread(thread_id={tid}, wait_seconds=30) once the user signed in."
    if r.pending_questions and person_decides:
        return f"Next: get_thread(thread_id={tid}, wait_seconds=30) once the person answered."
    if r.pending_questions:
        return (
            "Next: answer_question for each question (the run waits inside the call that"
            " asks); cancel_run stops the run."
        )
    if r.status == "running":
        return (
            f"Next: get_thread(thread_id={tid}, wait_seconds=30). A new message is refused"
            " while the run goes on; cancel_run stops it."
        )
    if r.status == "needs_approval" and person_decides:
        return f"Next: get_thread(thread_id={tid}, wait_seconds=30) once the person decided."
    if r.status == "needs_approval":
        return (
            "Next: approve_call for each pending call. A new message is refused until they"
            " are decided; cancel_run drops them."
        )
    if r.status in ("failed", "budget_exceeded"):
        return f"To retry or go on, call chat_with_agent with thread_id={tid}."
    return f"To continue this conversation, call chat_with_agent with thread_id={tid}."
