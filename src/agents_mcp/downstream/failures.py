"""How a downstream server failed, in words for the model and the caller (never internals).

Its class name and traceback go to the log (at INFO); the model gets the exception's own
first line, or why a server could not give its tools at all (``unavailable_reason``).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import anyio

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream.stray import NotMCP
from agents_mcp.errors import internal_error

if TYPE_CHECKING:
    from fastmcp import Client

log = logging.getLogger("agents_mcp.downstream")


def too_large(exc: BaseException) -> bool:
    """The SDK's refusal of a server-sent event over the size limit (an ``MCPError``)."""
    return "sse stream failed" in str(exc).lower() and "byte limit" in str(exc).lower()


def is_dead(exc: BaseException, client: Client[Any] | None = None) -> bool:
    """Whether the session is gone, from its state rather than from message text."""
    from mcp import MCPError
    from mcp_types.jsonrpc import CONNECTION_CLOSED

    if isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError):
        return True
    if isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED:
        return True
    return client is not None and not client.is_connected()


_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")
_WHY_CHARS = 300


def why(exc: BaseException, where: str) -> str:
    """Why a call failed, for the model: the exception's own first line, shortened.

    Never its class name or traceback: those go to the log (at INFO, under ``where``).
    A failure without any text gets an error id instead (see ``errors.internal_error``).
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    log.info("%s failed: %s", where, exc, exc_info=exc)
    if isinstance(exc, TimeoutError):  # anyio's fail_after: no text of its own
        return "timed out"
    lines = _ERRNO.sub("", str(exc)).strip().splitlines()
    if not lines:
        return str(internal_error(exc, where))
    text = lines[0].strip()
    return text if len(text) <= _WHY_CHARS else text[: _WHY_CHARS - 1] + "…"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (exception groups of one unwrapped)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        if isinstance(current, BaseExceptionGroup) and len(current.exceptions) == 1:
            current = current.exceptions[0]
        else:
            current = current.__cause__ or current.__context__
    return out


def unavailable_reason(config: DownstreamServerConfig, exc: BaseException) -> str:
    """Why a server could not give its tools, in words the model and the caller can use."""
    causes = _causes(exc)
    for cause in causes:
        if isinstance(cause, NotMCP):
            return str(cause)
    if config.command is not None:
        for cause in causes:
            if isinstance(cause, FileNotFoundError) and cause.filename in (config.command, None):
                return (
                    f"cannot start {config.command!r}: no such program (give its absolute path"
                    " in command; desktop apps start servers with a short PATH)"
                )
            if isinstance(cause, OSError) and cause.filename is not None:
                return f"cannot start {config.command!r}: {cause.strerror}: {cause.filename}"
    if any(isinstance(c, TimeoutError) for c in causes):
        return f"it did not finish starting within init_timeout ({config.init_timeout:g} s)"
    if any(is_dead(c) for c in causes):
        if config.command is not None:
            return "it exited right after starting (the connection closed)"
        return "it closed the connection right after it was opened"
    text = " ".join(why(causes[-1], f"{config.command or config.url}: starting").split())
    if config.url is not None:
        text = f"cannot reach {config.url}: {text}"
    return text if len(text) <= 300 else text[:299] + "…"
