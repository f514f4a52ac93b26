"""The tools as each caller sees them: ``chat_with_agent`` and ``list_threads`` name only
the agents the caller may use, and with ``approver = "person"`` a client showing the
thread view reads that the person decides. Rewritten per request (both protocol eras).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastmcp import Context
from fastmcp.server.middleware import CallNext, MiddlewareContext
from fastmcp.tools import Tool
from mcp_types import (
    ListToolsRequest,
)
from pydantic import JsonValue

from agents_mcp.config import Config
from agents_mcp.server.access import Access
from agents_mcp.server.auth import current_caller
from agents_mcp.server.ui.apps import ListingView, renders_apps

_DESCRIPTION_BUDGET = 1800  # clients choke on long tool descriptions; stay under 2 KB


def enum_or_null(names: list[JsonValue]) -> Callable[[dict[str, Any]], None]:
    """Limit the string branch of an optional argument's schema to ``names``.

    An ``enum`` beside ``anyOf`` would apply to null as well and refuse the default.
    """

    def extra(schema: dict[str, Any]) -> None:
        for branch in schema.get("anyOf", []):
            if branch.get("type") == "string":
                branch["enum"] = names

    return extra


def chat_description(config: Config, names: Sequence[str], *, person_decides: bool = False) -> str:
    """The ``chat_with_agent`` description, listing the agents ``names``; with
    ``person_decides``, the model is told that the person decides in the view."""
    approval = (
        "the person decides in the view shown with the result, then call get_thread"
        if person_decides
        else "ask the user and call approve_call"
    )
    head = (
        "Send a message to an agent and get its answer. Each agent has its own model,"
        " instructions and tools. Without thread_id a new conversation starts; pass the"
        f" thread_id of a previous result to continue it. status needs_approval: {approval};"
        " status running: call get_thread, or, when a tool asks the user (pending_questions),"
        " ask them and call answer_question.\nAgents:\n"
    )
    budget = max(40, (_DESCRIPTION_BUDGET - len(head)) // max(1, len(names)))
    lines = []
    for name in names:
        agent = config.agents[name]
        line = f"- {name}: {' '.join(agent.description.split())}"
        if agent.personalities:
            line += f" (personalities: {', '.join(agent.personalities)})"
        lines.append(line if len(line) <= budget else line[: budget - 1] + "…")
    return head + ("\n".join(lines) or "(none: no agent is open to you)")


def with_agents(schema: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """An input schema whose ``agent`` property lists only ``names`` (in its string branch,
    when it is optional: an enum beside ``anyOf`` would refuse the null default)."""

    def narrowed(branch: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in branch.items() if k != "enum"}
        if names:  # an empty enum would be an invalid schema; the description says why
            out["enum"] = list(names)
        return out

    agent = dict(schema["properties"]["agent"])
    if "anyOf" in agent:
        agent["anyOf"] = [narrowed(b) if b.get("type") == "string" else b for b in agent["anyOf"]]
    else:
        agent = narrowed(agent)
    return {**schema, "properties": {**schema["properties"], "agent": agent}}


class CallerView(ListingView):
    """``tools/list`` as the caller sees it: ``chat_with_agent`` and ``list_threads`` name
    only the agents it may use, and with ``approver = "person"`` a client that shows the
    thread view reads that the person decides. Per request: both protocol eras."""

    listings = frozenset({"tools/list"})

    def __init__(
        self,
        config: Callable[[], Config],
        access: Access,
        on_list: Callable[[Context | None], None] | None = None,
    ) -> None:
        self._config = config
        self._access = access
        self._registered = config()
        """The config the tools were registered with (agent files may change since)."""
        self._person = config().server.approver == "person"
        self._on_list = on_list

    async def on_list_tools(
        self,
        context: MiddlewareContext[ListToolsRequest],
        call_next: CallNext[ListToolsRequest, Sequence[Tool]],
    ) -> Sequence[Tool]:
        tools = await call_next(context)
        if self._on_list is not None:
            self._on_list(context.fastmcp_context)
        names = self._access.agents_for(current_caller())
        person = self._person and renders_apps(context.fastmcp_context)
        current = self._config()
        if current is self._registered and len(names) == len(current.agents) and not person:
            return tools
        return [self._narrowed(tool, names, person) for tool in tools]

    def _narrowed(self, tool: Tool, names: list[str], person: bool) -> Tool:
        if tool.name not in ("chat_with_agent", "list_threads"):
            return tool
        update: dict[str, Any] = {"parameters": with_agents(tool.parameters, names)}
        if tool.name == "chat_with_agent":
            update["description"] = chat_description(self._config(), names, person_decides=person)
        return tool.model_copy(update=update)
