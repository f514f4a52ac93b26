"""The MCP face of agents-mcp: a FastMCP server whose tools drive :class:`Threads`.

This module is the composition root: it turns the configuration into agents (model,
toolset, approval rule), owns their lifetimes in the server lifespan, and maps our
exception tree to MCP tool errors in one place (:func:`_tool_errors`). Who calls comes
from ``auth`` and which agents they may use from ``access``; ``tools/list`` is rewritten
per caller (``catalog``) so each sees only its own agents. How it is served (stdio, HTTP)
is ``transports``.
"""

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import anyio
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import AuthProvider
from fastmcp.server.elicitation import AcceptedElicitation, DeclinedElicitation
from fastmcp.tools import ToolResult
from fastmcp.utilities.json_schema import dereference_refs
from mcp_types import (
    ClientCapabilities,
    ContentBlock,
    ElicitationCapability,
    ResourceLink,
    TextContent,
    ToolAnnotations,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field, JsonValue

from agents_mcp import __version__
from agents_mcp.config import Config
from agents_mcp.engine.agent import CHAIN_META, Link, Progress
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.errors import ClientError, InvalidRequest, StoreError, internal_error
from agents_mcp.llm import LLM
from agents_mcp.server.access import Access
from agents_mcp.server.auth import current_caller
from agents_mcp.server.catalog import CallerView, chat_description, enum_or_null
from agents_mcp.server.progress import relayed
from agents_mcp.server.results import (
    META_REPLY_CHARS,
    META_STATUS,
    META_THREAD_ID,
    AgentResult,
    Status,
    ThreadList,
    ThreadResult,
    TranscriptMessage,
    agent_result,
    child_info,
    fit_reply,
    result_text,
    thread_info,
    thread_uri,
    transcript_markdown,
    transcript_page,
)
from agents_mcp.server.ui import THREAD_UI
from agents_mcp.server.ui.apps import add_thread_view, renders_apps
from agents_mcp.server.ui.view import ThreadView, thread_view
from agents_mcp.store import resolve_db
from agents_mcp.threads.runtime import open_threads
from agents_mcp.threads.service import Threads

log = logging.getLogger("agents_mcp.server.app")

_WAIT_HELP = (
    "before returning status running (then call get_thread). Most clients give up on a"
    " request after 60 s: keep this under about 50 unless your client resets its timeout"
    " on progress notifications, which are sent while the call waits."
)

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def _output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with its ``$ref``s inlined, once per process: fastmcp
    inlines them for the clients that cannot follow them (``dereference_schemas``) on
    every ``tools/list`` otherwise, about 1 ms per schema and 3.5 ms per listing. Tools
    share the dict; nothing changes it (a caller's view of a tool is a copy)."""
    schema: dict[str, Any] = dereference_refs(model.model_json_schema())
    return schema


def _owner() -> str:
    """The owner of the request being handled (``local`` without a token)."""
    return current_caller().owner


def _tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Map the exception tree to MCP: client mistakes become tool errors with our message,
    and so does a failing database (its message names the cause: full, read-only, …);
    anything unexpected becomes an error id, its traceback logged under that id (FastMCP's
    own masking would say only "Error calling tool")."""

    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ClientError as exc:
            raise ToolError(str(exc)) from exc
        except StoreError as exc:
            log.error("%s", exc)
            raise ToolError(f"agents-mcp could not use its thread database: {exc}") from exc
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(str(internal_error(exc, f"{fn.__name__} request"))) from None

    return wrapper


def _agent_tool_result(
    summary: TurnSummary,
    budget: int,
    extend: Callable[[AgentResult], AgentResult] | None = None,
    *,
    person_decides: bool = False,
) -> ToolResult:
    result, full = fit_reply(agent_result(summary), budget)
    if extend is not None:
        result = extend(result)
    text = result_text(result, person_decides=person_decides, cancelled=summary.cancelled)
    content: list[ContentBlock] = [TextContent(type="text", text=text)]
    meta: dict[str, Any] = {META_THREAD_ID: result.thread_id, META_STATUS: result.status}
    if full is not None:
        content.append(
            ResourceLink(
                type="resource_link",
                uri=thread_uri(result.thread_id),
                name=f"thread {result.thread_id}",
                description=f"The full transcript ({full} characters in the last reply)",
                mime_type="text/markdown",
            )
        )
        meta[META_REPLY_CHARS] = full
    # A failed run is an error result (clients flag it to their model), with the same
    # structuredContent and thread id, so it can be continued like any other.
    failed = result.status == "failed"
    return ToolResult(content=content, structured_content=result, meta=meta, is_error=failed)


def _progress(ctx: Context, interval: float) -> AbstractAsyncContextManager[Progress]:
    """Relay run events as ``notifications/progress`` (when the caller asked for them)."""

    async def send(progress: float, message: str) -> None:
        await ctx.report_progress(progress, None, message)

    return relayed(send, interval)


def _incoming_chain(ctx: Context) -> tuple[Link, ...]:
    """The delegation chain a calling agents-mcp sent in the request ``_meta``."""
    rc = ctx.request_context
    meta = rc.meta if rc is not None else None
    raw = meta.get(CHAIN_META) if meta is not None else None
    if raw is None:
        return ()
    try:
        return tuple(Link(str(hop["instance"]), str(hop["agent"])) for hop in raw)
    except (TypeError, KeyError) as exc:
        raise InvalidRequest(
            f"_meta[{CHAIN_META!r}] must be a list of {{instance, agent}} objects"
        ) from exc


def _can_elicit(ctx: Context) -> bool:
    """A handshake-era connection whose client declared elicitation."""
    try:
        rc = ctx.request_context
        if rc is None or rc.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return False
        wanted = ClientCapabilities(elicitation=ElicitationCapability())
        return bool(ctx.session.check_client_capability(wanted))
    except Exception:  # no session (in-memory edge cases): take the structured path
        return False


async def _ask_inline(
    ctx: Context,
    threads: Threads,
    summary: TurnSummary,
    *,
    deadline: float,
    wait: float,
    progress: Progress,
) -> TurnSummary:
    """The optional fast path: ask the user in the client, one pending call at a time.

    Accept runs the call, decline refuses it; a cancel, a timeout or any error leaves the
    call pending and the caller gets the structured ``needs_approval`` result as usual.
    """
    owner = _owner()
    while summary.thread.status == "needs_approval" and summary.pending:
        a = summary.pending[0]
        message = (
            f"Agent {summary.thread.agent!r} wants to call {a.server}__{a.tool} with"
            f" {a.arguments[:2000]}. Allow it?"
        )
        answer: Any = None
        with anyio.move_on_after(deadline):
            try:
                answer = await ctx.elicit(message, response_type=bool, response_title="Allow")
            except Exception as exc:  # unsupported after all, or the client failed
                log.info("elicitation failed, falling back to approve_call: %s", exc)
                return summary
        if isinstance(answer, AcceptedElicitation):
            approve, reason = bool(answer.data), None if answer.data else "declined in the client"
        elif isinstance(answer, DeclinedElicitation):
            approve, reason = False, "declined in the client"
        else:  # cancelled or timed out
            return summary
        summary = await threads.approve(
            owner=owner,
            thread_id=summary.thread.id,
            call_id=a.call_id,
            approve=approve,
            reason=reason,
            wait=wait,
            progress=progress,
        )
    return summary


def create_server(
    config: Config,
    *,
    db_path: str | Path | None = None,
    llms: Mapping[str, LLM] | None = None,
    transports: Mapping[str, Any] | None = None,
    wait_seconds: float | None = None,
    auth: AuthProvider | None = None,
) -> FastMCP:
    """Build the agents-mcp server for ``config``.

    ``llms`` replaces configured models by name and ``transports`` replaces downstream
    servers by name (tests use scripted models and in-process servers this way).
    """
    path = resolve_db(config.server.db, db_path)
    names: list[JsonValue] = list(config.agents)
    default_wait = config.server.wait_seconds if wait_seconds is None else wait_seconds
    budget = config.server.reply_budget
    inline = config.server.approval_prompt == "auto"
    ask_timeout = config.server.elicitation_timeout
    progress_interval = config.server.progress_interval
    person = config.server.approver == "person"
    running: dict[str, Threads] = {}  # for the /threads pages, outside MCP requests
    access = Access(config.agents)

    @asynccontextmanager
    async def lifespan(_: FastMCP) -> AsyncIterator[dict[str, Any]]:
        async with open_threads(config, db_path=path, llms=llms, transports=transports) as threads:
            running["threads"] = threads
            try:
                yield {"threads": threads}
            finally:
                running.pop("threads", None)

    mcp = FastMCP(
        config.server.name,
        instructions=(
            "Agents as tools. chat_with_agent talks to an agent; keep the returned thread_id"
            " to continue. list_threads finds conversations and approvals waiting."
        ),
        version=__version__,
        lifespan=lifespan,
        mask_error_details=True,
        auth=auth,
        middleware=[CallerView(config, access)],
    )

    def threads_of(ctx: Context) -> Threads:
        threads: Threads = ctx.lifespan_context["threads"]
        return threads

    def progress_of(ctx: Context) -> AbstractAsyncContextManager[Progress]:
        return _progress(ctx, progress_interval)

    def person_decides(ctx: Context) -> bool:
        """approver = "person" and the client shows the view: approvals are not the model's."""
        return person and renders_apps(ctx)

    async def decided(
        ctx: Context, summary: TurnSummary, wait: float, progress: Progress
    ) -> TurnSummary:
        """With approval_prompt = "auto", try the inline fast path before answering."""
        if inline and summary.thread.status == "needs_approval" and _can_elicit(ctx):
            threads = threads_of(ctx)
            return await _ask_inline(
                ctx, threads, summary, deadline=ask_timeout, wait=wait, progress=progress
            )
        return summary

    agent_field = Field(description="Which agent to talk to", json_schema_extra={"enum": names})
    wait_field = Field(description=f"Seconds to wait for the answer {_WAIT_HELP}", ge=0, le=600)
    agent_tool = ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
    )

    @mcp.tool(
        description=chat_description(config, list(config.agents)),
        output_schema=_output_schema(AgentResult),
        annotations=agent_tool,
    )
    @_tool_errors
    async def chat_with_agent(
        agent: Annotated[str, agent_field],
        message: Annotated[str, Field(description="What to ask or tell the agent", min_length=1)],
        ctx: Context,
        thread_id: Annotated[
            str | None, Field(description="Continue this thread (from a previous result)")
        ] = None,
        personality: Annotated[
            str | None,
            Field(description="One of the agent's personalities (see the agent list)"),
        ] = None,
        wait_seconds: Annotated[float, wait_field] = default_wait,
        output_schema: Annotated[
            dict[str, Any] | None,
            Field(
                description="A JSON Schema the answer must meet: the reply is then that JSON,"
                " also as output in the structured result"
            ),
        ] = None,
    ) -> ToolResult:
        caller = current_caller()
        access.require_agent(caller, agent)
        if thread_id is not None:
            await access.require_thread(threads_of(ctx), caller, thread_id)
        async with progress_of(ctx) as progress:
            summary = await threads_of(ctx).chat(
                owner=caller.owner,
                agent=agent,
                message=message,
                thread_id=thread_id,
                personality=personality,
                wait=wait_seconds,
                progress=progress,
                chain=_incoming_chain(ctx),
                output_schema=output_schema,
            )
            summary = await decided(ctx, summary, wait_seconds, progress)
        return _agent_tool_result(summary, budget, person_decides=person_decides(ctx))

    @mcp.tool(
        description=(
            "Allow or refuse a tool call an agent asked to make (status needs_approval)."
            " The call that runs is the one the agent asked for, as shown in"
            " pending_approvals; scope='thread' also allows that tool for the rest of the"
            " thread. Returns the thread's result, like chat_with_agent."
        ),
        output_schema=_output_schema(AgentResult),
        annotations=agent_tool,
    )
    @_tool_errors
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
        wait_seconds: Annotated[float, wait_field] = default_wait,
    ) -> ToolResult:
        caller = current_caller()
        await access.require_thread(threads_of(ctx), caller, thread_id)
        async with progress_of(ctx) as progress:
            summary = await threads_of(ctx).approve(
                owner=caller.owner,
                thread_id=thread_id,
                call_id=call_id,
                approve=approve,
                reason=reason,
                scope=scope,
                wait=wait_seconds,
                progress=progress,
            )
            summary = await decided(ctx, summary, wait_seconds, progress)
        return _agent_tool_result(summary, budget, person_decides=person_decides(ctx))

    @mcp.tool(
        description=(
            "The current result of a thread (same shape as chat_with_agent), waiting up to"
            " wait_seconds for a running turn to finish. include_messages adds a page of the"
            f" transcript (newest last, about {budget} characters at most, long messages"
            " cut); pass messages_before to page back. The resource"
            " agents-mcp://threads/<thread_id> has the whole transcript."
        ),
        output_schema=_output_schema(ThreadResult),
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    @_tool_errors
    async def get_thread(
        thread_id: Annotated[str, Field(description="The thread to look up")],
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
    ) -> ToolResult:
        threads = threads_of(ctx)
        caller = current_caller()
        await access.require_thread(threads, caller, thread_id)
        async with progress_of(ctx) as progress:
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
                uri=thread_uri(thread_id),
            )
        children = [child_info(t) for t in await threads.children(summary.thread.id)]

        def extend(r: AgentResult) -> AgentResult:
            if not include_messages:
                return ThreadResult(**dict(r), children=children)
            return ThreadResult(
                **dict(r), messages=page[0], messages_before=page[1], children=children
            )

        return _agent_tool_result(summary, budget, extend, person_decides=person_decides(ctx))

    @mcp.tool(
        description=(
            "Stop a running thread (or drop the undecided calls of one waiting for approval)."
            " Completed steps are kept; the thread can be continued with a new message."
        ),
        output_schema=_output_schema(AgentResult),
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    @_tool_errors
    async def cancel_run(
        thread_id: Annotated[str, Field(description="The thread to stop")], ctx: Context
    ) -> ToolResult:
        caller = current_caller()
        await access.require_thread(threads_of(ctx), caller, thread_id)
        summary = await threads_of(ctx).cancel(owner=caller.owner, thread_id=thread_id)
        return _agent_tool_result(summary, budget, person_decides=person_decides(ctx))

    @mcp.resource(
        "agents-mcp://threads/{thread_id}",
        name="thread transcript",
        description="The full transcript of a thread as Markdown",
        mime_type="text/markdown",
    )
    @_tool_errors
    async def thread_transcript(thread_id: str, ctx: Context) -> str:
        caller = current_caller()
        await access.require_thread(threads_of(ctx), caller, thread_id)
        thread, history = await threads_of(ctx).transcript(owner=caller.owner, thread_id=thread_id)
        return transcript_markdown(thread, history)

    @mcp.tool(
        description=(
            "List your conversations with agents, newest first. status='needs_approval' lists"
            " every thread waiting for approve_call, with its pending calls."
        ),
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    @_tool_errors
    async def list_threads(
        ctx: Context,
        agent: Annotated[
            str | None,
            Field(description="Only this agent's threads", json_schema_extra=enum_or_null(names)),
        ] = None,
        status: Annotated[Status | None, Field(description="Only threads in this status")] = None,
        limit: Annotated[int, Field(description="Page size", ge=1, le=100)] = 20,
        cursor: Annotated[
            str | None, Field(description="next_cursor from the previous page")
        ] = None,
        include_children: Annotated[
            bool, Field(description="Also list threads of delegations between agents")
        ] = False,
    ) -> ThreadList:
        threads, pending, next_cursor = await access.list_threads(
            threads_of(ctx),
            current_caller(),
            agent=agent,
            status=status,
            limit=limit,
            cursor=cursor,
            include_children=include_children,
        )
        return ThreadList(
            threads=[thread_info(t, pending.get(t.id, [])) for t in threads],
            next_cursor=next_cursor,
        )

    @mcp.tool(
        description=(
            "For the agents-mcp view: the thread's result (as get_thread) with the steps of"
            " its latest turn. With since (a previous version), waits up to wait_seconds"
            " for something to change."
        ),
        output_schema=_output_schema(ThreadView),
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
        meta={"ui": {"resourceUri": THREAD_UI, "visibility": ["app"]}},
    )
    @_tool_errors
    async def watch_thread(
        thread_id: Annotated[str, Field(description="The thread to show")],
        ctx: Context,
        since: Annotated[str | None, Field(description="version of the view shown now")] = None,
        wait_seconds: Annotated[
            float, Field(description="Seconds to wait for a change", ge=0, le=60)
        ] = 0.0,
    ) -> ToolResult:
        caller = current_caller()
        await access.require_thread(threads_of(ctx), caller, thread_id)
        view = await thread_view(
            threads_of(ctx),
            owner=caller.owner,
            thread_id=thread_id,
            budget=budget,
            since=since,
            wait=wait_seconds,
        )
        text = f"[thread_id: {view.thread_id} · status: {view.status} · version: {view.version}]"
        meta = {META_THREAD_ID: view.thread_id, META_STATUS: view.status}
        return ToolResult(content=text, structured_content=view, meta=meta)

    add_thread_view(
        mcp,
        lambda: running["threads"],
        owner=_owner,
        auth_required=auth is not None,
        person_decides=person,
    )
    return mcp
