"""``check``'s part about agents: each agent's tools as its model sees them, the
allowlist entries that name no tool, and what became of each agent file
(``[server] agents_from``): loaded, left out (why, and the fix) or shadowed, with every
field that was converted or ignored."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from agents_mcp.cli.report import Lines, Report, Row
from agents_mcp.config import SEPARATOR, AgentConfig, ApprovalRules, Config, approval_required
from agents_mcp.config.agent_files import FORMAT_NAMES, FileReport, Imported


def shown_path(path: str, config: Path) -> str:
    """``path`` relative to the ``config`` file's folder when it is inside it."""
    base = config.parent.resolve()
    full = Path(path).resolve()
    return str(full.relative_to(base)) if full.is_relative_to(base) else path


def source(config: Config, name: str) -> str:
    """Where agent ``name`` comes from: its file (and format), or the config's table."""
    report = next(
        (f for f in config.imported.files if f.agent == name and f.status == "loaded"), None
    )
    if report is None or report.format is None:
        return f"{config.path.name} [agents.{name}]"
    return f"{shown_path(report.path, config.path)} ({FORMAT_NAMES[report.format]})"


def file_rows(imported: Imported, config: Path) -> list[Row]:
    """One row per ``agents_from`` folder that is missing, and one per agent file."""
    rows = [
        Row(None, f"agents_from {entry}", "no such folder")
        for entry, count in imported.folders
        if count is None
    ]
    return rows + [_file_row(config, f) for f in imported.files]


def _file_row(config: Path, report: FileReport) -> Row:
    kind = FORMAT_NAMES[report.format] if report.format else "agent file"
    problems = [n.text for n in report.notes if n.kind == "problem"]
    notes = [
        f"{n.kind} {n.field}: {n.text}" if n.field else f"{n.kind}: {n.text}"
        for n in report.notes
        if n.kind != "problem"
    ]
    item = f"file {shown_path(report.path, config)}"
    fix = "; ".join(problems) or None
    if report.status == "loaded":
        return Row(not problems, item, f"agent {report.agent} ({kind})", fix, notes=notes)
    if report.status == "shadowed":
        return Row(None, item, f"not used ({kind})", notes=notes)
    return Row(False, item, f"left out ({kind})", fix, notes=notes)


def files_json(imported: Imported) -> list[dict[str, Any]]:
    """The file report for ``check --json``."""
    return [
        {
            "file": f.path,
            "format": f.format,
            "agent": f.agent,
            "status": f.status,
            "notes": [{"field": n.field, "kind": n.kind, "text": n.text} for n in f.notes],
        }
        for f in imported.files
    ]


async def agent_section(
    show: Lines,
    report: Report,
    config: Config,
    name: str,
    agent: AgentConfig,
    downstreams: Any,
    found: Mapping[str, list[Any] | BaseException],
) -> None:
    from agents_mcp.downstream.servers import AgentToolset

    servers = ", ".join(agent.servers) or "none"
    show.line(f"agent {name} · model {agent.model} · servers {servers}")
    if name not in config.agents or config.origin(name) is not None:
        show.line(f"  from {source(config, name)}")
    if agent.personalities:
        names = [
            f"{p} (default)" if p == agent.default_personality else p for p in agent.personalities
        ]
        show.line(f"  personalities: {', '.join(names)}")
    up = [s for s in agent.servers if isinstance(found.get(s), list)]
    tools = await AgentToolset([downstreams.servers[s] for s in up], agent.tools).list_tools()
    tools = [t for t in tools if t.tool not in agent.disabled_tools.get(t.server, ())]
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
            "source": config.origin(name),
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
