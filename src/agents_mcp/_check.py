"""``agents-mcp check``: is this configuration ready to serve?

Validates the file and the environment variables it names, starts every downstream server
(in parallel, with a timeout) and lists its tools as each agent's model will see them,
and sends one tiny request to each model endpoint. One line per item, ✓ or ✗, and the fix
for each ✗.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from agents_mcp._terminal import Console
from agents_mcp.config import (
    SEPARATOR,
    AgentConfig,
    ApprovalRules,
    Config,
    DownstreamServerConfig,
    ModelConfig,
    approval_required,
    load_config,
)
from agents_mcp.errors import ConfigError, LLMError

_REFERENCE = r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:-[^}]*)?\}"


@dataclass(frozen=True)
class Row:
    ok: bool | None  # None: neither good nor bad (skipped, defaulted)
    item: str
    detail: str
    fix: str | None = None


class Report:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.problems = 0

    def rows(self, rows: list[Row]) -> None:
        width = max((len(r.item) for r in rows), default=0)
        for r in rows:
            self.problems += r.ok is False
            self.console.line(f"{self.console.mark(r.ok)} {r.item.ljust(width)}  {r.detail}")
            if r.fix:
                self.console.line(f"  {' ' * width}  fix: {r.fix}")


async def check(path: Path, console: Console, *, offline: bool, seconds: float) -> int:
    """Run the ``check`` command; returns the exit code."""
    report = Report(console)
    console.line(f"Checking {path}")
    console.line()
    raw = _raw(path)
    env_rows = list(_environment(raw))
    try:
        config = load_config(path)
    except ConfigError as exc:
        report.rows([*env_rows, *_config_problems(exc, path)])
        console.line()
        console.line(f"{report.problems} problem(s): the configuration is invalid.")
        return 2
    counts = (
        f"{len(config.agents)} agent(s), {len(config.mcp_servers)} server(s),"
        f" {len(config.models)} model(s)"
    )

    from agents_mcp.downstream import Downstreams

    downstreams = Downstreams.from_config(config.mcp_servers)
    found: dict[str, list[Any] | BaseException] = {}
    models: dict[str, Row] = {}
    try:
        label = f"starting {len(config.mcp_servers)} server(s)" + (
            "" if offline else f", asking {len(config.models)} model(s)"
        )
        async with console.spinner(label), anyio.create_task_group() as tg:
            for name, server in downstreams.servers.items():
                tg.start_soon(_probe_server, name, server, seconds, found)
            for name, model in config.models.items():
                tg.start_soon(_probe_model, name, model, offline, seconds, models)
        report.rows(
            [Row(True, "config", counts), *env_rows]
            + [_server_row(n, config, raw, found[n], seconds) for n in config.mcp_servers]
            + [models[n] for n in config.models]
        )
        for name, agent in config.agents.items():
            console.line()
            await _agent_section(report, config, name, agent, downstreams, found)
    finally:
        with anyio.move_on_after(10, shield=True):
            await downstreams.aclose()
    console.line()
    if report.problems:
        console.line(f"{report.problems} problem(s) found.")
        return 1
    console.line("All checks passed.")
    return 0


# -- configuration ----------------------------------------------------------------------


def _raw(path: Path) -> dict[str, Any]:
    """The file as written, before ``${…}`` expansion ({} if unreadable: load_config explains)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _environment(raw: Mapping[str, Any]) -> Iterator[Row]:
    """One row per environment variable the file names (never their values)."""
    seen: dict[str, bool] = {}
    for value in _strings(raw):
        for m in re.finditer(r"\$\$\{|" + _REFERENCE, value):
            if m["name"] is not None:
                seen[m["name"]] = seen.get(m["name"], True) and m["default"] is not None
    for name, has_default in seen.items():
        if os.environ.get(name):
            yield Row(True, f"env {name}", "set")
        elif has_default:
            yield Row(None, f"env {name}", "not set; its default is used")
        elif name in os.environ:
            yield Row(True, f"env {name}", "set (empty)")
        else:
            yield Row(False, f"env {name}", "not set", f"export {name}=… before starting")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _config_problems(exc: ConfigError, path: Path) -> Iterator[Row]:
    for line in str(exc).splitlines():
        detail = line.removeprefix(f"{path}: ")
        if "environment variable" in detail:
            continue  # already reported on its env row, with the fix
        yield Row(False, "config", detail, f"edit {path}")


# -- downstream servers -----------------------------------------------------------------


async def _probe_server(
    name: str, server: Any, seconds: float, found: dict[str, list[Any] | BaseException]
) -> None:
    try:
        with anyio.fail_after(seconds):
            found[name] = await server.tools()
    except Exception as exc:  # every failure is reported on the server's row
        found[name] = exc


def _server_row(
    name: str,
    config: Config,
    raw: Mapping[str, Any],
    result: list[Any] | BaseException,
    timeout: float,
) -> Row:
    cfg = config.mcp_servers[name]
    where = _where(name, cfg, raw)
    item = f"server {name}"
    if not isinstance(result, BaseException):
        return Row(True, item, f"{len(result)} tool(s) · {_short(where)}")
    why = str(result) or type(result).__name__
    if isinstance(result, TimeoutError):
        return Row(
            False,
            item,
            f"no answer within {timeout:g} s · {_short(where)}",
            "run the command by hand to see what it waits for (a first npx/uvx start"
            " downloads: try again, or raise --timeout)",
        )
    if cfg.command is not None and "No such file or directory" in why:
        return Row(
            False,
            item,
            f"cannot start {cfg.command!r}: not found",
            f"install it, or put its absolute path in mcpServers.{name}.command",
        )
    if cfg.command is not None:
        return Row(
            False,
            item,
            f"{_short(why)} · {_short(where)}",
            "the server stopped during start-up; run the command by hand to see its error",
        )
    return Row(
        False,
        item,
        f"{_short(why)} · {_short(where)}",
        f"is the server running and is mcpServers.{name}.url its MCP endpoint (often …/mcp)?",
    )


def _where(name: str, cfg: DownstreamServerConfig, raw: Mapping[str, Any]) -> str:
    """How to name the server: its command line or URL. Arguments and URLs often carry
    tokens, so those are shown as written in the file (``${TOKEN}``), not expanded."""
    entry = raw.get("mcpServers", {}).get(name, {})
    if cfg.command is not None:
        args = entry.get("args") if isinstance(entry, dict) else None
        shown = args if isinstance(args, list) and len(args) == len(cfg.args) else cfg.args
        return " ".join([cfg.command, *map(str, shown)])
    url = entry.get("url") if isinstance(entry, dict) else None
    return str(url if isinstance(url, str) else cfg.url)


# -- models -----------------------------------------------------------------------------


async def _probe_model(
    name: str, cfg: ModelConfig, offline: bool, seconds: float, rows: dict[str, Row]
) -> None:
    """One tiny request through the model's provider (``llm.probe``): does it answer, call
    an offered tool, stream?"""
    item = f"model {name}"
    if cfg.provider == "demo":
        rows[name] = Row(True, item, "demo: built in, needs no endpoint")
        return
    where = f"{cfg.model} at {cfg.base_url}"
    if offline:
        rows[name] = Row(None, item, f"{where}: not contacted (--offline)")
        return
    from agents_mcp.llm import build_llm
    from agents_mcp.llm.probe import probe

    llm = build_llm(cfg, timeout=min(cfg.timeout, seconds), max_retries=0)
    try:
        with anyio.fail_after(seconds):
            found = await probe(llm)
        seen = ["calls tools" if found.tool_call else "answered without calling the offered tool"]
        if cfg.stream is False:
            seen.append("streaming off (stream = false)")
        elif found.tool_call is None:  # a tool call carries no text to see streaming in
            seen.append("streams" if found.fragments > 1 else "did not stream")
        if found.reasoning:
            seen.append("reports its reasoning")
        rows[name] = Row(True, item, f"{where} ({cfg.provider}): {', '.join(seen)}")
    except TimeoutError:
        rows[name] = Row(
            False, item, f"{where}: no answer within {seconds:g} s", "is the endpoint up?"
        )
    except LLMError as exc:
        rows[name] = Row(False, item, str(exc), _model_fix(name, exc.status, cfg.provider))
    finally:
        closer = getattr(llm, "aclose", None)
        if closer is not None:
            await closer()


def _model_fix(name: str, status: int | None, provider: str = "openai") -> str:
    key = f"models.{name}"
    if status in (401, 403):
        if provider == "anthropic":
            return f"check {key}.api_key (by default the environment variable ANTHROPIC_API_KEY)"
        return f"check {key}.api_key and the environment variable it names"
    if status == 404:
        return f"check {key}.base_url (usually ends in /v1) and {key}.model"
    if status == 429:
        return "rate limited or out of quota: check the provider account"
    if status is not None and status >= 500:
        return "the provider failed; try again later"
    if status is not None:
        return f"the endpoint refused the request: check {key}.model and {key}.extra"
    return f"is the endpoint running? check {key}.base_url"


# -- agents -------------------------------------------------------------------------------


async def _agent_section(
    report: Report,
    config: Config,
    name: str,
    agent: AgentConfig,
    downstreams: Any,
    found: Mapping[str, list[Any] | BaseException],
) -> None:
    from agents_mcp.downstream import AgentToolset

    console = report.console
    servers = ", ".join(agent.servers) or "none"
    console.line(f"agent {name} · model {agent.model} · servers {servers}")
    if agent.personalities:
        names = [
            f"{p} (default)" if p == agent.default_personality else p for p in agent.personalities
        ]
        console.line(f"  personalities: {', '.join(names)}")
    up = [s for s in agent.servers if isinstance(found.get(s), list)]
    tools = await AgentToolset([downstreams.servers[s] for s in up], agent.tools).list_tools()
    width = max((len(t.name) for t in tools), default=0)
    for t in tools:
        needs = approval_required(agent.require_approval, t.server, t.tool, t.read_only)
        kind = "read-only" if t.read_only else "         "
        console.line(
            f"  {t.name.ljust(width)}  {kind}  {'needs approval' if needs else 'runs without approval'}"
        )
    for s in agent.servers:
        if s not in up:
            console.line(f"  ({s}: unavailable, see above)")
    for other in agent.agents:
        console.line(f"  agent__{other}  delegates to agent {other}")
    if not agent.servers and not agent.agents:
        console.line("  (no tools)")
    rows = list(_allowlist_rows(name, agent, found))
    if rows:
        report.rows(rows)


def _allowlist_rows(
    name: str, agent: AgentConfig, found: Mapping[str, list[Any] | BaseException]
) -> Iterator[Row]:
    """Allowlist entries and approval rules that name no tool: usually a typo."""

    def offered(server: str) -> set[str] | None:
        tools = found.get(server)
        return {t.name for t in tools} if isinstance(tools, list) else None

    for server, allowed in agent.tools.items():
        names = offered(server)
        for tool in allowed:
            if names is not None and tool not in names:
                yield Row(
                    False,
                    f"agent {name}",
                    f"tools.{server} lists {tool!r}, which {server} does not offer",
                    f"valid: {', '.join(sorted(names))}",
                )
    policy = agent.require_approval
    if isinstance(policy, ApprovalRules):
        for rule in [*policy.always, *policy.never]:
            server, _, tool = rule.partition(SEPARATOR)
            names = offered(server)
            if tool != "*" and names is not None and tool not in names:
                yield Row(
                    False,
                    f"agent {name}",
                    f"require_approval rule {rule!r} names no tool of {server}",
                    f"valid: {', '.join(f'{server}{SEPARATOR}{n}' for n in sorted(names))}",
                )


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
