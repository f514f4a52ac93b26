"""The exception tree of agents-mcp.

    AgentsMCPError
    ├── ConfigError            the operator's configuration is wrong (startup, one line)
    ├── StoreError             the thread database failed (full, read-only, locked, unreachable)
    ├── LostClaim              a run's write found the thread no longer held by that run
    │   └── StopRequested      … because cancel_run asked it to stop
    ├── ClientError            the MCP caller asked for something invalid; becomes a tool error
    │   ├── NotFound           unknown agent, thread or call (also: someone else's thread)
    │   ├── InvalidRequest     a malformed argument (empty message, bad cursor, …)
    │   └── Conflict           valid but not now (thread busy, undecided approvals, decision clash)
    └── RunError               a run could not finish; stored on the thread as ``error``
        ├── LLMError           the model endpoint failed after retries (status + provider message)
        ├── MaxIterations      the agent hit its iteration cap
        ├── BudgetExceeded     a delegation tree used up max_total_llm_requests
        ├── DownstreamUnavailable  a server marked ``required`` could not be reached
        ├── OutputInvalid      the final answer did not meet the output schema, repaired or not
        └── InternalError      a bug: only an error id reaches the caller (see internal_error)

Errors raised by foreign libraries (httpx2, aiosqlite, fastmcp) are translated where they
are caught, with ``raise … from exc``. The server maps this tree to MCP results in one place
(``server.answers.tool_errors``).

An unexpected exception (a bug, a broken database) never reaches a client or a model as
text: :func:`internal_error` logs its traceback under a fresh error id and gives back a
short message naming only that id.
"""

from __future__ import annotations

import logging
import secrets

log = logging.getLogger("agents_mcp.errors")


class AgentsMCPError(Exception):
    """Root of every error agents-mcp raises on purpose."""


class ConfigError(AgentsMCPError):
    """The configuration file (or an environment variable it names) is invalid."""


class StoreError(AgentsMCPError):
    """The thread database failed; the message names the cause and what to do about it,
    with the database's location and the driver's words: for the log and the operator.
    ``public`` says what happened without them, for MCP clients (see :func:`store_failure`).
    """

    def __init__(self, message: str, *, public: str = "it failed") -> None:
        super().__init__(message)
        self.public = public


class LostClaim(AgentsMCPError):
    """A run tried to write to a thread it no longer holds (stopped, settled, taken over).

    Raised by the store so that a run that lost its thread can change nothing; the run
    ends quietly. Never reaches a client.
    """


class StopRequested(LostClaim):
    """``cancel_run`` asked the run to stop; it records the stop itself."""


class ClientError(AgentsMCPError):
    """The caller of an MCP tool sent something we cannot act on."""


class NotFound(ClientError):
    """An agent, thread or approval that does not exist for this caller."""


class InvalidRequest(ClientError):
    """An argument is malformed; the message says what is valid."""


class Conflict(ClientError):
    """The request is well formed but cannot be applied in the current state."""


class RunError(AgentsMCPError):
    """A run ended without a final answer. ``kind`` is the stable ``error.type``."""

    kind = "run_error"


class LLMError(RunError):
    """The LLM endpoint failed (after retries), with the provider's status and message."""

    kind = "llm_error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MaxIterations(RunError):
    """The agent asked for more LLM turns than ``max_iterations`` allows."""

    kind = "max_iterations"


class BudgetExceeded(RunError):
    """A top-level run (its delegations included) used up ``max_total_llm_requests``."""

    kind = "budget_exceeded"


class OutputInvalid(RunError):
    """The final answer did not meet the turn's output schema, even after one repair round."""

    kind = "output_invalid"


class InternalError(RunError):
    """Something broke inside agents-mcp; the message names an error id, the log the rest."""

    kind = "internal_error"

    def __init__(self, message: str, *, error_id: str) -> None:
        super().__init__(message)
        self.error_id = error_id


def new_error_id() -> str:
    """A fresh id to find one failure in the server log (``err_`` + 48 random bits)."""
    return "err_" + secrets.token_hex(6)


def internal_error(exc: BaseException, where: str) -> InternalError:
    """Log ``exc`` with its traceback under a new error id; the error to show instead.

    ``where`` says what failed ("run of thread th_…", "tool get_thread") in the log line.
    """
    error_id = new_error_id()
    log.error("%s failed [%s]", where, error_id, exc_info=exc)
    return InternalError(
        f"internal error (id {error_id}); the server log has the details", error_id=error_id
    )


def store_failure(exc: StoreError, where: str) -> str:
    """Log ``exc`` (location and driver text included) under a new error id; the message
    for a client instead: what happened, and the id to find the log line."""
    error_id = new_error_id()
    log.error("%s: %s [%s]", where, exc, error_id)
    return (
        f"agents-mcp could not use its thread database: {exc.public} (error id {error_id};"
        " the server log has the details)"
    )


class DownstreamUnavailable(RunError):
    """A downstream server marked ``required = true`` could not start or be reached."""

    kind = "downstream_unavailable"
