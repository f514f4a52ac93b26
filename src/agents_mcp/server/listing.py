"""What ``list_threads`` (and ``agents-mcp threads``) return: a page of threads, each
with what waits for a person (calls, sign-ins, questions) and what it spent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from agents_mcp.server.pages import call_uri, shorten
from agents_mcp.server.questions import PendingQuestion, pending_question
from agents_mcp.server.results import Status
from agents_mcp.server.signins import SignInPreview
from agents_mcp.server.spending import ThreadUsage
from agents_mcp.store import Approval, Question, Thread


class ThreadInfo(BaseModel):
    thread_id: str
    agent: str
    title: str = Field(description="From the first message")
    status: Status
    created_at: str
    updated_at: str
    message_count: int
    usage: ThreadUsage | None = Field(
        None, description="The thread's usage over all its turns, its delegations' included"
    )
    pending_approvals: list[PendingPreview] = Field(
        default_factory=list["PendingPreview"],
        description="For threads that need approval: the calls waiting",
    )
    pending_authorizations: list[SignInPreview] = Field(
        default_factory=list[SignInPreview],
        exclude_if=lambda v: not v,
        description="For threads that wait for the user to sign in: where (only when some)",
    )
    pending_questions: list[PendingQuestion] = Field(
        default_factory=list[PendingQuestion],
        exclude_if=lambda v: not v,
        description="For running threads whose tool asks the user: the questions waiting"
        " for answer_question (present only when there are some)",
    )


class PendingPreview(BaseModel):
    call_id: str
    server: str
    tool: str
    arguments_preview: str = Field(description="The arguments, shortened")
    arguments_uri: str | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="Only when the preview is shortened: the resource with them whole",
    )
    age_seconds: int


class ThreadList(BaseModel):
    threads: list[ThreadInfo]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end")


ThreadInfo.model_rebuild()


PREVIEW = 120
"""Characters of a pending call's arguments in ``list_threads``."""


def thread_info(
    t: Thread,
    pending: list[Approval],
    *,
    now: datetime | None = None,
    questions: Sequence[Question] = (),
    usage: ThreadUsage | None = None,
) -> ThreadInfo:
    moment = now or datetime.now(UTC)
    return ThreadInfo(
        pending_questions=[pending_question(q) for q in questions],
        thread_id=t.id,
        agent=t.agent,
        title=t.title,
        status=t.status,
        created_at=t.created_at,
        updated_at=t.updated_at,
        message_count=t.message_count,
        usage=usage,
        pending_authorizations=[
            SignInPreview(
                call_id=a.call_id, server=a.server, url=a.url or "", age_seconds=_age(a, moment)
            )
            for a in pending
            if a.is_sign_in
        ],
        pending_approvals=[
            PendingPreview(
                call_id=a.call_id,
                server=a.server,
                tool=a.tool,
                arguments_preview=shorten(a.arguments, PREVIEW),
                arguments_uri=call_uri(a.thread_id, a.call_id)
                if len(a.arguments) > PREVIEW
                else None,
                age_seconds=_age(a, moment),
            )
            for a in pending
            if not a.is_sign_in
        ],
    )


def _age(a: Approval, moment: datetime) -> int:
    return max(0, int((moment - _parse(a.requested_at)).total_seconds()))


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
