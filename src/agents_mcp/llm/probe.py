"""One tiny request that shows what a configured model can do (for ``agents-mcp check``)."""

from __future__ import annotations

from dataclasses import dataclass

from agents_mcp.llm import LLM
from agents_mcp.messages import LLMRequest, Message, ToolSpec, Usage

PING = ToolSpec(
    name="ping",
    description="Answers pong. Call it once when asked to.",
    parameters={"type": "object", "properties": {}},
)
_ASK = "This is a connectivity check: call the ping tool once. If you cannot, reply with: ok"


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """What one request with one offered tool and a text reader came back with."""

    reply: str | None
    """The answer's text, if any."""
    tool_call: str | None
    """The name of the tool the model called, if it called one (tool use works)."""
    fragments: int
    """How many pieces the text arrived in (more than one: it was streamed)."""
    reasoning: bool
    """Whether the model reported reasoning."""
    usage: Usage


async def probe(llm: LLM) -> ProbeResult:
    """Send one request offering :data:`PING`, read as a terminal would; raise LLMError."""
    fragments: list[str] = []

    async def on_text(text: str) -> None:
        fragments.append(text)

    request = LLMRequest(system="", messages=[Message(role="user", content=_ASK)], tools=[PING])
    response = await llm.complete(request, on_text=on_text)
    return ProbeResult(
        reply=response.content,
        tool_call=response.tool_calls[0].name if response.tool_calls else None,
        fragments=len(fragments),
        reasoning=response.reasoning is not None,
        usage=response.usage,
    )
