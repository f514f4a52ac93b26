"""The chat loop: one ``run()`` over ``step()`` for every entry point.

The state of a run is the stored transcript itself: each step reads the thread, does one
thing (call the model, or settle the open tool calls of its last answer), writes what it
did, and says what comes next. So a run can stop anywhere (approval, crash, restart) and
``run()`` picks it up again from the database. The loop does no I/O of its own: the model,
the toolset and the store come in through :class:`Agent` and :class:`Run`.

A run holds its thread through a :class:`Claim`; every write it makes checks the claim, so
a run that lost its thread (stopped, or settled by recovery) changes nothing: the store
raises ``LostClaim``/``StopRequested`` and ``run()`` lets them through to its owner.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio

from agents_mcp import structured, telemetry
from agents_mcp.downstream import remote
from agents_mcp.engine import signins, tracing, usage
from agents_mcp.engine.agent import DELEGATION_SERVER, Delegated, Run, RunEvent
from agents_mcp.engine.calls import Decisions, plan_calls, tool_message, unique_ids
from agents_mcp.engine.context import fixed_chars
from agents_mcp.engine.signins import NeedsSignIn
from agents_mcp.engine.summary import UNAVAILABLE_EVENT
from agents_mcp.engine.transcript import Transcript, current_turn, stored
from agents_mcp.errors import (
    DownstreamUnavailable,
    LostClaim,
    MaxIterations,
    OutputInvalid,
    RunError,
    StoreError,
    internal_error,
)
from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall
from agents_mcp.store import (
    Approval,
    open_calls,
)
from agents_mcp.toolsets import ToolInfo, ToolOutput, Unavailable

log = logging.getLogger("agents_mcp.engine.loop")


async def _transcript(r: Run) -> Transcript:
    if r.state.transcript is None:
        r.state.transcript = await Transcript.load(r.store, r.thread_id, r.agent.tool_result_budget)
    return r.state.transcript


# -- the steps ------------------------------------------------------------------------


@dataclass(frozen=True)
class Continue:
    """Take another step."""


@dataclass(frozen=True)
class Final:
    """The model answered without tool calls; the thread is stored as completed."""


@dataclass(frozen=True)
class Paused:
    """Some tool calls wait for a human decision."""

    waiting: tuple[str, ...]


@dataclass(frozen=True)
class Failed:
    """The run cannot go on."""

    error: RunError


Step = Continue | Final | Paused | Failed


RECHECKS = 3
"""How often a run goes on at once when every call it waited for was decided meanwhile."""


async def run(r: Run) -> None:
    """Drive ``step()`` until the thread is completed, paused or failed; record the outcome.
    ``StoreError`` and ``LostClaim`` propagate: the run's owner settles the thread."""
    resumed = False
    if telemetry.enabled():  # a turn that has answers already is resumed
        turn = current_turn((await _transcript(r)).messages)
        resumed = any(h.message.role == "assistant" for h in turn)
    async with tracing.agent_run(r, resumed) as span:
        outcome = await _run(r)
        span.set({"agents_mcp.run.outcome": outcome[0]})
        if isinstance(outcome[1], RunError):
            span.fail(outcome[1].kind, str(outcome[1]))
        elif outcome[1]:
            span.event("agents_mcp.waiting_for_approval", {"gen_ai.tool.call.id": outcome[1]})


async def _run(r: Run) -> tuple[str, RunError | list[str] | None]:
    """The loop of :func:`run`; how it ended (and the error, or the calls it waits for)."""
    rechecks = 0
    while True:
        try:
            nxt = await step(r)
        except (LostClaim, StoreError):
            raise
        except NeedsSignIn:  # its items are stored: it waits like for an approval
            nxt = Paused(())
        except Exception as exc:  # a bug must not leave the thread "running" forever
            nxt = Failed(_run_error(exc, r.thread_id))
        match nxt:
            case Continue():
                continue
            case Final():
                return "completed", None
            case Paused(waiting):
                # A decision may have landed while this step ran: then go straight on.
                if await r.store.pause(r.thread_id, r.claim):
                    await r.progress(RunEvent("status", "waiting for approval"))
                    return "needs_approval", list(waiting)
                rechecks += 1
                if rechecks > RECHECKS:
                    await r.store.fail(r.thread_id, r.claim, _STUCK)
                    return "failed", RunError(_STUCK[1])
            case Failed(error):
                await r.store.fail(r.thread_id, r.claim, (error.kind, str(error)))
                return ("budget_exceeded" if error.kind == "budget_exceeded" else "failed"), error


_STUCK = (
    "run_error",
    "a call kept waiting for decisions that were already made (another agents-mcp asks"
    " again?); send a message to continue",
)


def _run_error(exc: Exception, thread_id: str) -> RunError:
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # a task group around one failing call
    if isinstance(exc, ExceptionGroup):  # concurrent calls: the loss of the thread wins
        lost = exc.subgroup(lambda e: isinstance(e, LostClaim | StoreError))
        if lost is not None:
            raise lost.exceptions[0]
    if isinstance(exc, LostClaim | StoreError):
        raise exc
    if isinstance(exc, RunError):
        return exc
    return internal_error(exc, f"run of thread {thread_id}")


async def step(r: Run) -> Step:
    """Do the next thing the transcript calls for, and store it."""
    transcript = await _transcript(r)
    history = transcript.messages
    unsettled = open_calls(history)
    if unsettled:
        said = next(
            (h.message.content for h in reversed(history) if h.message.role == "assistant"), None
        )
        return await _settle_calls(r, unsettled, said)
    last = next((h.message for h in reversed(history) if h.message.role != "event"), None)
    if last is not None and last.role == "assistant" and last.status == "complete":
        await transcript.append(r.claim, complete=True)  # answered before a restart
        return Final()
    turn = current_turn(history)
    requests = sum(1 for m in turn if m.message.role == "assistant")
    if requests >= r.agent.max_iterations:
        raise MaxIterations(
            f"agent {r.agent.name!r} reached max_iterations ({r.agent.max_iterations})"
            " without a final answer; send a message to continue"
        )
    if r.budget is not None:
        r.budget.take()
    tools = await _tools(r)
    await r.progress(RunEvent("status", f"thinking (turn {requests + 1}/{r.agent.max_iterations})"))
    request, sent = _request(r, transcript, tools)

    async def on_text(fragment: str) -> None:
        await r.progress(RunEvent("text", fragment))

    # Only someone reading the text as it comes is worth a streamed answer (stream="auto").
    reader = on_text if r.reads_text() else None
    estimate = int(sent / transcript.chars_per_token) if sent else 0
    response = await usage.complete(r, request, reader, estimate)
    if sent:
        transcript.calibrate(sent, response.usage.input_tokens)
    answer = _answer(response, transcript, r.agent.max_stored_result)
    if answer.tool_calls:
        return await _settle_calls(r, answer.tool_calls, response.content, answer=answer)
    if r.schema is not None:
        return await _structured(r, request, answer, r.schema, reader)
    await transcript.append(r.claim, answer, complete=True)
    return Final()


def _request(r: Run, transcript: Transcript, tools: Sequence[ToolInfo]) -> tuple[LLMRequest, int]:
    """The next request (within the agent's context window), and what it carries in
    characters (0: not measured)."""
    system = _system(r)
    specs = [t.spec for t in tools]
    if r.state.fixed_chars is None:
        r.state.fixed_chars = fixed_chars(system, specs, r.schema)
    messages, sent = transcript.fit(r.agent.context, r.state.fixed_chars)
    request = LLMRequest(
        system=system,
        messages=messages,
        tools=specs,
        settings=r.agent.settings,
        output_schema=r.schema,
    )
    return request, sent


def _answer(response: LLMResponse, transcript: Transcript, limit: int) -> Message:
    """The model's answer as it is stored: its call ids made unique in the thread, its
    text kept up to ``limit`` characters (``max_stored_result``)."""
    content = response.content
    return Message(
        role="assistant",
        content=None if content is None else stored(content, limit),
        tool_calls=unique_ids(response.tool_calls, transcript.call_ids),
        reasoning=response.reasoning,
        reasoning_payload=response.reasoning_payload,
        usage=response.usage,
    )


async def _structured(
    r: Run,
    request: LLMRequest,
    answer: Message,
    schema: Mapping[str, Any],
    reader: TextCallback | None,
) -> Step:
    """Store a final answer that meets the schema; else give the model one repair round.

    An answer that fails is stored with status ``error`` (kept for people, never sent to
    a model again), followed by an ``event`` saying why. The repair request is the same
    request plus that answer and the errors; a second failure ends the run
    ``output_invalid``. Nothing is stored before the second answer, so a run stopped in
    between asks afresh.
    """
    transcript = await _transcript(r)
    first = structured.check_answer(answer.content, schema)
    if first.ok:
        await transcript.append(r.claim, replace(answer, content=first.text), complete=True)
        return Final()
    if r.budget is not None:
        r.budget.take()
    await r.progress(
        RunEvent("status", "the answer does not match the output schema; asking again")
    )
    retry = structured.repair_request(request, answer, first.errors)
    second = _answer(await usage.complete(r, retry, reader), transcript, r.agent.max_stored_result)
    rejected = replace(answer, status="error")
    why = Message(role="event", content=structured.rejection(first.errors))
    if second.tool_calls:  # it went back to work: its next final answer is checked afresh
        await transcript.append(r.claim, rejected, why)
        return await _settle_calls(r, second.tool_calls, second.content, answer=second)
    checked = structured.check_answer(second.content, schema)
    if checked.ok:
        done = replace(second, content=checked.text)
        await transcript.append(r.claim, rejected, why, done, complete=True)
        return Final()
    await transcript.append(r.claim, rejected, why, replace(second, status="error"))
    raise OutputInvalid(
        "the agent's answer does not match the output schema, also after one correction: "
        + "; ".join(checked.errors)
        + "; send a message to continue"
    )


async def _settle_calls(
    r: Run, calls: Sequence[ToolCall], said: str | None, answer: Message | None = None
) -> Step:
    """Run, refuse or hold each open call of the model's last answer.

    ``answer``: that answer, just received and not stored yet. It is stored with the
    step's first writes (results, approvals, the ``pending`` rows of calls about to run),
    and since its calls are new, no decision about them can exist yet.
    """
    tools = {t.name: t for t in await _tools(r)}
    if answer is None or any(_may_ask(r, tools.get(c.name)) for c in calls):
        every, grants = await r.store.decisions(r.thread_id)
    else:
        every, grants = [], set()
    tracing.decisions(r.owner or "", calls, every)
    # Calls whose row already waits on another agents-mcp (a resumed run).
    held = (
        set()
        if answer is not None
        else {
            h.message.tool_call_id
            for h in current_turn((await _transcript(r)).messages)
            if h.message.role == "tool" and h.message.status == "waiting"
        }
    )
    plan = plan_calls(
        calls,
        tools,
        Decisions(every, grants, held),
        thread_id=r.thread_id,
        said=said,
        requires_approval=r.agent.requires_approval,
    )
    for call_id in plan.orphans:  # a row waits, but for nothing it names: never run it again
        text = "Error: the server this call went to stopped naming what it waits for"
        await (await _transcript(r)).finish_call(r.claim, call_id, text, ok=False)
    for call_id, text in plan.declined:  # the user did not sign in for it
        await (await _transcript(r)).finish_call(r.claim, call_id, text, ok=False)
    started = [
        Message(role="tool", tool_call_id=call.id, status="started") for call, *_ in plan.runnable
    ]  # committed before any of them is invoked
    writes = [*([answer] if answer is not None else []), *plan.answers, *started]
    if writes or plan.new:
        await (await _transcript(r)).append(r.claim, *writes, approvals=plan.new)
    for call, *_ in plan.resumed:  # signed in: the call that waited runs now, once
        await (await _transcript(r)).restart_call(r.claim, call.id)
    waiting = list(plan.waiting)
    waiting += await _execute(r, [*plan.runnable, *plan.resumed])
    waiting += await _relay(r, plan.relays)
    waiting += await _delegate(r, plan.delegations)
    return Paused(tuple(waiting)) if waiting else Continue()


def _may_ask(r: Run, info: ToolInfo | None) -> bool:
    """Whether the agent's rule may hold a call of this tool for approval."""
    return info is not None and info.server != DELEGATION_SERVER and r.agent.requires_approval(info)


async def _tools(r: Run) -> list[ToolInfo]:
    """The run's tools, listed once per run (servers' lists are cached as well).

    Servers that cannot give their tools are recorded in the thread (an ``event`` the
    caller's result reports) and told to the model; a ``required`` one fails the run.
    """
    if r.state.tools is None:
        found = await r.agent.toolset.available()
        missing = found.unavailable
        if missing:  # some may wait for their owner's sign-in before offering their tools
            transcript = await _transcript(r)
            ask, missing = signins.to_ask(missing, current_turn(transcript.messages))
            if ask:
                await signins.wait_for_servers(r, transcript, ask)
        await _record_unavailable(r, missing)
        r.state.tools = [*found.tools, *r.agent.delegates]
    return r.state.tools


"""How a server's failure is recorded in the thread (see :func:`summarize`)."""


async def _record_unavailable(r: Run, missing: Sequence[Unavailable]) -> None:
    r.state.unavailable = list(missing)
    if not missing:
        return
    transcript = await _transcript(r)
    said = {h.message.content for h in current_turn(transcript.messages)}
    texts = [UNAVAILABLE_EVENT.format(server=u.server, reason=u.reason) for u in missing]
    new = [Message(role="event", content=t) for t in texts if t not in said]
    if new:  # once per turn, however often the run resumes
        await transcript.append(r.claim, *new)
    required = [u for u in missing if u.required]
    if required:
        listed = "; ".join(f"server {u.server!r}: {u.reason}" for u in required)
        raise DownstreamUnavailable(
            f"agent {r.agent.name!r} cannot run without its required tools ({listed}); fix"
            " the server (agents-mcp check shows why), then send a message to continue"
        )


def _system(r: Run) -> str:
    """The agent's system prompt, plus what it must know about tools it does not have."""
    prompt = r.agent.system_prompt(r.personality)
    if not r.state.unavailable:
        return prompt
    listed = "; ".join(f"server {u.server!r} ({u.reason})" for u in r.state.unavailable)
    note = (
        f"Some of your tools are unavailable right now: {listed}. Their tools are missing"
        " from your tool list. Do not guess what they would have returned: tell the user"
        " which tools are unavailable and why, and do what you can without them."
    )
    return f"{prompt}\n\n{note}" if prompt else note


async def _delegate(r: Run, calls: Sequence[tuple[ToolCall, ToolInfo]]) -> list[str]:
    """Run delegation calls concurrently; returns the ids of those still waiting."""
    waiting: list[str] = []

    async def one(call: ToolCall, info: ToolInfo) -> None:
        started = time.perf_counter()
        with tracing.tool_span(r, call, info) as span:
            if r.delegate is None:
                out = Delegated(text="Error: delegation is not available here", ok=False)
            else:
                out = await r.delegate(r, call, info.tool, json.loads(call.arguments or "{}"))
            tracing.tool_result(span, info, out.ok, out.text, time.perf_counter() - started)
        if out.text is None:
            waiting.append(call.id)
        else:
            text = stored(out.text, r.agent.max_stored_result)
            result = tool_message(call, ToolOutput(text=text, ok=out.ok))
            await (await _transcript(r)).append(r.claim, result)

    await _concurrently(one, calls)
    return waiting


async def _execute(r: Run, calls: Sequence[tuple[ToolCall, ToolInfo | None, str]]) -> list[str]:
    """Run calls concurrently (their ``started`` rows are stored already).

    Returns the ids of calls now waiting on another agents-mcp's approvals.
    """
    if not calls:
        return []
    waiting: list[str] = []

    async def one(call: ToolCall, info: ToolInfo | None, arguments: str) -> None:
        assert info is not None  # runnable calls have a tool
        await r.progress(RunEvent("status", f"calling {info.name}"))
        started = time.perf_counter()
        with tracing.tool_span(r, call, info) as span:
            args = json.loads(arguments or "{}")
            out = await r.agent.toolset.call(
                info, args, meta=r.meta(), on_elicit=r.asker(), call_id=call.id
            )
            tracing.tool_result(span, info, out.ok, out.text, time.perf_counter() - started)
            if await _record(r, call, info, out):
                waiting.append(call.id)

    await _concurrently(one, calls)
    return waiting


async def _concurrently(
    fn: Callable[..., Coroutine[Any, Any, None]], calls: Sequence[tuple[Any, ...]]
) -> None:
    """``fn(*args)`` for each of ``calls`` at once (a lone call needs no task group)."""
    if len(calls) == 1:
        await fn(*calls[0])
    elif calls:
        async with anyio.create_task_group() as tg:
            for args in calls:
                tg.start_soon(fn, *args)


async def _relay(r: Run, relays: Sequence[tuple[ToolCall, ToolInfo, list[Approval]]]) -> list[str]:
    """Forward decided approvals to the agents-mcp that asked for them."""
    waiting: list[str] = []
    for call, info, decided in relays:
        await r.progress(RunEvent("status", f"forwarding decisions to {info.server}"))
        out = await remote.forward(
            r.agent.toolset, info, decided, r.meta(), on_elicit=r.asker(), call_id=call.id
        )
        if await _record(r, call, info, out):
            waiting.append(call.id)
    return waiting


async def _record(r: Run, call: ToolCall, info: ToolInfo, out: ToolOutput) -> bool:
    """Store a tool result; True when it is another agents-mcp asking for approvals, or
    when the call did not run because the owner must sign in first."""
    if out.sign_in is not None:
        await signins.wait_for_call(r, await _transcript(r), call, info, out.sign_in)
        return True
    result = remote.remote_result(out)
    if result is not None and result["status"] == "running":
        await r.progress(RunEvent("status", f"waiting for {info.server}"))
        out = await remote.follow(
            r.agent.toolset, info, out, r.meta(), on_elicit=r.asker(), call_id=call.id
        )
        result = remote.remote_result(out)
    if result is not None and result["status"] == "needs_approval":
        asked = remote.approvals_for(r.thread_id, call.id, info, result)
        if asked:
            await (await _transcript(r)).hold_call(r.claim, call.id, asked)
            return True  # the call stays open until the remote thread settles
        # It waits, it says, but names nothing to decide: there is nothing we can do for
        # it, and the call must not look new (it would run again).
        out = ToolOutput(
            text=f"Error: {info.server} says its thread {result['thread_id']} waits for"
            " approval but names no call to decide; ask it later with get_thread and that"
            " thread_id",
            ok=False,
        )
    text = stored(out.text, r.agent.max_stored_result)  # a result enters the thread here
    await (await _transcript(r)).finish_call(r.claim, call.id, text, ok=out.ok)
    return False
