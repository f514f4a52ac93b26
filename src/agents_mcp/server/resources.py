"""The transcript resources (see :mod:`agents_mcp.server.pages` for what each holds).

Each is owner-checked like the tools: a thread of another owner, or of an agent the
caller may not use, does not exist, and answers resource-not-found like an unknown URI.
"""

from __future__ import annotations

from fastmcp import FastMCP
from fastmcp.dependencies import Depends

from agents_mcp.errors import NotFound
from agents_mcp.server.answers import resource_errors
from agents_mcp.server.auth import current_caller
from agents_mcp.server.deps import Deps, deps_of
from agents_mcp.server.pages import PAGE, call_part, message_markdown, message_part, page_markdown


@resource_errors
async def thread_page(
    thread_id: str, before: int | None = None, deps: Deps = Depends(deps_of)
) -> str:
    """``agents-mcp://threads/{thread_id}{?before}``: a page of the transcript."""
    caller = current_caller()
    await deps.access.require_thread(deps.threads, caller, thread_id)
    thread, history = await deps.threads.transcript(owner=caller.owner, thread_id=thread_id)
    return page_markdown(thread, history, before=before)


@resource_errors
async def thread_message(
    thread_id: str, index: int, part: int = 1, deps: Deps = Depends(deps_of)
) -> str:
    """``agents-mcp://threads/{thread_id}/messages/{index}{?part}``: one message whole."""
    caller = current_caller()
    await deps.access.require_thread(deps.threads, caller, thread_id)
    _, history = await deps.threads.transcript(owner=caller.owner, thread_id=thread_id)
    found = next((h for h in history if h.index == index), None)
    if found is None:
        raise NotFound(f"thread {thread_id!r} has no message {index}")
    return message_part(thread_id, index, message_markdown(found.message), part)


@resource_errors
async def call_arguments(
    thread_id: str, call_id: str, part: int = 1, deps: Deps = Depends(deps_of)
) -> str:
    """``agents-mcp://threads/{thread_id}/calls/{call_id}{?part}``: a call's arguments as
    stored: those of its approval (what runs when approved), else as the model asked."""
    caller = current_caller()
    await deps.access.require_thread(deps.threads, caller, thread_id)
    _, history = await deps.threads.transcript(owner=caller.owner, thread_id=thread_id)
    asked = [
        a.arguments for a in await deps.threads.store.approvals(thread_id) if a.call_id == call_id
    ]
    asked += [c.arguments for h in history for c in h.message.tool_calls if c.id == call_id]
    if not asked:
        raise NotFound(f"thread {thread_id!r} has no call {call_id!r}")
    return call_part(thread_id, call_id, asked[0], part)


def register(mcp: FastMCP) -> None:
    """Add the transcript resources to ``mcp``."""
    mcp.resource(
        "agents-mcp://threads/{thread_id}{?before}",
        name="thread transcript",
        description="A thread's transcript as Markdown, newest page first (?before=<n>: the"
        f" messages before message n), about {PAGE} characters a page; a message too long"
        " for a page is cut, with the resource that has it whole",
        mime_type="text/markdown",
    )(thread_page)
    mcp.resource(
        "agents-mcp://threads/{thread_id}/messages/{index}{?part}",
        name="thread message",
        description=f"One message of a thread, whole, in parts of {PAGE} characters"
        " (?part=2, …) when longer",
        mime_type="text/markdown",
    )(thread_message)
    mcp.resource(
        "agents-mcp://threads/{thread_id}/calls/{call_id}{?part}",
        name="tool call arguments",
        description="The arguments of a tool call as stored (for a call waiting for"
        f" approval, exactly what runs if approved), in parts of {PAGE} characters"
        " (?part=2, …) when longer",
        mime_type="text/plain",
    )(call_arguments)
