"""The tools, as module-level functions (the transcript resources are in ``resources``).

Each takes its arguments, the request (``ctx``) and the server's :class:`Deps` (injected
by fastmcp), so it can be read and tested on its own. :func:`register` adds them to a
server with what depends on the configuration: the agents' names in the schemas, the
default wait and the descriptions.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastmcp import Context, FastMCP
from fastmcp.dependencies import Depends
from fastmcp.tools import Tool, ToolResult
from fastmcp.utilities.json_schema import dereference_refs
from mcp_types import InputRequiredResult, ToolAnnotations
from pydantic import BaseModel, Field

from agents_mcp import telemetry
from agents_mcp.config import Config
from agents_mcp.engine.agent import Progress
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.engine.usage import Limits, nanos
from agents_mcp.server import mrtr
from agents_mcp.server.answers import agent_tool_result, tool_errors
from agents_mcp.server.asking import ask_inline
from agents_mcp.server.auth import current_caller
from agents_mcp.server.catalog import chat_description, with_agents
from agents_mcp.server.consent import ask_sign_in
from agents_mcp.server.deps import Deps, deps_of, incoming_chain
from agents_mcp.server.inline import Deadline, decided
from agents_mcp.server.inputs import declares_elicitation
from agents_mcp.server.listing import ThreadList, thread_info
from agents_mcp.server.results import (
    META_STATUS,
    META_THREAD_ID,
    AgentResult,
    Status,
    ThreadResult,
    TranscriptMessage,
    child_info,
    transcript_page,
)
from agents_mcp.server.spending import thread_usage
from agents_mcp.server.threadtasks import ThreadTasks
from agents_mcp.server.ui import THREAD_UI
from agents_mcp.server.ui.view import ThreadView, thread_view
from agents_mcp.store import Action

_WAIT_HELP = (
    "before returning status running (then call get_thread). Most clients give up on a"
    " request after 60 s: keep this under about 50 unless your client resets its timeout"
    " on progress notifications, which are sent while the call waits."
)
Wait = Annotated[
    float | None,
    Field(description=f"Seconds to wait for the answer {_WAIT_HELP}", ge=0, le=600),
]
"""A call's ``wait_seconds``: None (left out) is the server's default, which
:func:`register` writes into the schema."""
ThreadId = Annotated[str, Field(description="The thread to look up")]


async def _converse(
    ctx: Context,
    deps: Deps,
    wait_seconds: float | None,
    start: Callable[[float, Progress], Awaitable[TurnSummary]],
) -> ToolResult | InputRequiredResult:
    """What ``chat_with_agent`` and ``approve_call`` share: start (or resume) the run with
    progress relayed, ask inline when the client can, and answer with the thread's result.

    The whole call, a question asked inline included, stays within the call's wait: a
    client that gives up after 60 s gets its answer, with the rest of the run going on in
    the background. The retry of an input-required result (2026-07-28) does not start
    anything again: it applies the person's answers and goes on waiting.
    """
    caller = current_caller()
    deadline = Deadline(deps.wait(wait_seconds))
    async with deps.progress(ctx) as progress:
        state = mrtr.resumed(ctx, caller)
        answered: frozenset[str] = frozenset()
        if state is None:
            summary = await start(deadline.left(), progress)
        else:
            await deps.access.require_thread(deps.threads, caller, state.thread_id)
            summary, answered = await mrtr.resume(
                ctx, deps, state, wait=deadline.left(), progress=progress
            )
        telemetry.annotate(  # on the request's span (fastmcp's tools/call)
            {"gen_ai.conversation.id": summary.thread.id, "gen_ai.agent.name": summary.thread.agent}
        )
        summary = await ask_inline(ctx, deps, summary, deadline, progress)
        summary = await ask_sign_in(ctx, deps, summary, deadline.left(), progress)
        questions = bool(summary.questions)  # asked whatever approval_prompt says
        if (questions or summary.thread.status == "needs_approval") and mrtr.can_ask(
            ctx, deps, questions=questions
        ):
            asked = mrtr.ask(
                summary, caller.owner, answered, url_mode=declares_elicitation(ctx, url=True)
            )
            if asked is not None:
                return asked
        summary = await decided(ctx, deps, summary, deadline, progress)
    return agent_tool_result(summary, deps.settings.budget, person_decides=deps.person_decides(ctx))


@tool_errors
async def chat_with_agent(
    agent: Annotated[str, Field(description="Which agent to talk to")],
    message: Annotated[str, Field(description="What to ask or tell the agent", min_length=1)],
    ctx: Context,
    thread_id: Annotated[
        str | None, Field(description="Continue this thread (from a previous result)")
    ] = None,
    personality: Annotated[
        str | None, Field(description="One of the agent's personalities (see the agent list)")
    ] = None,
    wait_seconds: Wait = None,
    output_schema: Annotated[
        dict[str, Any] | None,
        Field(
            description="A JSON Schema the answer must meet: the reply is then that JSON,"
            " also as output in the structured result"
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        Field(
            description="Stop this call's run before a model request once it used this many"
            " tokens (in and out, delegated agents included); lowers the agent's own limit",
            ge=1,
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        Field(
            description="The same in US dollars, from the models' configured prices",
            gt=0,
        ),
    ] = None,
    deps: Deps = Depends(deps_of),
) -> ToolResult | InputRequiredResult:
    caller = current_caller()
    deps.access.require_agent(caller, agent)
    if thread_id is not None:
        await deps.access.require_thread(deps.threads, caller, thread_id)
        # Its tasks' answers before a new turn hides them (a retry starts nothing).
        await ThreadTasks().settle_open(deps, caller, thread_id, ctx)
    return await _converse(
        ctx,
        deps,
        wait_seconds,
        lambda wait, progress: deps.threads.chat(
            owner=caller.owner,
            agent=agent,
            message=message,
            thread_id=thread_id,
            personality=personality,
            wait=wait,
            progress=progress,
            chain=incoming_chain(ctx),
            output_schema=output_schema,
            limits=Limits(max_tokens, nanos(max_cost)),
        ),
    )


@tool_errors
async def approve_call(
    thread_id: Annotated[str, Field(description="The thread with the pending call")],
    call_id: Annotated[str, Field(description="call_id from pending_approvals")],
    approve: Annotated[bool, Field(description="true to run the call, false to refuse it")],
    ctx: Context,
    reason: Annotated[
        str | None, Field(description="Why (shown to the agent when refusing)")
    ] = None,
    scope: Annotated[
        Literal["once", "thread"],
        Field(description="once: this call; thread: also allow this tool in this thread"),
    ] = "once",
    wait_seconds: Wait = None,
    deps: Deps = Depends(deps_of),
) -> ToolResult | InputRequiredResult:
    caller = current_caller()
    await deps.access.require_thread(deps.threads, caller, thread_id)
    telemetry.annotate(
        {
            "agents_mcp.approval.call_id": call_id,
            "agents_mcp.approval.decision": "approved" if approve else "denied",
            "agents_mcp.approval.decided_by": caller.owner,
        }
    )
    return await _converse(
        ctx,
        deps,
        wait_seconds,
        lambda wait, progress: deps.threads.approve(
            owner=caller.owner,
            thread_id=thread_id,
            call_id=call_id,
            approve=approve,
            reason=reason,
            scope=scope,
            wait=wait,
            progress=progress,
        ),
    )


@tool_errors
async def answer_question(
    thread_id: Annotated[str, Field(description="The thread whose tool asks")],
    question_id: Annotated[str, Field(description="question_id from pending_questions")],
    ctx: Context,
    action: Annotated[
        Action,
        Field(
            description="accept: answer with content; decline: the user refuses;"
            " cancel: the user would rather not answer"
        ),
    ] = "accept",
    content: Annotated[
        dict[str, Any] | None,
        Field(description="With accept: the answer, matching the question's requested_schema"),
    ] = None,
    wait_seconds: Wait = None,
    deps: Deps = Depends(deps_of),
) -> ToolResult | InputRequiredResult:
    caller = current_caller()
    await deps.access.require_thread(deps.threads, caller, thread_id)
    return await _converse(
        ctx,
        deps,
        wait_seconds,
        lambda wait, progress: deps.threads.answer_question(
            owner=caller.owner,
            thread_id=thread_id,
            question_id=question_id,
            action=action,
            content=content,
            wait=wait,
            progress=progress,
        ),
    )


@tool_errors
async def get_thread(
    thread_id: ThreadId,
    ctx: Context,
    wait_seconds: Annotated[
        float,
        Field(description=f"Seconds to wait for a running turn {_WAIT_HELP}", ge=0, le=600),
    ] = 0.0,
    include_messages: Annotated[
        bool, Field(description="Also return a page of the transcript")
    ] = False,
    messages_limit: Annotated[int, Field(description="Page size", ge=1, le=200)] = 50,
    messages_before: Annotated[
        int | None, Field(description="messages_before of the previous page", ge=0)
    ] = None,
    deps: Deps = Depends(deps_of),
) -> ToolResult:
    threads, budget = deps.threads, deps.settings.budget
    caller = current_caller()
    await deps.access.require_thread(threads, caller, thread_id)
    async with deps.progress(ctx) as progress:
        summary = await threads.get(
            owner=caller.owner, thread_id=thread_id, wait=wait_seconds, progress=progress
        )
    page: tuple[list[TranscriptMessage], int | None] = ([], None)
    if include_messages:
        _, history = await threads.transcript(owner=caller.owner, thread_id=thread_id)
        page = transcript_page(
            history,
            limit=messages_limit,
            before=messages_before,
            budget=budget,
            thread_id=thread_id,
        )
    children = [child_info(t) for t in await threads.children(summary.thread.id)]
    spent = thread_usage((await threads.store.tree_usage([summary.thread.id]))[summary.thread.id])

    def extend(r: AgentResult) -> AgentResult:
        common = {"children": children, "thread_usage": spent}
        if not include_messages:
            return ThreadResult(**dict(r), **common)
        return ThreadResult(**dict(r), messages=page[0], messages_before=page[1], **common)

    return agent_tool_result(summary, budget, extend, person_decides=deps.person_decides(ctx))


@tool_errors
async def cancel_run(
    thread_id: Annotated[str, Field(description="The thread to stop")],
    ctx: Context,
    deps: Deps = Depends(deps_of),
) -> ToolResult:
    caller = current_caller()
    await deps.access.require_thread(deps.threads, caller, thread_id)
    summary = await deps.threads.cancel(owner=caller.owner, thread_id=thread_id)
    return agent_tool_result(summary, deps.settings.budget, person_decides=deps.person_decides(ctx))


@tool_errors
async def list_threads(
    agent: Annotated[str | None, Field(description="Only this agent's threads")] = None,
    status: Annotated[Status | None, Field(description="Only threads in this status")] = None,
    limit: Annotated[int, Field(description="Page size", ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Field(description="next_cursor from the previous page")] = None,
    include_children: Annotated[
        bool, Field(description="Also list threads of delegations between agents")
    ] = False,
    deps: Deps = Depends(deps_of),
) -> ThreadList:
    threads, pending, next_cursor = await deps.access.list_threads(
        deps.threads,
        current_caller(),
        agent=agent,
        status=status,
        limit=limit,
        cursor=cursor,
        include_children=include_children,
    )
    asked = await deps.threads.questions_of(threads)
    spent = await deps.threads.store.tree_usage([t.id for t in threads])
    return ThreadList(
        threads=[
            thread_info(
                t,
                pending.get(t.id, []),
                questions=asked.get(t.id, []),
                usage=thread_usage(spent[t.id]),
            )
            for t in threads
        ],
        next_cursor=next_cursor,
    )


@tool_errors
async def watch_thread(
    thread_id: Annotated[str, Field(description="The thread to show")],
    since: Annotated[str | None, Field(description="version of the view shown now")] = None,
    wait_seconds: Annotated[
        float, Field(description="Seconds to wait for a change", ge=0, le=60)
    ] = 0.0,
    deps: Deps = Depends(deps_of),
) -> ToolResult:
    caller = current_caller()
    await deps.access.require_thread(deps.threads, caller, thread_id)
    view = await thread_view(
        deps.threads,
        owner=caller.owner,
        thread_id=thread_id,
        budget=deps.settings.budget,
        since=since,
        wait=wait_seconds,
    )
    text = f"[thread_id: {view.thread_id} · status: {view.status} · version: {view.version}]"
    meta = {META_THREAD_ID: view.thread_id, META_STATUS: view.status}
    return ToolResult(content=text, structured_content=view, meta=meta)


@functools.cache
def _output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with its ``$ref``s inlined, once per process: fastmcp
    inlines them for the clients that cannot follow them (``dereference_schemas``) on
    every ``tools/list`` otherwise. Tools share the dict; nothing changes it (a caller's
    view of a tool is a copy)."""
    schema: dict[str, Any] = dereference_refs(model.model_json_schema())
    return schema


_AGENT_TOOL = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)
_READS = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def _descriptions(budget: int) -> dict[str, str]:
    return {
        "approve_call": (
            "Allow or refuse a tool call an agent asked to make (status needs_approval)."
            " The call that runs is the one the agent asked for, as shown in"
            " pending_approvals; scope='thread' also allows that tool for the rest of the"
            " thread. Returns the thread's result, like chat_with_agent. A sign-in the agent"
            " waits for (pending_authorizations) goes on by itself once the user signed in;"
            " approve=false with its call_id gives up on it."
        ),
        "answer_question": (
            "Answer a question a tool of an agent asks the user (pending_questions; the"
            " run waits inside that tool's call). Ask the user first: content is their"
            " answer, matching the question's requested_schema; action='decline' or"
            " 'cancel' tells the tool they refused or would rather not answer. Returns"
            " the thread's result, like chat_with_agent."
        ),
        "get_thread": (
            "The current result of a thread (same shape as chat_with_agent), waiting up to"
            " wait_seconds for a running turn to finish. include_messages adds a page of the"
            f" transcript (newest last, about {budget} characters at most, long messages"
            " cut, naming the resource that has it whole); pass messages_before to page"
            " back. The resource agents-mcp://threads/<thread_id> has the transcript in"
            " bigger pages."
        ),
        "cancel_run": (
            "Stop a running thread (or drop the undecided calls of one waiting for approval)."
            " Completed steps are kept; the thread can be continued with a new message."
        ),
        "list_threads": (
            "List your conversations with agents, newest first. status='needs_approval' lists"
            " every thread waiting for approve_call, with its pending calls; running threads"
            " whose tool asks the user list its pending_questions."
        ),
        "watch_thread": (
            "For the agents-mcp view: the thread's result (as get_thread) with the steps of"
            " its latest turn. With since (a previous version), waits up to wait_seconds"
            " for something to change."
        ),
    }


def _configured(tool: Tool, agents: list[str], default_wait: float) -> Tool:
    """``tool`` with the config in its schema: the agents' names, the default wait."""
    params: dict[str, Any] = dict(tool.parameters)
    props = dict(params["properties"])
    if "agent" in props:
        params = with_agents({**params, "properties": props}, agents)
        props = dict(params["properties"])
    wait = props.get("wait_seconds")
    if wait is not None and "anyOf" in wait:  # a Wait: the server's default, as a number
        number = next(b for b in wait["anyOf"] if b.get("type") == "number")
        props["wait_seconds"] = {
            **{k: v for k, v in wait.items() if k not in ("anyOf", "default")},
            **number,
            "default": default_wait,
        }
    return tool.model_copy(update={"parameters": {**params, "properties": props}})


def register(mcp: FastMCP, config: Config, default_wait: float) -> None:
    """Add the tools to ``mcp`` for ``config``."""
    agents = list(config.agents)
    text = _descriptions(config.server.reply_budget)
    chat = chat_description(config, agents)
    idempotent = ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )
    converses = {"output_schema": _output_schema(AgentResult), "annotations": _AGENT_TOOL}
    specs: list[tuple[Callable[..., Awaitable[Any]], dict[str, Any]]] = [
        (chat_with_agent, {"description": chat, **converses}),
        *(
            (fn, {"description": text[fn.__name__], **converses})
            for fn in (approve_call, answer_question)
        ),
        (
            get_thread,
            {
                "description": text["get_thread"],
                "output_schema": _output_schema(ThreadResult),
                "annotations": _READS,
            },
        ),
        (
            cancel_run,
            {
                "description": text["cancel_run"],
                "output_schema": _output_schema(AgentResult),
                "annotations": idempotent,
            },
        ),
        (list_threads, {"description": text["list_threads"], "annotations": _READS}),
        (
            watch_thread,
            {
                "description": text["watch_thread"],
                "output_schema": _output_schema(ThreadView),
                "annotations": _READS,
                "meta": {"ui": {"resourceUri": THREAD_UI, "visibility": ["app"]}},
            },
        ),
    ]
    for fn, options in specs:
        mcp.add_tool(_configured(Tool.from_function(fn, **options), agents, default_wait))
