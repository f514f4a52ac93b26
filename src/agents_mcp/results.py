"""The shapes our MCP tools return: pydantic models (for ``outputSchema``) and their text.

Clients differ in what they show the calling model (``structuredContent`` only, text only,
or both; see shared/docs/clients.md), so every fact the caller needs to go on, above all
the thread id and how to continue, is in both.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from agents_mcp.loop import TurnSummary
from agents_mcp.store import Approval, Thread

META_THREAD_ID = "agents-mcp/thread_id"
META_STATUS = "agents-mcp/status"

Status = Literal["completed", "needs_approval", "running", "failed", "cancelled"]


class RunUsage(BaseModel):
    input_tokens: int = Field(description="Prompt tokens over this turn")
    output_tokens: int = Field(description="Completion tokens over this turn")
    llm_requests: int = Field(description="Model requests made in this turn")
    tool_calls: int = Field(description="Downstream tool calls settled in this turn")


class PendingApproval(BaseModel):
    call_id: str = Field(description="Pass this to approve_call")
    server: str
    tool: str
    arguments: Any = Field(description="The exact arguments that will run if approved")
    reason_hint: str | None = None
    requested_at: str


class RunErrorInfo(BaseModel):
    type: str = Field(description="Stable kind, e.g. llm_error, max_iterations, interrupted")
    message: str


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


class ThreadInfo(BaseModel):
    thread_id: str
    agent: str
    title: str = Field(description="From the first message")
    status: Status
    created_at: str
    updated_at: str
    message_count: int
    pending_approvals: list[PendingPreview] = Field(
        default_factory=list["PendingPreview"],
        description="For threads that need approval: the calls waiting",
    )


class PendingPreview(BaseModel):
    call_id: str
    server: str
    tool: str
    arguments_preview: str = Field(description="The arguments, shortened")
    age_seconds: int


class ThreadList(BaseModel):
    threads: list[ThreadInfo]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end")


ThreadInfo.model_rebuild()


def agent_result(s: TurnSummary) -> AgentResult:
    t = s.thread
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
        pending_approvals=[_pending(a) for a in s.pending],
        error=error,
        usage=RunUsage(
            input_tokens=s.usage.input_tokens,
            output_tokens=s.usage.output_tokens,
            llm_requests=s.llm_requests,
            tool_calls=s.tool_calls,
        ),
    )


def _pending(a: Approval) -> PendingApproval:
    return PendingApproval(
        call_id=a.call_id,
        server=a.server,
        tool=a.tool,
        arguments=_arguments(a.arguments),
        reason_hint=a.reason_hint,
        requested_at=a.requested_at,
    )


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def thread_info(t: Thread, pending: list[Approval], *, now: datetime | None = None) -> ThreadInfo:
    moment = now or datetime.now(UTC)
    return ThreadInfo(
        thread_id=t.id,
        agent=t.agent,
        title=t.title,
        status=t.status,
        created_at=t.created_at,
        updated_at=t.updated_at,
        message_count=t.message_count,
        pending_approvals=[
            PendingPreview(
                call_id=a.call_id,
                server=a.server,
                tool=a.tool,
                arguments_preview=_shorten(a.arguments, 120),
                age_seconds=max(0, int((moment - _parse(a.requested_at)).total_seconds())),
            )
            for a in pending
        ],
    )


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def result_text(r: AgentResult) -> str:
    """The result for clients that show the model only text."""
    lines: list[str] = []
    if r.reply:
        lines += [r.reply, ""]
    if r.status == "needs_approval":
        lines.append(
            f"The agent wants to run {len(r.pending_approvals)} tool call(s) that need approval:"
        )
        for p in r.pending_approvals:
            args = json.dumps(p.arguments, ensure_ascii=False)
            lines.append(f"- {p.server}__{p.tool} {_shorten(args, 500)} (call_id: {p.call_id})")
        lines.append(
            f"Ask the user, then answer each with approve_call(thread_id={r.thread_id!r},"
            " call_id=…, approve=true|false)."
        )
    elif r.status == "running":
        lines.append(
            f"The agent is still working. Call get_thread(thread_id={r.thread_id!r},"
            " wait_seconds=30) for the result."
        )
    elif r.error is not None:
        lines.append(f"The run failed ({r.error.type}): {r.error.message}")
    lines.append(
        f"[thread_id: {r.thread_id} · agent: {r.agent} · status: {r.status}] To continue this"
        f" conversation, call chat_with_agent with thread_id={r.thread_id!r}."
    )
    return "\n".join(lines)
