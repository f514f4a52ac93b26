"""The spans of a run, named and dressed as the OpenTelemetry GenAI conventions say.

::

    invoke_agent <agent>          INTERNAL  one run (a delegation's run: under the call)
    ├─ chat <model>               CLIENT    one model request: usage, finish reason, retries
    ├─ execute_tool <server__tool> CLIENT   one downstream call (MCP tools/call); its
    │                                       _meta carries this span's traceparent
    └─ execute_tool agent__<name> INTERNAL  a delegation, with the child's invoke_agent

A run's span context is stored with its thread; the run that resumes the turn (after an
approval, a restart, on another replica) links to it, so no resumed run is an orphan.
Decisions on approvals are events of the run that carries them out (what was decided,
how long the call waited, by whom); a pause ends the span with an event naming the calls
it waits for. Message contents, arguments and results are recorded only with
``[server.telemetry] capture_content = true``. Everything here costs nothing while
telemetry is off: the facade hands out a span that does nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

from agents_mcp import telemetry
from agents_mcp.engine.agent import DELEGATION_SERVER, Agent, Run
from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall, Usage
from agents_mcp.store import Approval
from agents_mcp.toolsets import ToolInfo

PROVIDERS = {"openai": "openai", "responses": "openai", "anthropic": "anthropic"}
"""``gen_ai.provider.name`` of each ``provider`` of the config (others: their own name)."""


def _agent(r: Run) -> dict[str, Any]:
    return {
        "gen_ai.agent.name": r.agent.name,
        "gen_ai.conversation.id": r.thread_id,
        "gen_ai.provider.name": provider(r.agent),
        "gen_ai.request.model": r.agent.model or None,
    }


def provider(agent: Agent) -> str:
    return PROVIDERS.get(agent.provider, agent.provider or "unknown")


@asynccontextmanager
async def agent_run(r: Run, resumed: bool) -> AsyncIterator[telemetry.Span]:
    """The ``invoke_agent`` span of a run, linked to the thread's previous run."""
    if not telemetry.enabled():
        yield telemetry.NOTHING
        return
    stored = await r.store.trace_of(r.thread_id)
    links: list[telemetry.Link] = []
    if stored is not None:
        kind = "resumes" if resumed else "previous_turn"
        links.append((stored[0], stored[1], {"agents_mcp.link.type": kind}))
    attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.description": r.agent.description,
        "agents_mcp.run.resumed": resumed,
        "agents_mcp.delegation.depth": max(len(r.chain) - 1, 0),
        **_agent(r),
    }
    flight = {"gen_ai.agent.name": r.agent.name}
    telemetry.record("agents_mcp.runs.active", 1, flight)
    started = time.perf_counter()
    try:
        with telemetry.span(
            f"invoke_agent {r.agent.name}", "internal", attributes, links=links
        ) as span:
            context = span.traceparent()
            if context is not None:
                await r.store.save_trace(r.thread_id, *context)
            yield span
    finally:
        telemetry.record("agents_mcp.runs.active", -1, flight)
        telemetry.record("gen_ai.invoke_agent.duration", time.perf_counter() - started, flight)


def chat_span(r: Run, request: LLMRequest) -> AbstractContextManager[telemetry.Span]:
    """The ``chat <model>`` span of one model request."""
    if not telemetry.enabled():
        return telemetry.OFF
    settings = request.settings
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.max_tokens": settings.get("max_tokens"),
        "gen_ai.request.temperature": settings.get("temperature"),
        "gen_ai.request.top_p": settings.get("top_p"),
        "gen_ai.output.type": "json" if request.output_schema is not None else "text",
        **_agent(r),
    }
    if telemetry.capture_content():
        attributes["gen_ai.system_instructions"] = request.system
        attributes["gen_ai.input.messages"] = json.dumps(
            [_message(m) for m in request.messages], ensure_ascii=False
        )
        attributes["gen_ai.tool.definitions"] = json.dumps(
            [{"type": "function", "name": t.name} for t in request.tools]
        )
    return telemetry.span(f"chat {r.agent.model or r.agent.provider}", "client", attributes)


def chat_usage(
    span: telemetry.Span, agent: Agent, response: LLMResponse, usage: Usage, seconds: float
) -> None:
    """What one answered request used, on its span and in the metrics."""
    cost = None if usage.cost_nanos is None else usage.cost_nanos / 1e9
    span.set(
        {
            "gen_ai.response.finish_reasons": [response.finish_reason or "stop"],
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens or None,
            "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens or None,
            "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens or None,
            "agents_mcp.usage.cost_usd": cost,
        }
    )
    if telemetry.capture_content():
        answer = Message(role="assistant", content=response.content, tool_calls=response.tool_calls)
        span.set({"gen_ai.output.messages": json.dumps([_message(answer)], ensure_ascii=False)})
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider(agent),
        "gen_ai.request.model": agent.model or None,
    }
    for kind, count in (("input", usage.input_tokens), ("output", usage.output_tokens)):
        telemetry.record("gen_ai.client.token.usage", count, {**base, "gen_ai.token.type": kind})
    telemetry.record("gen_ai.client.operation.duration", seconds, base)
    if cost is not None:
        telemetry.record("agents_mcp.cost", cost, {**base, "gen_ai.agent.name": agent.name})


def _message(m: Message) -> dict[str, Any]:
    """A message in the GenAI conventions' shape (role and parts)."""
    parts: list[dict[str, Any]] = []
    if m.role == "tool":
        parts.append({"type": "tool_call_response", "id": m.tool_call_id, "result": m.content})
        return {"role": "tool", "parts": parts}
    if m.content:
        parts.append({"type": "text", "content": m.content})
    for c in m.tool_calls:
        parts.append({"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments})
    return {"role": m.role, "parts": parts}


def tool_span(r: Run, call: ToolCall, info: ToolInfo) -> AbstractContextManager[telemetry.Span]:
    """The ``execute_tool`` span of one call: an MCP ``tools/call`` to a downstream server
    (CLIENT), or a delegation to another agent (INTERNAL)."""
    if not telemetry.enabled():
        return telemetry.OFF
    delegation = info.server == DELEGATION_SERVER
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": info.name,
        "gen_ai.tool.call.id": call.id,
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": info.description[:300],
        "gen_ai.agent.name": r.agent.name,
        "gen_ai.conversation.id": r.thread_id,
    }
    if not delegation:
        attributes |= {"mcp.method.name": "tools/call", "agents_mcp.server": info.server}
    if telemetry.capture_content():
        attributes["gen_ai.tool.call.arguments"] = call.arguments
    kind: telemetry.Kind = "internal" if delegation else "client"
    return telemetry.span(f"execute_tool {info.name}", kind, attributes)


def tool_result(
    span: telemetry.Span, info: ToolInfo, ok: bool, text: str | None, seconds: float
) -> None:
    """How a call ended, on its span and in the metrics."""
    if not telemetry.enabled():
        return
    if not ok:
        span.fail("tool_error", (text or "")[:200])
    if telemetry.capture_content() and text is not None:
        span.set({"gen_ai.tool.call.result": text})
    if info.server != DELEGATION_SERVER:
        telemetry.record(
            "mcp.client.operation.duration",
            seconds,
            {
                "mcp.method.name": "tools/call",
                "gen_ai.tool.name": info.tool,
                "gen_ai.operation.name": "execute_tool",
                "error.type": None if ok else "tool_error",
            },
        )


def decisions(owner: str, calls: Sequence[ToolCall], every: Sequence[Approval]) -> None:
    """One event per decision this step carries out: what was decided, how long the
    call waited for it, and by whom (the thread's owner: only they may decide)."""
    if not telemetry.enabled():
        return
    names = {c.id: c.name for c in calls}
    for a in every:
        if a.call_id not in names or a.status not in ("approved", "denied") or not a.decided_at:
            continue
        waited = _stamp(a.decided_at) - _stamp(a.requested_at)
        telemetry.event(
            "agents_mcp.approval",
            {
                "gen_ai.tool.name": names[a.call_id],
                "gen_ai.tool.call.id": a.call_id,
                "agents_mcp.approval.decision": a.status,
                "agents_mcp.approval.decided_by": owner or None,
                "agents_mcp.approval.wait_seconds": round(waited, 3),
                "agents_mcp.approval.requested_at": a.requested_at,
                "agents_mcp.approval.decided_at": a.decided_at,
            },
        )


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
