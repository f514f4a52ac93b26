"""The context budget: what of a long thread fits in one model request.

A model has a context window (``context_tokens`` of its ``[models.<name>]`` entry). A
request carries the instructions, the tool list and the conversation, and leaves room for
the answer; when the conversation does not fit, the oldest turns are left out of the
request (never of the thread) and the model is told so (:func:`notice`).

Tokens are estimated from characters: :data:`CHARS_PER_TOKEN` at first, then calibrated
by what the provider reports (the previous request's ``input_tokens`` against the
characters it carried, see :func:`calibrated`). Costs are counted in characters, so a
transcript keeps a running total of its messages and never re-measures old ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents_mcp.messages import Message, ToolSpec

CHARS_PER_TOKEN = 4.0
"""The estimate before the provider has reported any usage."""
CALIBRATION_RANGE = (1.0, 6.0)
"""Characters per token a calibration may settle on (CJK text is near 1, prose near 4)."""
MESSAGE_CHARS = 16
"""What a message costs beyond its text: its role and the wire format's structure."""
DEFAULT_RESERVE = 4096
"""Tokens kept for the answer when neither the agent nor the model sets ``max_tokens``."""
REFILL = 0.75
"""When the oldest turns must go, enough go that the rest fills this share of the budget:
the request then starts at the same message for a while, which keeps prompt caches warm."""


@dataclass(frozen=True)
class ContextWindow:
    """How many tokens a request of an agent may carry."""

    tokens: int
    """The model's context window (``context_tokens``)."""
    reserve: int
    """Tokens kept free for the answer."""

    @classmethod
    def of(cls, context_tokens: int, max_tokens: int | None) -> ContextWindow:
        """The window of a model with ``context_tokens`` answering in ``max_tokens``."""
        if max_tokens is not None:
            return cls(context_tokens, min(max_tokens, context_tokens // 2))
        return cls(context_tokens, min(DEFAULT_RESERVE, context_tokens // 4))

    def limit(self, fixed_chars: int, chars_per_token: float) -> int:
        """Characters of conversation a request may carry beside ``fixed_chars``."""
        return int((self.tokens - self.reserve) * chars_per_token) - fixed_chars


def message_chars(m: Message) -> int:
    """What ``m`` costs in a request, in characters (reasoning payloads go back too)."""
    size = MESSAGE_CHARS + len(m.content or "") + len(m.tool_call_id or "")
    for call in m.tool_calls:
        size += MESSAGE_CHARS + len(call.id) + len(call.name) + len(call.arguments)
    if m.reasoning_payload is not None:
        size += len(json.dumps(m.reasoning_payload.data))
    return size


def fixed_chars(system: str, tools: Sequence[ToolSpec], schema: Mapping[str, Any] | None) -> int:
    """What every request of a run carries besides the conversation, in characters."""
    size = len(system)
    for t in tools:
        size += MESSAGE_CHARS + len(t.name) + len(t.description) + len(json.dumps(t.parameters))
    if schema is not None:  # sent as a format, a tool or instructions: once, roughly
        size += 300 + len(json.dumps(schema))
    return size


def calibrated(sent_chars: int, input_tokens: int, current: float) -> float:
    """Characters per token, from a request of ``sent_chars`` the provider counted as
    ``input_tokens`` (``current`` when it reported nothing)."""
    if input_tokens <= 0 or sent_chars <= 0:
        return current
    low, high = CALIBRATION_RANGE
    return min(high, max(low, sent_chars / input_tokens))


def notice(omitted: int, window: ContextWindow) -> Message:
    """What the model is told in place of the messages left out of a request."""
    return Message(
        role="user",
        content=(
            f"[agents-mcp: the {omitted} oldest messages of this conversation are left out of"
            f" this request to fit the model's context window ({window.tokens} tokens). The"
            " whole transcript stays in the thread; ask the user if you need something from"
            " it.]"
        ),
    )


NOTICE_CHARS = MESSAGE_CHARS + 300
"""What :func:`notice` costs, at most."""
