"""How a call ends up on the wire: our exception tree mapped to MCP in one place
(:func:`tool_errors`, and :func:`resource_errors` for resources), and a thread's summary as
the tool's result (:func:`agent_tool_result`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from fastmcp.exceptions import NotFoundError, ResourceError, ToolError
from fastmcp.tools import ToolResult
from mcp_types import ContentBlock, ResourceLink, TextContent

from agents_mcp.engine.summary import TurnSummary
from agents_mcp.errors import ClientError, NotFound, StoreError, internal_error, store_failure
from agents_mcp.server.pages import thread_uri
from agents_mcp.server.results import (
    META_REPLY_CHARS,
    META_STATUS,
    META_THREAD_ID,
    AgentResult,
    agent_result,
    fit_reply,
    result_text,
)

log = logging.getLogger("agents_mcp.server")

P = ParamSpec("P")
R = TypeVar("R")


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Map the exception tree to MCP: client mistakes become tool errors with our message;
    a failing database says what happened (full, read-only, locked, unreachable …) with
    an error id, its location and the driver's words logged under that id; anything
    unexpected becomes an error id, its traceback logged under that id (FastMCP's own
    masking would say only "Error calling tool")."""

    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ClientError as exc:
            raise ToolError(str(exc)) from exc
        except StoreError as exc:
            raise ToolError(store_failure(exc, f"{fn.__name__} request")) from exc
        except (ToolError, ResourceNotFound):
            raise
        except Exception as exc:
            raise ToolError(str(internal_error(exc, f"{fn.__name__} request"))) from None

    return wrapper


class ResourceNotFound(ResourceError, NotFoundError):
    """A resource that does not exist for the caller (an unknown thread or someone else's,
    a message or part past the end). As a fastmcp ``NotFoundError`` it gets the protocol's
    resource-not-found answer, the one an unknown URI gets (``-32602`` with the URI in
    ``data``, both eras); as a ``ResourceError`` it is logged at its ``log_level``."""


def resource_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """:func:`tool_errors` for a resource, with "not found" as the protocol's own."""

    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except NotFound as exc:
            raise ResourceNotFound(str(exc), log_level=logging.DEBUG) from None

    return tool_errors(wrapper)


def agent_tool_result(
    summary: TurnSummary,
    budget: int,
    extend: Callable[[AgentResult], AgentResult] | None = None,
    *,
    person_decides: bool = False,
) -> ToolResult:
    """The result of ``chat_with_agent`` and the tools shaped like it: the reply cut to
    ``budget`` (with a link to the whole transcript when cut), the thread id in
    ``structuredContent``, the text and ``_meta``; a failed run is an error result."""
    result, full = fit_reply(agent_result(summary, budget), budget)
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
                description=f"The transcript, newest page first ({full} characters in the"
                " last reply)",
                mime_type="text/markdown",
            )
        )
        meta[META_REPLY_CHARS] = full
    # A failed run is an error result (clients flag it to their model), with the same
    # structuredContent and thread id, so it can be continued like any other.
    failed = result.status == "failed"
    return ToolResult(content=content, structured_content=result, meta=meta, is_error=failed)
