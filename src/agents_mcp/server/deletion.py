"""The ``delete_thread`` tool: the end of a thread's life, asked by its owner.

Only a finished thread is deleted (completed, failed or cancelled), with every
delegation under it; a delegation is deleted with its top-level thread, never alone.
What goes, and when it is refused, is ``threads.lifecycle``'s.
"""

from __future__ import annotations

from typing import Annotated

from fastmcp import FastMCP
from fastmcp.dependencies import Depends
from fastmcp.tools import Tool, ToolResult
from fastmcp.utilities.json_schema import dereference_refs
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from agents_mcp.server.answers import tool_errors
from agents_mcp.server.auth import current_caller
from agents_mcp.server.deps import Deps, deps_of
from agents_mcp.server.results import META_THREAD_ID
from agents_mcp.threads.lifecycle import MCP_HINTS
from agents_mcp.threads.lifecycle import delete_thread as delete

DESCRIPTION = (
    "Delete one of your threads for good: its messages, tool calls and approvals, and the"
    " threads of its delegations. Only a finished thread (completed, failed or cancelled)"
    " can be deleted: stop a running one with cancel_run first. A delegation's thread is"
    " deleted with its top-level thread, not alone. Afterwards the thread is not found."
)
ANNOTATIONS = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


class DeletedThread(BaseModel):
    """The result of ``delete_thread``."""

    thread_id: str
    agent: str
    deleted_threads: list[str] = Field(
        description="Every thread deleted: this one first, then its delegations"
    )


@tool_errors
async def delete_thread(
    thread_id: Annotated[str, Field(description="The finished thread to delete")],
    deps: Deps = Depends(deps_of),
) -> ToolResult:
    caller = current_caller()
    await deps.access.require_thread(deps.threads, caller, thread_id)
    gone = await delete(
        deps.threads.store, owner=caller.owner, thread_id=thread_id, hints=MCP_HINTS
    )
    result = DeletedThread(
        thread_id=gone.thread.id, agent=gone.thread.agent, deleted_threads=list(gone.threads)
    )
    others = len(gone.threads) - 1
    text = f"Deleted thread {result.thread_id} (agent {result.agent})" + (
        f" and {others} delegation thread(s) under it." if others else "."
    )
    return ToolResult(content=text, structured_content=result, meta={META_THREAD_ID: thread_id})


def register(mcp: FastMCP) -> None:
    """Add ``delete_thread`` to ``mcp``."""
    schema = dereference_refs(DeletedThread.model_json_schema())
    tool = Tool.from_function(
        delete_thread, description=DESCRIPTION, output_schema=schema, annotations=ANNOTATIONS
    )
    mcp.add_tool(tool)
