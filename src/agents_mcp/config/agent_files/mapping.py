"""From a :class:`Draft` to our entries: the agent's model through ``[model_aliases]``, its
servers and allowlist from each format's tool references, and its inline servers in our
``[mcpServers]`` shape (expanded; a server naming an unset variable is left out).

Tool references are accepted in every spelling: Claude Code's ``mcp__server__tool`` (and
``mcp__server``, ``mcp__server__*``), Copilot's ``server/tool`` (``server/*``) and ours,
``server__tool``. A name that is none of these, or names no server of the agent or the
config, is a built-in tool of another host (``Read``, ``Bash``, ``search/codebase``…)
and is listed as ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from agents_mcp.config.agent_files.drafts import Draft, Unreadable
from agents_mcp.config.errors import describe, dotted, expand, walk
from agents_mcp.config.servers import DownstreamServerConfig

AGENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DELEGATE = re.compile(r"(?:Agent|Task)\((.*)\)")
_DELEGATE_TOOLS = {"agent", "custom-agent", "task"}
INHERIT = "inherit"
_BUILT_IN = "a built-in tool of another host: agents-mcp agents have only MCP tools"

Allow = dict[str, set[str] | None]
"""Server name -> the tools allowed (None: all of them)."""


@dataclass
class Mapped:
    """A draft turned into entries: the agent's table and its inline servers."""

    name: str
    agent: dict[str, Any]
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Inline servers by their name in the file (renamed later on a clash)."""
    delegates: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Known:
    """What the config defines, which files refer to."""

    models: frozenset[str]
    aliases: Mapping[str, str]
    servers: Mapping[str, Any]
    environ: Mapping[str, str]
    approval: str


def slug(name: str) -> str:
    """``name`` as an agent name: ``API Architect`` -> ``api-architect``."""
    if AGENT_NAME.fullmatch(name):
        return name
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:64] or "agent"


def resolve_model(draft: Draft, known: Known) -> str:
    """The ``[models]`` name of the first model the file names that maps (else inherit)."""
    wanted = draft.models or [INHERIT]
    for i, model in enumerate(wanted):
        target = model if model in known.models else known.aliases.get(model)
        if target is not None:
            if i:
                draft.note("model", "converted", f"{model!r}: {wanted[:i]} have no mapping")
            elif target != model:
                draft.note("model", "converted", f"{model!r} is model {target!r} ([model_aliases])")
            return target
    valid = ", ".join(sorted(known.models)) or "(none defined)"
    first = wanted[0]
    raise Unreadable(
        f'model {first!r} needs a mapping: add [model_aliases] {_toml_key(first)} = "<model>"'
        f" (models: {valid})"
    )


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'


def mcp_ref(ref: str, servers: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """``(server, tool)`` (tool None: every tool) of an MCP tool reference, else None."""
    if ref.startswith("mcp__"):
        server, sep, tool = ref[5:].partition("__")
        return server, tool if sep and tool not in ("", "*") else None
    for sep in ("/", "__"):
        server, found, tool = ref.partition(sep)
        if found and server in servers:
            return server, None if tool in ("", "*") else tool
    return None


def _add(allow: Allow, server: str, tool: str | None) -> None:
    if tool is None:
        allow[server] = None
    elif server not in allow:
        allow[server] = {tool}
    elif (tools := allow[server]) is not None:
        tools.add(tool)


def _chosen(draft: Draft, known: Known) -> Allow:
    """The servers whose tools the agent gets, from its ``tools`` (Claude Code and Copilot
    semantics: a list without MCP entries means no MCP tools)."""
    servers = {**known.servers, **draft.servers}
    allow: Allow = {}
    all_tools = draft.tools is None or "*" in draft.tools
    if all_tools:
        for name in [*draft.servers, *draft.server_refs]:
            allow[name] = None
    for ref in draft.tools or []:
        if ref == "*":
            continue
        if m := _DELEGATE.fullmatch(ref):
            draft.delegates.extend(n.strip() for n in m[1].split(",") if n.strip())
        elif ref.lower() in _DELEGATE_TOOLS:
            if draft.format != "copilot":
                draft.note(f"tools: {ref}", "ignored", "name the agents: Agent(a, b)")
        elif (pair := mcp_ref(ref, servers)) is not None:
            _add(allow, *pair)
        else:
            draft.note(f"tools: {ref}", "ignored", _BUILT_IN)
    if not all_tools:
        for name in [*draft.servers, *draft.server_refs]:
            if name not in allow:
                draft.note(f"servers: {name}", "ignored", "no entry in tools names it")
    asked = {t.lower() for t in draft.tools or []}
    if (
        draft.format == "copilot"
        and draft.delegates
        and not all_tools
        and not _DELEGATE_TOOLS & asked
    ):
        draft.note("agents", "ignored", "tools has no 'agent' entry")
        draft.delegates = []
    return allow


def _denied(draft: Draft, allow: Allow) -> dict[str, set[str]]:
    """``disallowedTools`` and each server's ``disabled_tools``: what the agent never sees."""
    deny: dict[str, set[str]] = {n: set(s.deny) for n, s in draft.servers.items() if s.deny}
    for ref in draft.deny:
        if ref in ("mcp__*", "mcp__"):
            allow.clear()
        elif (pair := mcp_ref(ref, {**draft.servers, **allow})) is not None:
            server, tool = pair
            if tool is None:
                allow.pop(server, None)
            else:
                deny.setdefault(server, set()).add(tool)
        else:
            draft.note(f"disallowedTools: {ref}", "ignored", _BUILT_IN)
    for name, inline in draft.servers.items():
        if inline.allow is not None and name in allow:
            mine = allow[name]
            allow[name] = set(inline.allow) if mine is None else mine & set(inline.allow)
    for server, tools in deny.items():  # an explicit allowlist simply loses them
        if (listed := allow.get(server)) is not None:
            listed -= tools
    return {s: t for s, t in deny.items() if s in allow and allow[s] is None}


def _server_entries(draft: Draft, allow: Allow, known: Known) -> dict[str, dict[str, Any]]:
    """The inline servers the agent uses, expanded and checked; unusable ones noted."""
    out: dict[str, dict[str, Any]] = {}
    for name in list(allow):
        if name not in draft.servers:
            if name not in known.servers:
                draft.note(
                    f"servers: {name}",
                    "problem",
                    f"server {name!r} is not defined: add [mcpServers.{name}] to the config",
                )
                del allow[name]
            continue
        problems: list[tuple[tuple[int | str, ...], str]] = []
        entry = expand(draft.servers[name].entry, (), known.environ, problems)
        error = "; ".join(f"{dotted(loc)}: {m}" if loc else m for loc, m in problems)
        if not error:
            try:
                DownstreamServerConfig.model_validate(entry)
            except ValidationError as exc:
                error = "; ".join(_server_error(e) for e in exc.errors(include_url=False))
        if error:
            draft.note(f"servers: {name}", "problem", f"server {name!r} left out: {error}")
            del allow[name]
        else:
            out[name] = entry
    return out


def _server_error(error: Any) -> str:
    loc, owner = walk(error["loc"], DownstreamServerConfig)
    return f"{dotted(loc)}: {describe(error, owner)}" if loc else describe(error, owner)


def map_draft(draft: Draft, known: Known) -> Mapped:
    """The entries of one file. Raises :class:`Unreadable` when it cannot be an agent."""
    name = slug(draft.name)
    if name != draft.name and draft.format != "copilot":
        draft.note("name", "converted", f"{draft.name!r} is agent {name!r}")
    model = resolve_model(draft, known)
    allow = _chosen(draft, known)
    deny = _denied(draft, allow)
    servers = _server_entries(draft, allow, known)
    agent: dict[str, Any] = {
        "description": draft.description,
        "instructions": draft.instructions,
        "model": model,
        "servers": list(allow),
        "tools": {s: sorted(t) for s, t in allow.items() if t is not None},
        "require_approval": known.approval,
    }
    if deny:
        agent["disabled_tools"] = {s: sorted(t) for s, t in deny.items()}
    if draft.max_turns is not None:
        agent["max_iterations"] = draft.max_turns
    return Mapped(name, agent, servers, [slug(d) for d in draft.delegates])
