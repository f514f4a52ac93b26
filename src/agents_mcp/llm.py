"""The LLM seen by the loop: one async ``complete()``.

(A helper is filling in the OpenAI-compatible adapter below this protocol.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from agents_mcp.messages import LLMRequest, LLMResponse

TextCallback = Callable[[str], Awaitable[None]]
"""Called with each streamed text fragment as it arrives."""


class LLM(Protocol):
    """Anything that can answer an :class:`LLMRequest`."""

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse: ...
