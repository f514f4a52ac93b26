"""What the thread view shows: a thread's result with its steps, and how to follow it live.

Built only from :class:`Threads`' public reads (``get``, ``transcript``, ``children``), so
it sees exactly what the MCP tools see, with the same owner checks. The steps are those
of the thread's latest turn (from the caller's last message on): model turns, each tool
call with its arguments and a preview of its result, and the threads of delegated agents
as a tree under the call that started them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Literal

import anyio
from pydantic import BaseModel, Field

from agents_mcp.engine.agent import RunEvent
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.engine.transcript import current_turn
from agents_mcp.messages import MessageStatus
from agents_mcp.server.pages import call_uri, fit_arguments
from agents_mcp.server.results import AgentResult, Status, agent_result, fit_reply
from agents_mcp.store import StoredMessage, Thread
from agents_mcp.threads.service import Threads

TEXT_SHOWN = 4000
"""Characters of a message's text in a step (the reply itself is in the result)."""
PREVIEW = 600
"""Characters of a tool result shown in its step."""
STEPS_SHOWN = 200
"""Messages of the latest turn shown; a longer turn shows its newest."""
SLICE = 0.25
"""Seconds between two looks at a running thread that reported progress."""

CallState = Literal["waiting", "approval", "running", "question", "done", "error"]
_CALL_STATES: dict[MessageStatus, CallState] = {
    "started": "running",
    "waiting": "approval",  # another agents-mcp asks for decisions about it
    "complete": "done",
    "error": "error",
}


class CallStep(BaseModel):
    """One tool call a model asked for, and what became of it."""

    call_id: str
    name: str = Field(description="The tool as the model named it, e.g. notes__write_note")
    arguments: Any = Field(
        description="The arguments (parsed JSON, else the raw text); long strings are cut"
        " when arguments_uri is present"
    )
    arguments_uri: str | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="Only when the arguments were cut: the resource with them whole",
    )
    state: CallState = Field(
        description="waiting: not started; approval: waits for a decision; running;"
        " question: running, its server waits for the person's answer (pending_questions);"
        " done; error (failed, refused or cancelled)"
    )
    result_preview: str | None = None
    result_chars: int | None = Field(None, description="Length of the whole result")


class Step(BaseModel):
    """A message of the turn: the caller's (``user``) or a model turn with its calls."""

    index: int
    kind: Literal["user", "model", "event"] = Field(
        description="event: what happened to the run (interrupted, cancelled)"
    )
    text: str | None
    text_chars: int = 0
    calls: list[CallStep] = Field(default_factory=list[CallStep])


class ThreadSteps(BaseModel):
    """A thread's latest turn; delegated agents' threads nest under ``children``."""

    thread_id: str
    agent: str
    status: Status
    title: str
    parent_call_id: str | None = Field(
        None, description="The call of the parent thread that started this one"
    )
    earlier_messages: int = Field(description="Messages before the steps shown")
    steps: list[Step]
    children: list[ThreadSteps] = Field(default_factory=list["ThreadSteps"])


class ThreadView(AgentResult):
    """watch_thread's result: the thread's result (as get_thread) and its steps."""

    title: str
    tree: ThreadSteps = Field(description="The latest turn's steps, delegations nested")
    version: str = Field(description="Changes whenever anything shown changes; pass as since")


def _shorten(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def steps_of(
    history: Sequence[StoredMessage],
    asking: set[str],
    thread_id: str,
    questioned: frozenset[str] = frozenset(),
) -> tuple[list[Step], int]:
    """The latest turn's steps, and how many messages came before them.

    ``asking``: the ids of this thread's calls that wait for a decision; ``questioned``:
    those whose server waits for the person's answer to a question.
    """
    start = len(history) - min(len(current_turn(history)), STEPS_SHOWN)
    results = {h.message.tool_call_id: h.message for h in history if h.message.role == "tool"}
    steps: list[Step] = []
    for h in history[start:]:
        m = h.message
        if m.role == "tool":
            continue  # shown with the call it answers
        calls = []
        for c in m.tool_calls:
            result = results.get(c.id)
            state: CallState
            if result is None:
                state = "approval" if c.id in asking else "waiting"
            elif result.status == "started" and c.id in questioned:
                state = "question"
            else:
                state = _CALL_STATES[result.status]
            content = result.content if result is not None else None
            arguments, cut = fit_arguments(c.arguments, TEXT_SHOWN)
            calls.append(
                CallStep(
                    call_id=c.id,
                    name=c.name,
                    arguments=arguments,
                    arguments_uri=call_uri(thread_id, c.id) if cut else None,
                    state=state,
                    result_preview=_shorten(content, PREVIEW),
                    result_chars=len(content) if content is not None else None,
                )
            )
        steps.append(
            Step(
                index=h.index,
                kind="user" if m.role == "user" else "event" if m.role == "event" else "model",
                text=_shorten(m.content, TEXT_SHOWN),
                text_chars=len(m.content or ""),
                calls=calls,
            )
        )
    # ``history`` may be the latest turn alone: its first index counts what came before.
    return steps, (history[start].index if start < len(history) else len(history))


async def _tree(
    threads: Threads,
    owner: str,
    thread: Thread,
    history: Sequence[StoredMessage],
    asking: set[tuple[str, str]],
    questioned: frozenset[tuple[str, str]] = frozenset(),
) -> ThreadSteps:
    mine = {call for tid, call in asking if tid == thread.id}
    asked = frozenset(call for tid, call in questioned if tid == thread.id)
    steps, earlier = steps_of(history, mine, thread.id, asked)
    shown = {c.call_id for s in steps for c in s.calls}
    children = []
    for child in await threads.children(thread.id):
        if child.parent_call_id not in shown:
            continue  # a delegation of an earlier turn
        child_thread, child_history = await threads.latest_turn(owner=owner, thread_id=child.id)
        children.append(
            await _tree(threads, owner, child_thread, child_history, asking, questioned)
        )
    return ThreadSteps(
        thread_id=thread.id,
        agent=thread.agent,
        status=thread.status,
        title=thread.title,
        parent_call_id=thread.parent_call_id,
        earlier_messages=earlier,
        steps=steps,
        children=children,
    )


async def _view(
    threads: Threads, owner: str, thread_id: str, summary: TurnSummary, budget: int
) -> ThreadView:
    result, _ = fit_reply(agent_result(summary, budget), budget)
    thread, history = await threads.latest_turn(owner=owner, thread_id=thread_id)
    asking = {(a.thread_id, a.call_id) for a in summary.pending}
    questioned = frozenset((q.thread_id, q.call_id or "") for q in summary.questions)
    tree = await _tree(threads, owner, thread, history, asking, questioned)
    shown = {**result.model_dump(mode="json"), "title": thread.title, "tree": tree.model_dump()}
    digest = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]
    return ThreadView(**shown, version=digest)


async def thread_view(
    threads: Threads,
    *,
    owner: str,
    thread_id: str,
    budget: int,
    since: str | None = None,
    wait: float = 0.0,
) -> ThreadView:
    """The thread's view; with ``since``, wait up to ``wait`` seconds for it to change.

    A running thread is looked at again whenever its run reports a new status (a model
    turn or a call starts), at most every :data:`SLICE` seconds, so the
    answer comes soon after a step without re-reading a thread that is quiet. A view
    that stops looking (its request cancelled) never stops the run, whatever the
    agent's ``on_cancel``.
    """
    summary = await threads.get(owner=owner, thread_id=thread_id)
    view = await _view(threads, owner, thread_id, summary, budget)
    deadline = anyio.current_time() + wait
    while view.version == since and view.status == "running":
        left = deadline - anyio.current_time()
        if left <= 0:
            break
        summary = await _until_progress(threads, owner, thread_id, min(left, 60.0))
        view = await _view(threads, owner, thread_id, summary, budget)
    return view


async def _until_progress(
    threads: Threads, owner: str, thread_id: str, seconds: float
) -> TurnSummary:
    """Wait (up to ``seconds``) until the run reports progress or ends."""
    heard = False

    async def on_event(event: RunEvent) -> None:
        nonlocal heard
        heard = heard or event.kind == "status"  # streamed text stores nothing yet

    deadline = anyio.current_time() + seconds
    while True:
        began = anyio.current_time()
        left = deadline - began
        # Shielded: a cancelled request must not reach the run's waiter, which stops
        # the run of an agent with on_cancel = "stop". A slice is short, so a
        # cancellation still lands within one.
        with anyio.CancelScope(shield=True):
            summary = await threads.get(
                owner=owner, thread_id=thread_id, wait=min(left, SLICE), progress=on_event
            )
        if heard or summary.thread.status != "running" or anyio.current_time() >= deadline:
            return summary
        if anyio.current_time() - began < SLICE / 2:
            # Not running in this process (e.g. `agents-mcp chat` holds it), so nothing
            # to wait on here: look again a slice later.
            await anyio.sleep(SLICE)
