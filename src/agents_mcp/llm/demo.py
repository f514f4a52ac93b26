"""The bundled ``provider = "demo"`` model: deterministic, no API key, no network."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse, ToolCall, Usage


class DemoLLM:
    """A deterministic model for trying agents-mcp without an API key.

    * ``call <tool> {json}`` in the user's message calls that tool (by its model-facing
      name, e.g. ``call time__now {}``); ``call <tool>`` alone calls it with ``{}``.
    * After tool results it reports them; otherwise it echoes the message.
    """

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        last = request.messages[-1] if request.messages else None
        if last is not None and last.role == "tool":
            results = []
            for m in reversed(request.messages):
                if m.role != "tool":
                    break
                results.append(m.content or "")
            text = "Tool results:\n" + "\n".join(reversed(results))
        else:
            said = (last.content or "") if last is not None else ""
            call = _demo_call(said, [t.name for t in request.tools])
            if call is not None:
                return LLMResponse(content=None, tool_calls=(call,), finish_reason="tool_calls")
            names = ", ".join(t.name for t in request.tools) or "none"
            text = f"You said: {said}\n(demo model; tools: {names}; try 'call <tool> {{json}}')"
        if on_text is not None:
            await on_text(text)
        return LLMResponse(content=text, usage=Usage(), finish_reason="stop")


def _demo_call(text: str, tools: Sequence[str]) -> ToolCall | None:
    words = text.strip().split(maxsplit=2)
    if len(words) < 2 or words[0].lower() != "call" or words[1] not in tools:
        return None
    args = words[2] if len(words) == 3 else "{}"
    return ToolCall(id=f"call_{secrets.token_hex(4)}", name=words[1], arguments=args)
