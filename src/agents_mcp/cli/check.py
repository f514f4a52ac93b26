"""``agents-mcp check``: is this configuration ready to serve?

Validates the file and the environment variables it names, starts every downstream server
(in parallel, with a timeout) and lists its tools as each agent's model will see them,
and sends one tiny request to each model endpoint. One line per item, ✓ or ✗, and the fix
for each ✗. A stdio server that fails shows the end of its log, and (unless it timed out)
is started once more with the user's whole environment: when that works, the fix names
the variables to pass.
With ``--json``, the same as one object (the README shows its shape).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
from rich.text import Text

from agents_mcp.cli.environment import read_raw, references, suspects
from agents_mcp.cli.terminal import Console
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

_TAIL = 8


@dataclass(frozen=True)
class Row:
    ok: bool | None  # None: neither good nor bad (skipped, defaulted)
    item: str
    detail: str
    fix: str | None = None
    log: list[str] = field(default_factory=list)
    """The end of a failing server's stderr, from its log file."""


@dataclass
class Report:
    """What ``check`` found, shown as lines or as one JSON object."""

    path: Path
    rows: list[Row] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return sum(r.ok is False for r in self.rows)

    def as_json(self) -> str:
        data = {
            "config": str(self.path),
            "ok": self.problems == 0,
            "problems": self.problems,
            "checks": [asdict(r) for r in self.rows],
            "agents": self.agents,
        }
        return json.dumps(data, indent=2, ensure_ascii=False)


async def check(
    path: Path, console: Console, *, offline: bool, seconds: float, as_json: bool = False
) -> int:
    """Run the ``check`` command; returns the exit code."""
    report = Report(path)
    show = _Lines(console, quiet=as_json)
    show.line(f"Checking {path}")
    show.line()
    raw = read_raw(path)
    env_rows = list(_environment(raw))
    try:
        config = load_config(path)
    except ConfigError as exc:
        show.rows(report, [*env_rows, *_config_problems(exc, path)])
        show.line()
        show.line(f"{report.problems} problem(s): the configuration is invalid.")
        if as_json:
            console.line(report.as_json())
        return 2
    counts = (
        f"{len(config.agents)} agent(s), {len(config.mcp_servers)} server(s),"
        f" {len(config.models)} model(s)"
    )

    from agents_mcp.downstream import Downstreams

    downstreams = Downstreams.from_config(config.mcp_servers)
    found: dict[str, list[Any] | BaseException] = {}
    models: dict[str, Row] = {}
    database: list[Row] = []
    try:
        label = f"starting {len(config.mcp_servers)} server(s)" + (
            "" if offline else f", asking {len(config.models)} model(s)"
        )
        async with console.spinner(label):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_probe_database, config, seconds, database)
                for name, server in downstreams.servers.items():
                    tg.start_soon(_probe_server, name, server, seconds, found)
                for name, model in config.models.items():
                    tg.start_soon(_probe_model, name, model, offline, seconds, models)
            servers = await _server_rows(config, raw, downstreams, found, seconds)
        models_rows = [models[n] for n in config.models]
        rows = [Row(True, "config", counts), *env_rows, *database, *servers, *models_rows]
        show.rows(report, rows)
        for name, agent in config.agents.items():
            show.line()
            await _agent_section(show, report, config, name, agent, downstreams, found)
    finally:
        with anyio.move_on_after(10, shield=True):
            await downstreams.aclose()
    show.line()
    show.line(f"{report.problems} problem(s) found." if report.problems else "All checks passed.")
    if as_json:
        console.line(report.as_json())
    return 1 if report.problems else 0


class _Lines:
    """The report as lines on stdout (nothing with ``--json``)."""

    def __init__(self, console: Console, *, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet

    def line(self, text: str | Text = "") -> None:
        if not self.quiet:
            self.console.line(text)

    def rows(self, report: Report, rows: list[Row]) -> None:
        report.rows += rows
        width = max((len(r.item) for r in rows), default=0)
        pad = " " * (width + 4)
        for r in rows:
            self.line(Text.assemble(self.console.mark(r.ok), f" {r.item.ljust(width)}  {r.detail}"))
            if r.log:
                self.line(f"{pad}log: {r.log[0]}")
                for line in r.log[1:]:
                    self.line(f"{pad}     {line}")
            if r.fix:
                self.line(f"{pad}fix: {r.fix}")


# -- configuration ----------------------------------------------------------------------


def _environment(raw: Mapping[str, Any]) -> Iterator[Row]:
    """One row per environment variable the file names (never their values)."""
    for name, default in references(raw).items():
        if os.environ.get(name):
            yield Row(True, f"env {name}", "set")
        elif default is not None:
            yield Row(None, f"env {name}", "not set; its default is used")
        elif name in os.environ:
            yield Row(True, f"env {name}", "set (empty)")
        else:
            yield Row(False, f"env {name}", "not set", f"export {name}=… before starting")


def _config_problems(exc: ConfigError, path: Path) -> Iterator[Row]:
    for line in str(exc).splitlines():
        detail = line.removeprefix(f"{path}: ")
        if "environment variable" in detail:
            continue  # already reported on its env row, with the fix
        yield Row(False, "config", detail, f"edit {path}")


# -- downstream servers -----------------------------------------------------------------


async def _probe_database(config: Config, seconds: float, out: list[Row]) -> None:
    """The thread database the server would use, and whether it can (nothing is created)."""
    from agents_mcp.store import resolve_db
    from agents_mcp.store.probe import probe

    found = await probe(resolve_db(config.server.db), seconds=seconds)
    detail = f"{found.location} · {found.detail}"
    if config.server.sqlite_durability != "full" and found.detail.startswith("SQLite"):
        detail += (
            " · commits not synced: the last ones may be lost on power loss (sqlite_durability)"
        )
    out.append(Row(found.ok, "database", detail, found.fix))


async def _probe_server(
    name: str, server: Any, seconds: float, found: dict[str, list[Any] | BaseException]
) -> None:
    try:
        with anyio.fail_after(seconds):
            found[name] = await server.tools()
    except Exception as exc:  # every failure is reported on the server's row
        found[name] = exc


async def _server_rows(
    config: Config,
    raw: Mapping[str, Any],
    downstreams: Any,
    found: Mapping[str, list[Any] | BaseException],
    seconds: float,
) -> list[Row]:
    """A row per server; failed stdio servers get their log's tail and one more try with
    the user's whole environment."""
    from agents_mcp.downstream import DownstreamServer

    tails: dict[str, list[str]] = {}
    retried: dict[str, list[Any] | BaseException] = {}
    async with anyio.create_task_group() as tg:
        for name, server in downstreams.servers.items():
            cfg: DownstreamServerConfig = config.mcp_servers[name]
            failed = found[name]
            if isinstance(failed, BaseException) and cfg.command is not None:
                tails[name] = _tail(server.log_path)
                # Not a timeout: a first npx/uvx start may still be downloading, and the
                # retry would then succeed for that reason alone.
                if not _not_found(failed) and not isinstance(failed, TimeoutError):
                    whole = cfg.model_copy(update={"env": {**os.environ, **cfg.env}})
                    again = DownstreamServer(name, whole)
                    tg.start_soon(_retry, name, again, seconds, retried)
    rows = []
    for name in config.mcp_servers:
        tail = tails.get(name, [])
        row = _server_row(name, config, raw, found[name], seconds, retried.get(name))
        fix = row.fix
        if fix is not None and name in tails and not tail:
            fix = fix.replace(
                "see its log above", f"its log {downstreams.servers[name].log_path} is empty"
            )
        rows.append(Row(row.ok, row.item, row.detail, fix, tail))
    return rows


async def _retry(
    name: str, server: Any, seconds: float, retried: dict[str, list[Any] | BaseException]
) -> None:
    try:
        await _probe_server(name, server, seconds, retried)
    finally:
        with anyio.move_on_after(10, shield=True):
            await server.aclose()


def _tail(path: Path) -> list[str]:
    """The last lines the server wrote to its log since it was last started."""
    from agents_mcp.downstream import LOG_HEADER

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines = text[text.rfind(LOG_HEADER) :].splitlines()[1:] if LOG_HEADER in text else []
    lines = [_short(line, 120) for line in lines if line.strip()]
    return lines[-_TAIL:]


def _is_closed(why: str) -> bool:
    return "connection closed" in why.lower()


def _not_found(exc: BaseException) -> bool:
    return "No such file or directory" in str(exc)


def _server_row(
    name: str,
    config: Config,
    raw: Mapping[str, Any],
    result: list[Any] | BaseException,
    timeout: float,
    retried: list[Any] | BaseException | None,
) -> Row:
    cfg = config.mcp_servers[name]
    where = _where(name, cfg, raw)
    item = f"server {name}"
    if not isinstance(result, BaseException):
        return Row(True, item, f"{len(result)} tool(s) · {_short(where)}")
    why = str(result) or type(result).__name__
    if isinstance(result, TimeoutError):
        detail = f"no answer within {timeout:g} s · {_short(where)}"
    elif cfg.command is not None and _is_closed(why):
        detail = f"exited during start-up · {_short(where)}"
    else:
        detail = f"{_short(why)} · {_short(where)}"
    if cfg.command is None:
        return Row(
            False,
            item,
            detail,
            f"is the server running and is mcpServers.{name}.url its MCP endpoint (often …/mcp)?",
        )
    if _not_found(result):
        return Row(
            False,
            item,
            f"cannot start {cfg.command!r}: not found",
            f"install it, or put its absolute path in mcpServers.{name}.command",
        )
    if retried is not None and not isinstance(retried, BaseException):
        return Row(False, item, detail, _environment_fix(name, cfg))
    if isinstance(result, TimeoutError):
        likely, _ = suspects(os.environ, cfg.env)
        proxy = f"; if it needs the network, pass {', '.join(likely)} in its env" if likely else ""
        return Row(
            False,
            item,
            detail,
            "see its log above; a first npx/uvx start downloads: try again, or raise"
            f" --timeout{proxy}",
        )
    return Row(False, item, detail, "see its log above")


def _environment_fix(name: str, cfg: DownstreamServerConfig) -> str:
    """It works with the user's whole environment: say which variables it likely needs."""
    likely, others = suspects(os.environ, cfg.env)
    gets = "agents-mcp gives servers only PATH, HOME and their own env"
    if likely:
        pairs = ", ".join(f'{n} = "${{{n}}}"' for n in likely)
        return (
            f"it starts with your whole environment, but {gets}; pass what it needs in"
            f" mcpServers.{name}.env, likely: {{ {pairs} }}"
        )
    shown = ", ".join(others[:10]) + (", …" if len(others) > 10 else "")
    return (
        f"it starts with your whole environment, but {gets}; pass the variables it needs"
        f" in mcpServers.{name}.env (you have: {shown or 'nothing more'})"
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
    show: _Lines,
    report: Report,
    config: Config,
    name: str,
    agent: AgentConfig,
    downstreams: Any,
    found: Mapping[str, list[Any] | BaseException],
) -> None:
    from agents_mcp.downstream import AgentToolset

    servers = ", ".join(agent.servers) or "none"
    show.line(f"agent {name} · model {agent.model} · servers {servers}")
    if agent.personalities:
        names = [
            f"{p} (default)" if p == agent.default_personality else p for p in agent.personalities
        ]
        show.line(f"  personalities: {', '.join(names)}")
    up = [s for s in agent.servers if isinstance(found.get(s), list)]
    tools = await AgentToolset([downstreams.servers[s] for s in up], agent.tools).list_tools()
    width = max((len(t.name) for t in tools), default=0)
    listed = []
    for t in tools:
        needs = approval_required(agent.require_approval, t.server, t.tool, t.read_only)
        listed.append({"name": t.name, "read_only": t.read_only, "needs_approval": needs})
        kind = "read-only" if t.read_only else "         "
        show.line(
            f"  {t.name.ljust(width)}  {kind}  {'needs approval' if needs else 'runs without approval'}"
        )
    missing = [s for s in agent.servers if s not in up]
    for s in missing:
        show.line(f"  ({s}: unavailable, see above)")
    for other in agent.agents:
        show.line(f"  agent__{other}  delegates to agent {other}")
    if not agent.servers and not agent.agents:
        show.line("  (no tools)")
    report.agents.append(
        {
            "name": name,
            "model": agent.model,
            "servers": list(agent.servers),
            "personalities": list(agent.personalities),
            "tools": listed,
            "unavailable_servers": missing,
            "delegates_to": list(agent.agents),
        }
    )
    rows = list(_allowlist_rows(name, agent, found))
    if rows:
        show.rows(report, rows)


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
