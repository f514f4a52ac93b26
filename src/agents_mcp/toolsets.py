"""What the loop knows about tools: a ``Toolset`` protocol and the naming rules.

Tools are offered to the model as ``<server>__<tool>``, sanitized to
``^[a-zA-Z0-9_-]{1,64}$``. When sanitizing makes two names equal, or a name is longer
than 64 characters, a short deterministic hash of the original pair is appended, so the
same configuration always yields the same names.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents_mcp.messages import ToolSpec

log = logging.getLogger("agents_mcp.toolsets")

MAX_TOOL_NAME = 64
_INVALID = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True, kw_only=True)
class ToolInfo:
    """A downstream tool as the loop sees it."""

    name: str
    """The name offered to the model."""
    server: str
    tool: str
    """The tool's own name on its server."""
    description: str
    parameters: Mapping[str, Any]
    read_only: bool = False
    peer: bool = False
    """Its server is another agents-mcp (``kind = "agents-mcp"``): its results may relay
    approvals, and its ``get_thread``/``approve_call`` may be called to follow them."""

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


@dataclass(frozen=True, kw_only=True)
class SignIn:
    """A downstream server the run's owner must sign in to before it can go on."""

    server: str
    url: str
    """The authorization server's page, as discovered from the server (never the model's)."""


@dataclass(frozen=True, kw_only=True)
class ToolOutput:
    """A tool result as text for the model; ``ok`` is False for errors of any kind."""

    text: str
    ok: bool = True
    structured: Mapping[str, Any] | None = None
    """The tool's ``structuredContent``, when it has one."""
    meta: Mapping[str, Any] | None = None
    """The result's ``_meta``, when it has one."""
    peer: bool = False
    """It comes from a server configured as another agents-mcp (see ``ToolInfo.peer``);
    only then may it be read as one (``remote.remote_result``)."""
    sign_in: SignIn | None = None
    """The call did not run: its server wants the owner to sign in first."""


@dataclass(frozen=True, kw_only=True)
class Unavailable:
    """A server whose tools could not be offered, and why (for the model and the caller)."""

    server: str
    reason: str
    required: bool = False
    """The server is marked ``required``: without it the run must not go on."""
    sign_in: SignIn | None = None
    """Its tools cannot be listed until the run's owner signs in."""


@dataclass(frozen=True, kw_only=True)
class Available:
    """An agent's tools right now, and the servers that could not provide theirs."""

    tools: Sequence[ToolInfo]
    unavailable: Sequence[Unavailable] = ()


class Toolset(Protocol):
    """The tools one agent may use, whatever servers they come from."""

    async def available(self) -> Available: ...

    async def call(
        self,
        tool: ToolInfo,
        arguments: Mapping[str, Any],
        *,
        meta: dict[str, Any] | None = None,
        on_elicit: Any = None,
        call_id: str | None = None,
    ) -> ToolOutput:
        """Call ``tool``. ``on_elicit`` answers the questions its server asks during the
        call (``downstream.ElicitHandler``; None: nobody is asked), as asked during
        ``call_id`` (the model's id of the call)."""
        ...


def _hash(server: str, tool: str) -> str:
    return hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:6]


def llm_tool_names(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Valid, unique model-facing names for ``(server, tool)`` pairs.

    A name that is already valid stays ``server__tool``. Names that collide after
    sanitizing, or exceed 64 characters, get ``_<6 hex>`` (truncated to fit).
    """
    plain = {pair: _INVALID.sub("_", f"{pair[0]}__{pair[1]}") for pair in pairs}
    counts: dict[str, int] = {}
    for name in plain.values():
        counts[name] = counts.get(name, 0) + 1
    out: dict[tuple[str, str], str] = {}
    for pair, name in plain.items():
        exact = name == f"{pair[0]}__{pair[1]}"  # needed no sanitizing: it keeps its name
        if len(name) <= MAX_TOOL_NAME and (counts[name] == 1 or exact):
            out[pair] = name
        else:
            suffix = "_" + _hash(*pair)
            out[pair] = name[: MAX_TOOL_NAME - len(suffix)] + suffix
            why = "collides with another tool" if counts[name] > 1 else "is over 64 characters"
            log.info(
                "tool %s of server %s offered as %s: %s %s", pair[1], pair[0], out[pair], name, why
            )
    return out


class WithoutTools:
    """A toolset less some tools of its servers (``disabled_tools``): they are never
    offered, and a call of one (a model guessing a name) is refused."""

    def __init__(self, inner: Toolset, hidden: Mapping[str, Sequence[str]]) -> None:
        self._inner = inner
        self._hidden = {server: frozenset(tools) for server, tools in hidden.items()}

    def hides(self, server: str, tool: str) -> bool:
        return tool in self._hidden.get(server, ())

    async def available(self) -> Available:
        found = await self._inner.available()
        tools = [t for t in found.tools if not self.hides(t.server, t.tool)]
        return Available(tools=tools, unavailable=found.unavailable)

    async def call(
        self,
        tool: ToolInfo,
        arguments: Mapping[str, Any],
        *,
        meta: dict[str, Any] | None = None,
        on_elicit: Any = None,
        call_id: str | None = None,
    ) -> ToolOutput:
        if self.hides(tool.server, tool.tool):
            return ToolOutput(
                text=f"Error: tool {tool.name!r} is disabled for this agent", ok=False
            )
        return await self._inner.call(
            tool, arguments, meta=meta, on_elicit=on_elicit, call_id=call_id
        )
