"""How a call ends up on the wire: our exception tree mapped to MCP in one place
(:func:`tool_errors`), and a thread's summary as the tool's result (:func:`agent_tool_result`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult
from mcp_types import ContentBlock, ResourceLink, TextContent

from agents_mcp.engine.summary import TurnSummary
from agents_mcp.errors import ClientError, StoreError, internal_error
from agents_mcp.server.results import (
    META_REPLY_CHARS,
    META_STATUS,
    META_THREAD_ID,
    META_USAGE,
    AgentResult,
    agent_result,
    fit_reply,
    result_text,
    thread_uri,
)

log = logging.getLogger("agents_mcp.server")

P = ParamSpec("P")
R = TypeVar("R")


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
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
    result, full = fit_reply(agent_result(summary), budget)
    if extend is not None:
        result = extend(result)
    text = result_text(result, person_decides=person_decides, cancelled=summary.cancelled)
    content: list[ContentBlock] = [TextContent(type="text", text=text)]
    meta: dict[str, Any] = {
        META_THREAD_ID: result.thread_id,
        META_STATUS: result.status,
        META_USAGE: result.usage.model_dump(exclude_none=True),
    }
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
    failed = result.status in ("failed", "budget_exceeded")
    return ToolResult(content=content, structured_content=result, meta=meta, is_error=failed)
