"""Provider-neutral conversation vocabulary shared by the loop, the LLM adapter and the store.

Plain dataclasses: they cross module boundaries inside the process only. Wire formats
(Chat Completions JSON, MCP results, SQLite rows) are produced at the edges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant", "tool", "event"]
MessageStatus = Literal["started", "waiting", "complete", "error"]


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Token counts reported by the model for one or more requests, and what they cost.

    ``input_tokens`` counts every prompt token, cached or not; ``cache_read_tokens`` (read
    from the provider's prompt cache) and ``cache_write_tokens`` (written to it) are the
    parts of it that the provider reported separately. ``output_tokens`` counts every
    generated token; ``reasoning_tokens`` is the part the model spent thinking, where the
    provider says. ``cost_nanos``: the price of the tokens in billionths of a US dollar,
    from the model's configured ``price`` (None: no price is configured). ``model``: the
    model that answered one request (None for a sum over several).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanos: int | None = None
    model: str | None = None

    @property
    def tokens(self) -> int:
        """Every token, in and out: what token budgets count."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost_nanos is None and other.cost_nanos is None
            else (self.cost_nanos or 0) + (other.cost_nanos or 0)
        )
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cost_nanos=cost,
            model=self.model if self.model == other.model else None,
        )


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """A tool call the model asked for. ``arguments`` is the raw JSON text it produced."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ReasoningPayload:
    """The provider's own record of the model's reasoning, opaque to everything else.

    ``provider`` names the adapter that made it (``"anthropic"``, ``"responses"``); only
    that adapter sends it back, any other drops it. ``data`` is JSON-serialisable (lists,
    dicts, strings, numbers) so the store can keep it as JSON text. Today it is a list: the
    answer's blocks (Anthropic) or output items (Responses) in the order the model produced
    them, the reasoning ones whole (``thinking``/``redacted_thinking`` with their
    signatures; ``reasoning`` items with their ``encrypted_content``) and the others as
    placeholders naming their type and id, which the adapter fills from the message's own
    text and tool calls when it sends the answer back.
    """

    provider: str
    data: Any


@dataclass(frozen=True, kw_only=True)
class Message:
    """One stored step of a thread.

    ``user``: the caller's message. ``assistant``: the model's answer, possibly with tool
    calls and captured reasoning: ``reasoning`` is the readable text (never sent back to a
    model), ``reasoning_payload`` the provider's opaque record of it (sent back only to the
    provider that made it). ``tool``: the result of one tool call, linked by
    ``tool_call_id``; ``status`` is ``started`` while it runs (stored before the tool is
    invoked), ``waiting`` while another agents-mcp waits for approvals, and ``error`` when
    it failed or was interrupted. ``event``: what happened to the run (interrupted,
    cancelled), for people reading the thread; never sent to a model.
    """

    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    reasoning: str | None = None
    reasoning_payload: ReasoningPayload | None = None
    usage: Usage | None = None
    status: MessageStatus = "complete"


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """A tool as offered to the model: name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class LLMRequest:
    """Everything one model call needs. ``settings`` override the model's defaults.

    ``output_schema``: the JSON Schema a final answer must meet; an adapter asks for it
    the provider's own way where it can (see :mod:`agents_mcp.structured`).
    """

    system: str
    messages: Sequence[Message]
    tools: Sequence[ToolSpec] = ()
    settings: Mapping[str, Any] = field(default_factory=dict[str, Any])
    output_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class LLMResponse:
    """The model's answer to one request.

    ``finish_reason`` uses Chat Completions' words where the provider's have an equivalent
    (``stop``, ``tool_calls``, ``length``, ``content_filter``), else the provider's own.
    """

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None
    reasoning_payload: ReasoningPayload | None = None
    usage: Usage = Usage()
    finish_reason: str | None = None
