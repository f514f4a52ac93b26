"""``agents-mcp check``: is this configuration ready to serve?

Validates the file and the environment variables it names, starts every downstream server
(in parallel, with a timeout) and lists its tools as each agent's model will see them,
and sends one tiny request to each model endpoint. One line per item, ✓ or ✗, and the fix
for each ✗. A stdio server that fails shows the end of its log, and (unless it timed out)
is started once more with the user's whole environment: when that works, the fix names
the variables to pass.
With ``--json``, the same as one object (docs/commands.md shows its shape).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio

from agents_mcp.cli.check_agents import agent_section, file_rows, files_json
from agents_mcp.cli.check_models import keyless_models, probe_model, unresolved_rows
from agents_mcp.cli.environment import read_raw, references, suspects
from agents_mcp.cli.report import Lines, Report, Row
from agents_mcp.cli.terminal import Console, one_line
from agents_mcp.config import (
    Config,
    DownstreamServerConfig,
    load_config,
)
from agents_mcp.config.file import InvalidConfig
from agents_mcp.errors import ConfigError

_TAIL = 8


async def check(
    path: Path,
    console: Console,
    *,
    offline: bool,
    seconds: float,
    as_json: bool = False,
    db: str | None = None,
) -> int:
    """Run the ``check`` command; returns the exit code. ``db``: the thread database to
    look at instead of the config's."""
    report = Report(path)
    show = Lines(console, quiet=as_json)
    show.line(f"Checking {path}")
    show.line()
    raw = read_raw(path)
    try:
        config = load_config(path)
    except ConfigError as exc:
        imported = exc.imported if isinstance(exc, InvalidConfig) else None
        files = file_rows(imported, path) if imported is not None else []
        show.rows(report, [*_environment(raw, None), *_config_problems(exc, path), *files])
        show.line()
        show.line(f"{report.problems} problem(s): the configuration is invalid.")
        if as_json:
            console.line(report.as_json())
        return 2

    from agents_mcp.downstream.servers import Downstreams

    downstreams = Downstreams.from_config(config.mcp_servers)
    found: dict[str, list[Any] | BaseException] = {}
    try:
        label = f"starting {len(config.mcp_servers)} server(s)" + (
            "" if offline else f", asking {len(config.models)} model(s)"
        )
        async with console.spinner(label):
            rows = await _probe_all(config, raw, downstreams, found, offline, seconds, db)
        show.rows(report, [*rows, *file_rows(config.imported, path)])
        report.files = files_json(config.imported)
        for name, agent in config.agents.items():
            show.line()
            await agent_section(show, report, config, name, agent, downstreams, found)
    finally:
        with anyio.move_on_after(10, shield=True):
            await downstreams.aclose()
    show.line()
    warned = f", with {report.warnings} warning(s) above" if report.warnings else ""
    show.line(
        f"{report.problems} problem(s) found." if report.problems else f"All checks passed{warned}."
    )
    if as_json:
        console.line(report.as_json())
    return 1 if report.problems else 0


async def _probe_all(
    config: Config,
    raw: Mapping[str, Any],
    downstreams: Any,
    found: dict[str, list[Any] | BaseException],
    offline: bool,
    seconds: float,
    db: str | None,
) -> list[Row]:
    """The database, every server and every model, probed at once: their rows, after the
    config's and its variables'. ``found``: each server's tools (or why not)."""
    models: dict[str, Row] = {}
    database: list[Row] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_probe_database, config, db, seconds, database)
        for name, server in downstreams.servers.items():
            tg.start_soon(_probe_server, name, server, seconds, found)
        for name, model in config.models.items():
            tg.start_soon(probe_model, name, model, offline, seconds, models)
    servers = await _server_rows(config, raw, downstreams, found, seconds)
    counts = (
        f"{len(config.agents)} agent(s), {len(config.mcp_servers)} server(s),"
        f" {len(config.models) + len(config.unresolved_models)} model(s)"
    )
    return [
        Row(True, "config", counts),
        *_environment(raw, config),
        *database,
        *servers,
        *(models[n] for n in config.models),
        *unresolved_rows(config),
    ]


# -- configuration ----------------------------------------------------------------------


def _environment(raw: Mapping[str, Any], config: Config | None) -> list[Row]:
    """One row per environment variable the file names (never their values); a default
    that leaves a model without the API key its endpoint needs is pointed out."""
    keyless = keyless_models(raw, config)
    rows = []
    for name, default in references(raw).items():
        item = f"env {name}"
        if os.environ.get(name):
            rows.append(Row(True, item, "set"))
        elif default is not None and name in keyless:
            rows.append(Row(None, item, "not set; its default (empty) is used", keyless[name]))
        elif default is not None:
            rows.append(Row(None, item, "not set; its default is used"))
        elif name in os.environ:
            rows.append(Row(True, item, "set (empty)"))
        else:
            rows.append(Row(False, item, "not set", f"export {name}=… before starting"))
    return rows


def _config_problems(exc: ConfigError, path: Path) -> Iterator[Row]:
    for line in str(exc).splitlines():
        detail = line.removeprefix(f"{path}: ")
        if "environment variable" in detail:
            continue  # already reported on its env row, with the fix
        yield Row(False, "config", detail, f"edit {path}")


# -- downstream servers -----------------------------------------------------------------


async def _probe_database(config: Config, db: str | None, seconds: float, out: list[Row]) -> None:
    """The thread database the server would use (``db``: --db), and whether it can
    (nothing is created)."""
    from agents_mcp.store import resolve_db
    from agents_mcp.store.probe import probe

    found = await probe(resolve_db(config.server.db, db), seconds=seconds)
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
    from agents_mcp.downstream.servers import DownstreamServer
    from agents_mcp.downstream.stray import NotMCP

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
                if not _not_found(failed) and not isinstance(failed, TimeoutError | NotMCP):
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
    from agents_mcp.downstream.logs import last_lines

    return [one_line(line, 120) for line in last_lines(path, _TAIL)]


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
    from agents_mcp.downstream.stray import NotMCP

    cfg = config.mcp_servers[name]
    where = _where(name, cfg, raw)
    item = f"server {name}"
    if not isinstance(result, BaseException):
        return Row(True, item, f"{len(result)} tool(s) · {one_line(where)}")
    if isinstance(result, NotMCP):
        return Row(False, item, f"printed {one_line(result.shown)} on stdout · {where}", result.FIX)
    why = str(result) or type(result).__name__
    if isinstance(result, TimeoutError):
        detail = f"no answer within {timeout:g} s · {one_line(where)}"
    elif cfg.command is not None and _is_closed(why):
        detail = f"exited during start-up · {one_line(where)}"
    else:
        detail = f"{one_line(why)} · {one_line(where)}"
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
