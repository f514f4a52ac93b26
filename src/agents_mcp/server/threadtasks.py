"""MCP tasks served from the thread store: a task is a handle on a thread's turn.

``chat_with_agent`` (and ``approve_call``, which resumes a run) answer a task when the
request declares the extension and the turn did not end within the call's wait: the
call waits as always, then, instead of ``status: "running"`` or ``"needs_approval"``,
records a task on that turn (committed first) and answers ``CreateTaskResult``. Nothing
runs for the task: its status is the thread's, so it survives restarts, any replica on
the database serves it, and the thread's own tools keep working next to it.

=================  ================  =============================================
thread             task              payload
=================  ================  =============================================
running            working           ``statusMessage``: the step it is on
running, asking    input_required    one elicitation per question of its servers
needs_approval     input_required    one elicitation per pending call or sign-in
completed, failed  completed         the ``CallToolResult`` the tool would return
cancelled          cancelled         ``statusMessage``
=================  ================  =============================================

A sign-in is a URL-mode elicitation, for a client that declares URL mode; a thread that
waits only for sign-ins a client cannot be asked is ``working``, its ``statusMessage``
saying where to sign in (the run goes on by itself once the person did).

A failed run is a tool error (``isError``), so its task is ``completed``, as the
extension asks (``failed`` is for JSON-RPC errors). Answers to the elicitations
(``tasks/update``) are decided as ``approve_call`` decides (a dismissed question refuses
the call: nobody else is asked), or, for a server's question (a tool that asks during
its call), answered as ``answer_question`` answers (accept, decline and cancel reach
the tool as they are); ``tasks/cancel`` is ``cancel_run``. The final state is
kept with the task the first time it is read, so the answer stays the same after the
thread goes on with a new message; a task whose turn was superseded before anyone read
its end says so (a tool error naming the thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastmcp import Context
from fastmcp.server.dependencies import get_context
from fastmcp.server.extensions import ToolCallContinuation, ToolCallOutcome
from fastmcp.tools import ToolResult
from fastmcp.tools.base import InputRequiredToolResult
from mcp_types import CallToolRequestParams, CallToolResult

from agents_mcp.engine.summary import TurnSummary
from agents_mcp.errors import NotFound
from agents_mcp.server.answers import agent_tool_result
from agents_mcp.server.auth import Caller, current_caller
from agents_mcp.server.deps import Deps, deps_of
from agents_mcp.server.inputs import (
    answer_inputs,
    declares_elicitation,
    pending_inputs,
    question_message,
)
from agents_mcp.server.results import META_STATUS, META_THREAD_ID
from agents_mcp.server.tasks import TaskStatus, TaskView, UnknownTask, created
from agents_mcp.store import StoredMessage
from agents_mcp.store.tasks import TaskRecord

TASK_TOOLS = frozenset({"chat_with_agent", "approve_call"})
"""The tools whose calls may become tasks: those that start or resume a run."""
UNFINISHED = frozenset({"running", "needs_approval"})


def wire_result(result: ToolResult) -> dict[str, Any]:
    """``result`` as the ``CallToolResult`` a client receives for it."""
    wire = CallToolResult(
        content=result.content,
        structured_content=result.structured_content,
        is_error=result.is_error,
        _meta=result.meta,  # the alias of meta
    )
    data: dict[str, Any] = wire.model_dump(by_alias=True, exclude_none=True, mode="json")
    return data


def step_message(summary: TurnSummary, turn: Sequence[StoredMessage]) -> str:
    """What a running turn is doing, from its stored steps (any replica can tell)."""
    done = {h.message.tool_call_id for h in turn if h.message.role == "tool"}
    what = "thinking"
    for h in reversed(turn):
        m = h.message
        if m.role == "assistant" and m.tool_calls:
            running = [c.name for c in m.tool_calls if c.id not in done]
            what = f"calling {', '.join(running)}" if running else "thinking"
            break
        if m.role in ("assistant", "user"):
            what = "writing" if m.role == "assistant" else "thinking"
            break
    return (
        f"agent {summary.thread.agent!r}: {what} ({summary.llm_requests} model"
        f" request(s), {summary.tool_calls} tool call(s) so far)"
    )


def waiting_message(summary: TurnSummary) -> str:
    """What a thread waits for: decisions, sign-ins (and where), answers to questions."""
    calls = summary.calls
    parts = [f"a decision on {len(calls)} tool call(s)"] if calls else []
    parts += [f"an answer · {question_message(q)}" for q in summary.questions]
    parts += [
        f"the user to sign in to {a.server} at {a.url}" for a in summary.pending if a.is_sign_in
    ]
    return "waiting for " + "; ".join(parts or ["a decision"])


class ThreadTasks:
    """The :class:`~agents_mcp.server.tasks.TaskSource` of agents-mcp."""

    async def call(
        self,
        params: CallToolRequestParams,
        context: Context,
        call_next: ToolCallContinuation,
        *,
        opted: bool,
    ) -> ToolCallOutcome:
        outcome = await call_next()
        if not opted or params.name not in TASK_TOOLS:
            return outcome
        if not isinstance(outcome, ToolResult) or isinstance(outcome, InputRequiredToolResult):
            return outcome
        meta = outcome.meta or {}
        thread_id = meta.get(META_THREAD_ID)
        if meta.get(META_STATUS) not in UNFINISHED or not isinstance(thread_id, str):
            return outcome
        deps, caller = deps_of(context), current_caller()
        record = await deps.tasks.create(
            owner=caller.owner, thread_id=thread_id, ttl_ms=deps.settings.task_ttl_ms
        )
        return created(await self._view(deps, caller, record, context))

    async def get(self, task_id: str) -> TaskView:
        ctx = get_context()
        deps, caller = deps_of(ctx), current_caller()
        return await self._view(deps, caller, await _record(deps, caller, task_id), ctx)

    async def update(self, task_id: str, responses: dict[str, Any]) -> None:
        deps, caller = deps_of(get_context()), current_caller()
        record = await _record(deps, caller, task_id)
        summary = await _current(deps, caller, record)
        if summary is None:
            return  # finished, or its turn is over: nothing of it waits
        await answer_inputs(
            deps,
            caller.owner,
            record.thread_id,
            pending_inputs(summary),
            responses,
            dismissed="deny",
        )

    async def cancel(self, task_id: str) -> None:
        deps, caller = deps_of(get_context()), current_caller()
        record = await _record(deps, caller, task_id)
        summary = await _current(deps, caller, record)
        if summary is not None and summary.thread.status in UNFINISHED:
            await deps.threads.cancel(owner=caller.owner, thread_id=record.thread_id)

    async def settle_open(self, deps: Deps, caller: Caller, thread_id: str, ctx: Context) -> None:
        """Keep the final state of the thread's tasks that nobody has read yet: called
        before the thread goes on with a new message, which would hide it."""
        for record in await deps.tasks.open_on(thread_id):
            await self._view(deps, caller, record, ctx)

    async def _view(self, deps: Deps, caller: Caller, record: TaskRecord, ctx: Context) -> TaskView:
        if record.outcome is None:
            outcome, view = await self._now(deps, caller, record, ctx)
            if outcome is None:
                return view
            kept = await deps.tasks.settle(record.id, outcome)
            record = kept if kept is not None else record
        assert record.outcome is not None
        return self._fields(deps, record, **record.outcome)

    async def _now(
        self, deps: Deps, caller: Caller, record: TaskRecord, ctx: Context
    ) -> tuple[dict[str, Any] | None, TaskView]:
        """The task's final state to keep (and None for the view), or None and its view."""
        summary = await _thread(deps, caller, record)
        if await deps.tasks.current_turn(record.thread_id) != record.turn:
            return _superseded(record.thread_id), self._fields(deps, record)
        status = summary.thread.status
        updated = max(record.created_at, summary.thread.updated_at)
        if status == "running" and summary.questions:  # its servers ask the person
            inputs = {k: v.request for k, v in pending_inputs(summary).items()}
            return None, self._fields(
                deps, record, "input_required", updated,
                status_message=waiting_message(summary), input_requests=inputs,
            )  # fmt: skip
        if status == "running":
            _, turn = await deps.threads.latest_turn(owner=caller.owner, thread_id=record.thread_id)
            message = step_message(summary, turn)
            return None, self._fields(deps, record, "working", updated, status_message=message)
        if status == "needs_approval":
            url_mode = declares_elicitation(ctx, url=True)
            inputs = {k: v.request for k, v in pending_inputs(summary, url_mode=url_mode).items()}
            message = waiting_message(summary)
            if not inputs:  # only sign-ins, and no URL mode to ask them with
                return None, self._fields(deps, record, "working", updated, status_message=message)
            return None, self._fields(
                deps, record, "input_required", updated, status_message=message,
                input_requests=inputs,
            )  # fmt: skip
        if status == "cancelled":
            return {"status": "cancelled", "updated": updated, "status_message": "cancelled"}, (
                self._fields(deps, record)
            )
        decides = deps.person_decides(ctx)
        result = agent_tool_result(summary, deps.settings.budget, person_decides=decides)
        kept = {"status": "completed", "updated": updated, "result": wire_result(result)}
        return kept, self._fields(deps, record)

    def _fields(
        self,
        deps: Deps,
        record: TaskRecord,
        status: TaskStatus = "working",
        updated: str | None = None,
        **payload: Any,
    ) -> TaskView:
        return TaskView(
            task_id=record.id,
            status=status,
            created_at=record.created_at,
            last_updated_at=updated or record.created_at,
            ttl_ms=record.ttl_ms,
            poll_interval_ms=deps.settings.task_poll_ms,
            **payload,
        )


def _superseded(thread_id: str) -> dict[str, Any]:
    text = (
        f"thread {thread_id!r} went on with a new message before this task's result was"
        f" read; get_thread(thread_id={thread_id!r}) shows the thread, and the resource"
        f" agents-mcp://threads/{thread_id} its whole transcript, this turn included"
    )
    result = {"content": [{"type": "text", "text": text}], "isError": True}
    return {"status": "completed", "result": result}


async def _record(deps: Deps, caller: Caller, task_id: str) -> TaskRecord:
    """The caller's task, or :class:`UnknownTask` (another owner's is unknown too)."""
    record = await deps.tasks.get(task_id, caller.owner)
    if record is None:
        raise UnknownTask(task_id)
    return record


async def _thread(deps: Deps, caller: Caller, record: TaskRecord) -> TurnSummary:
    """The task's thread now (orphaned runs settled first), within the caller's access."""
    try:
        await deps.access.require_thread(deps.threads, caller, record.thread_id)
        return await deps.threads.get(owner=caller.owner, thread_id=record.thread_id)
    except NotFound:
        raise UnknownTask(record.id) from None


async def _current(deps: Deps, caller: Caller, record: TaskRecord) -> TurnSummary | None:
    """The thread, while the task's turn is its latest and unread; else None."""
    if record.outcome is not None:
        return None
    summary = await _thread(deps, caller, record)
    if await deps.tasks.current_turn(record.thread_id) != record.turn:
        return None
    return summary
