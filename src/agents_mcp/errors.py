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
        └── OutputInvalid      the final answer did not meet the output schema, repaired or not

Errors raised by foreign libraries (httpx2, aiosqlite, fastmcp) are translated where they
are caught, with ``raise … from exc``. The server maps this tree to MCP results in one place
(``server._tool_error``).
"""

from __future__ import annotations


class AgentsMCPError(Exception):
    """Root of every error agents-mcp raises on purpose."""


class ConfigError(AgentsMCPError):
    """The configuration file (or an environment variable it names) is invalid."""


class StoreError(AgentsMCPError):
    """The thread database failed; the message names the cause and what to do about it."""


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
