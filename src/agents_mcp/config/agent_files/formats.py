"""Reading the three formats into :class:`Draft`: Claude Code subagents (``.claude/agents/
*.md``), GitHub Copilot custom agents (``.github/agents/*.agent.md``) and Codex custom
agents (``.codex/agents/*.toml``). Every field the file has is either used or noted as
ignored, with why; nothing is dropped silently.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from agents_mcp.config.agent_files.drafts import Draft, Format, InlineServer, Unreadable

_HOST = "a setting of the host application with no counterpart in agents-mcp"
CLAUDE_IGNORED = {
    "permissionMode": "not honoured: approvals follow agents-mcp's require_approval",
    "skills": "Claude Code skills have no counterpart",
    "hooks": "Claude Code hooks have no counterpart",
    "memory": "no persistent agent memory directory",
    "background": "not needed: a run goes on in the background once a call stops waiting",
    "effort": "no per-agent reasoning effort",
    "isolation": "no git worktree isolation",
    "color": "display only",
    "initialPrompt": "used only when Claude Code runs the agent as its main session",
}
COPILOT_IGNORED = {
    "target": "informational: the agent is served to every client",
    "disable-model-invocation": _HOST,
    "user-invocable": _HOST,
    "user-invokable": _HOST,
    "infer": _HOST,
    "handoffs": "VS Code buttons have no counterpart",
    "argument-hint": "VS Code input hint",
    "metadata": "annotations only",
    "hooks": "VS Code hooks have no counterpart",
}
CODEX_IGNORED = {
    "nickname_candidates": "display nicknames",
    "model_reasoning_effort": "no per-agent reasoning effort",
    "model_provider": "the model is chosen through [models] and [model_aliases]",
    "profile": "the model is chosen through [models] and [model_aliases]",
    "sandbox_mode": "no sandbox or shell in agents-mcp",
    "approval_policy": "not honoured: approvals follow agents-mcp's require_approval",
    "web_search": "no built-in web search",
    "features": "Codex features have no counterpart",
    "skills": "Codex skills have no counterpart",
    "tools": "Codex built-in tools have no counterpart",
    "model_verbosity": "no per-agent verbosity",
}
SERVER_IGNORED = {
    "headersHelper": "no dynamic headers (write the header, with ${VAR} for secrets)",
    "http_headers_helper": "no dynamic headers (write the header, with ${VAR} for secrets)",
    "oauth": "no OAuth sign-in for downstream servers",
    "oauth_resource": "no OAuth sign-in for downstream servers",
    "scopes": "no OAuth sign-in for downstream servers",
    "auth": "no OAuth sign-in for downstream servers",
    "alwaysLoad": "tools are always listed",
    "default_tools_approval_mode": "not honoured: approvals follow agents-mcp's require_approval",
    "supports_parallel_tool_calls": "calls already run one at a time per agent",
    "environment_id": "no Codex environments",
}


def detect(path: Path) -> Format | None:
    """The format of ``path`` by its name and folder; None: not an agent file."""
    name = path.name.lower()
    if name.endswith(".toml"):
        return "codex"
    if not name.endswith(".md"):
        return None
    parts = {p.lower() for p in path.parts}
    return "copilot" if name.endswith(".agent.md") or ".github" in parts else "claude-code"


def read(path: Path, text: str) -> Draft:
    """The draft of one file. Raises :class:`Unreadable` when it is no agent."""
    kind = detect(path)
    if kind == "codex":
        return _codex(path, text)
    head, body = _front_matter(text)
    return _claude(path, head, body) if kind == "claude-code" else _copilot(path, head, body)


# --- shared pieces -------------------------------------------------------------------------


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    m = re.match(r"\A\ufeff?---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", text, re.S | re.M)
    if m is None:
        raise Unreadable("no YAML front matter (--- lines at the top)")
    try:
        head = yaml.safe_load(m[1]) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 2}: " if mark is not None else ""
        raise Unreadable(f"{where}YAML syntax error in the front matter") from None
    if not isinstance(head, dict):
        raise Unreadable("the front matter is not a YAML mapping")
    return {str(k): v for k, v in head.items()}, text[m.end() :].strip()


def _required(head: Mapping[str, Any], key: str) -> str:
    value = head.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Unreadable(f"{key}: required, and must be a non-empty string")
    return value.strip()


def split_list(value: Any) -> list[str]:
    """A list of names from a YAML list or a comma-separated string (commas inside
    parentheses, as in ``Agent(a, b)``, do not split)."""
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if not isinstance(value, str):
        return []
    out, depth, word = [], 0, ""
    for c in value:
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            out.append(word)
            word = ""
        else:
            word += c
    return [w.strip() for w in [*out, word] if w.strip()]


def _strings(value: Any, convert: Callable[[str], str]) -> Any:
    """``value`` with ``convert`` applied to every string in it."""
    if isinstance(value, str):
        return convert(value)
    if isinstance(value, Mapping):
        return {str(k): _strings(v, convert) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v, convert) for v in value]
    return value


def _ignore_rest(
    draft: Draft, head: Mapping[str, Any], used: set[str], why: dict[str, str]
) -> None:
    for key in head:
        if key not in used:
            draft.note(key, "ignored", why.get(key, "unknown field"))


def _transport(
    draft: Draft, where: str, cfg: Mapping[str, Any], kind: str
) -> dict[str, Any] | None:
    """The stdio or HTTP part of a server entry of Claude Code or Copilot."""
    if kind in ("stdio", "local"):
        entry = {k: cfg[k] for k in ("command", "args", "env") if k in cfg}
    elif kind in ("http", "streamable-http"):
        entry = {k: cfg[k] for k in ("url", "headers") if k in cfg}
    else:
        draft.note(where, "problem", f"type {kind!r}: agents-mcp speaks stdio and streamable HTTP")
        return None
    for key in cfg:
        if key not in (*entry, "type", "tools", "timeout"):
            draft.note(f"{where}.{key}", "ignored", SERVER_IGNORED.get(key, "unknown field"))
    return entry


# --- Claude Code -----------------------------------------------------------------------------


def _claude(path: Path, head: dict[str, Any], body: str) -> Draft:
    model = head.get("model")
    draft = Draft(
        path=path,
        format="claude-code",
        name=str(head.get("name") or path.stem),
        description=_required(head, "description"),
        instructions=body,
        models=[] if model in (None, "") else [str(model)],
    )
    if "tools" in head:
        draft.tools = split_list(head["tools"])
    draft.deny = split_list(head.get("disallowedTools"))
    servers = head.get("mcpServers") or []
    entries = list(servers.items()) if isinstance(servers, Mapping) else servers
    for item in entries if isinstance(entries, list) else []:
        if isinstance(item, str):
            draft.server_refs.append(item)
            continue
        pairs = [item] if isinstance(item, tuple) else list(dict(item).items())
        for name, cfg in pairs:
            _claude_server(draft, str(name), cfg if isinstance(cfg, Mapping) else {})
    _max_turns(draft, head.get("maxTurns"), "maxTurns")
    used = {"name", "description", "model", "tools", "disallowedTools", "mcpServers", "maxTurns"}
    _ignore_rest(draft, head, used, CLAUDE_IGNORED)
    return draft


def _claude_server(draft: Draft, name: str, cfg: Mapping[str, Any]) -> None:
    where = f"mcpServers.{name}"
    entry = _transport(draft, where, cfg, str(cfg.get("type") or "stdio"))
    if entry is None:
        return
    if isinstance(cfg.get("timeout"), int | float) and cfg["timeout"] > 0:
        entry["timeout"] = cfg["timeout"] / 1000
        draft.note(f"{where}.timeout", "converted", "milliseconds to timeout in seconds")
    draft.servers[name] = InlineServer(entry)


def _max_turns(draft: Draft, value: Any, key: str) -> None:
    if value is None:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        draft.max_turns = value
        if not 1 <= value <= 50:
            draft.note(key, "converted", f"max_iterations {min(max(value, 1), 50)} (1 to 50)")
    else:
        draft.note(key, "ignored", "expected an integer")


# --- GitHub Copilot ------------------------------------------------------------------------

_GITHUB_EXPR = re.compile(r"\$\{\{\s*(?:secrets|vars)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_BARE_VAR = re.compile(r"\$(?!\{)([A-Za-z_][A-Za-z0-9_]*)")


def copilot_variables(text: str) -> str:
    """Copilot's ``${{ secrets.X }}``, ``${{ vars.X }}`` and ``$X`` as our ``${X}``."""
    return _BARE_VAR.sub(r"${\1}", _GITHUB_EXPR.sub(r"${\1}", text))


def _copilot(path: Path, head: dict[str, Any], body: str) -> Draft:
    model = head.get("model")
    models = split_list(model) if isinstance(model, list) else [str(model)] if model else []
    stem = path.name.removesuffix(".md").removesuffix(".agent")
    draft = Draft(
        path=path,
        format="copilot",
        name=stem,
        description=_required(head, "description"),
        instructions=body,
        models=models,
    )
    display = head.get("name")
    if isinstance(display, str) and display != stem:
        draft.note("name", "converted", f"{display!r} is shown by Copilot; the agent is {stem!r}")
    if "tools" in head:
        draft.tools = split_list(head["tools"])
    if isinstance(head.get("agents"), list):
        draft.delegates = [str(a) for a in head["agents"]]
    servers = head.get("mcp-servers") or {}
    for name, cfg in servers.items() if isinstance(servers, Mapping) else ():
        if isinstance(cfg, Mapping):
            cfg = _strings(cfg, copilot_variables)
            where = f"mcp-servers.{name}"
            entry = _transport(draft, where, cfg, str(cfg.get("type") or "local"))
            if entry is not None:
                allow = split_list(cfg.get("tools")) if "tools" in cfg else None
                draft.servers[str(name)] = InlineServer(entry, None if allow == ["*"] else allow)
    used = {"name", "description", "model", "tools", "mcp-servers", "agents"}
    _ignore_rest(draft, head, used, COPILOT_IGNORED)
    return draft


# --- Codex -----------------------------------------------------------------------------------


def _codex(path: Path, text: str) -> Draft:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Unreadable(f"TOML syntax error: {exc}") from None
    model = data.get("model")
    draft = Draft(
        path=path,
        format="codex",
        name=_required(data, "name"),
        description=_required(data, "description"),
        instructions=_required(data, "developer_instructions"),
        models=[str(model)] if model else [],
    )
    servers = data.get("mcp_servers") or {}
    for name, cfg in servers.items() if isinstance(servers, Mapping) else ():
        if isinstance(cfg, Mapping):
            _codex_server(draft, str(name), cfg)
    used = {"name", "description", "developer_instructions", "model", "mcp_servers"}
    _ignore_rest(draft, data, used, CODEX_IGNORED)
    return draft


_CODEX_KEYS = {
    "command": "command",
    "args": "args",
    "env": "env",
    "url": "url",
    "http_headers": "headers",
    "required": "required",
    "tool_timeout_sec": "timeout",
    "startup_timeout_sec": "init_timeout",
}


def _codex_server(draft: Draft, name: str, cfg: Mapping[str, Any]) -> None:
    where = f"mcp_servers.{name}"
    if cfg.get("enabled") is False:
        draft.note(f"{where}.enabled", "converted", "false: the server is left out")
        return
    literal = _strings(dict(cfg), lambda s: s.replace("${", "$${"))  # Codex has no ${VAR}
    entry: dict[str, Any] = {ours: literal[k] for k, ours in _CODEX_KEYS.items() if k in literal}
    if "cwd" in literal:
        entry["cwd"] = str((draft.path.parent / literal["cwd"]).resolve())
    if isinstance(cfg.get("startup_timeout_ms"), int | float):
        entry["init_timeout"] = cfg["startup_timeout_ms"] / 1000
    env_vars = [v for v in cfg.get("env_vars") or [] if isinstance(v, str)]
    if env_vars:
        entry["env"] = {**{v: f"${{{v}:-}}" for v in env_vars}, **entry.get("env", {})}
        draft.note(f"{where}.env_vars", "converted", "env entries ${NAME:-} (passed on if set)")
    headers: dict[str, Any] = dict(entry.get("headers", {}))
    if isinstance(cfg.get("bearer_token_env_var"), str):
        headers["Authorization"] = f"Bearer ${{{cfg['bearer_token_env_var']}}}"
    for header, var in (cfg.get("env_http_headers") or {}).items():
        headers[str(header)] = f"${{{var}}}"
    if headers:
        entry["headers"] = headers
    allow = cfg.get("enabled_tools")
    deny = [str(t) for t in cfg.get("disabled_tools") or []]
    handled = {*_CODEX_KEYS, "cwd", "enabled", "env_vars", "startup_timeout_ms"}
    handled |= {"bearer_token_env_var", "env_http_headers", "enabled_tools", "disabled_tools"}
    for key in cfg:
        if key not in handled:
            draft.note(f"{where}.{key}", "ignored", SERVER_IGNORED.get(key, "unknown field"))
    tools = [str(t) for t in allow] if isinstance(allow, list) else None
    draft.servers[name] = InlineServer(entry, tools, deny)
