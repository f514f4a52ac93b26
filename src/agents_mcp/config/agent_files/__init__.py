"""Agents from the files people already write: ``[server] agents_from``.

Each file in the listed folders (searched recursively, in the order given) becomes an
agent: Claude Code subagents (``*.md``), GitHub Copilot custom agents (``*.agent.md``, or
any ``*.md`` under ``.github``) and Codex custom agents (``*.toml``). :func:`gather`
reads them against the config's (already expanded) data and returns the entries to add,
plus one :class:`FileReport` per file: what was converted, ignored (and why), and what
kept a file or a server out. A file that cannot be an agent (no model mapping, syntax)
is left out and reported; it never stops the server. Names: an ``[agents.<name>]`` table
of the config wins over a file of the same name, and an earlier file over a later one.
An inline server keeps its name unless another definition of that name differs; then it
is ``<agent>-<server>``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from agents_mcp.config.agent_files.drafts import FORMAT_NAMES, Draft, Format, Note, Unreadable
from agents_mcp.config.agent_files.formats import detect, read
from agents_mcp.config.agent_files.mapping import Known, Mapped, map_draft, slug

__all__ = ["FORMAT_NAMES", "FileReport", "Imported", "Note", "gather", "snapshot"]

Status = Literal["loaded", "shadowed", "skipped"]
_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class FileReport:
    """What became of one file."""

    path: str
    format: Format | None
    agent: str | None
    status: Status
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True)
class Imported:
    """The entries the files add, and the report of every file and folder."""

    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: tuple[FileReport, ...] = ()
    folders: tuple[tuple[str, int | None], ...] = ()
    """Each folder of ``agents_from`` and how many agent files it has (None: missing)."""


def folders(entries: Iterable[str], config_path: Path) -> list[Path]:
    """The ``agents_from`` folders: ``~`` expanded, relative to the config file."""
    base = config_path.parent
    return [base / os.path.expanduser(entry) for entry in entries]


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and detect(p) is not None)


def snapshot(entries: Iterable[str], config_path: Path) -> frozenset[tuple[str, int, int]]:
    """The agent files and their modification times and sizes: when this changes, the
    agents may have changed."""
    out = set()
    for folder in folders(entries, config_path):
        for path in _files(folder):
            try:
                stat = path.stat()
            except OSError:
                continue
            out.add((str(path), stat.st_mtime_ns, stat.st_size))
    return frozenset(out)


def _known(data: Mapping[str, Any], server: Mapping[str, Any], environ: Mapping[str, str]) -> Known:
    def table(key: str) -> Mapping[str, Any]:
        value = data.get(key)
        return value if isinstance(value, Mapping) else {}

    aliases = {str(k): str(v) for k, v in table("model_aliases").items() if isinstance(v, str)}
    approval = server.get("agents_from_approval", "always")
    return Known(
        models=frozenset(map(str, table("models"))),
        aliases=aliases,
        servers=table("mcpServers"),
        environ=environ,
        approval=approval if isinstance(approval, str) else "always",
    )


def gather(data: Mapping[str, Any], config_path: Path, environ: Mapping[str, str]) -> Imported:
    """Read every file of ``[server] agents_from`` in ``data`` (the config, expanded)."""
    server = data.get("server")
    entries = server.get("agents_from") if isinstance(server, Mapping) else None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        return Imported()  # absent, or invalid: the config's own validation says so
    known = _known(data, server if isinstance(server, Mapping) else {}, environ)
    configured = data.get("agents")
    taken: dict[str, str] = dict.fromkeys(configured if isinstance(configured, Mapping) else (), "")
    reports: list[FileReport] = []
    mapped: list[tuple[Draft, Mapped]] = []
    counts: list[tuple[str, int | None]] = []
    order: dict[str, int] = {}
    for entry, folder in zip(entries, folders(entries, config_path), strict=True):
        paths = _files(folder)
        counts.append((entry, len(paths) if folder.is_dir() else None))
        for path in paths:
            if str(path) in order:  # listed twice (overlapping folders): read once
                continue
            order[str(path)] = len(order)
            report, done = _one(path, known, taken)
            if done is not None:
                mapped.append(done)
                taken[done[1].name] = str(path)
            else:
                reports.append(report)
    servers = _name_servers(mapped, known.servers)
    agents: dict[str, dict[str, Any]] = {}
    for draft, m in mapped:
        m.agent["agents"] = _delegates(draft, m, taken)
        agents[m.name] = m.agent
        notes = tuple(draft.notes)
        reports.append(FileReport(str(draft.path), draft.format, m.name, "loaded", notes))
    reports.sort(key=lambda r: order[r.path])
    return Imported(agents, servers, tuple(reports), tuple(counts))


def _one(
    path: Path, known: Known, taken: Mapping[str, str]
) -> tuple[FileReport, tuple[Draft, Mapped] | None]:
    kind = detect(path)
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise Unreadable(f"over {_MAX_BYTES} bytes")
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        return FileReport(str(path), kind, None, "skipped", (Note("", "problem", f"{why}"),)), None
    except Unreadable as exc:
        return FileReport(str(path), kind, None, "skipped", (Note("", "problem", str(exc)),)), None
    draft: Draft | None = None
    try:
        draft = read(path, text)
        name = slug(draft.name)
        if name in taken:
            where = taken[name]
            why = (
                f"[agents.{name}] in the config wins over this file"
                if not where
                else f"agent {name!r} is already defined by {where}"
            )
            return FileReport(
                str(path), kind, name, "shadowed", (Note("name", "ignored", why),)
            ), None
        done = map_draft(draft, known)
        _validate(done, known)
    except Unreadable as exc:
        notes = (*(draft.notes if draft else ()), Note("", "problem", str(exc)))
        agent = slug(draft.name) if draft is not None else None
        return FileReport(str(path), kind, agent, "skipped", notes), None
    return FileReport(str(path), kind, done.name, "loaded"), (draft, done)


def _validate(done: Mapped, known: Known) -> None:
    """Check the agent's entry as the config would (without its delegations, set later)."""
    from agents_mcp.config.agents import _NAMES, AgentConfig, _Names
    from agents_mcp.config.errors import describe, dotted, walk

    names = _Names(known.models, frozenset({*known.servers, *done.servers}))
    token = _NAMES.set(names)
    try:
        AgentConfig.model_validate(done.agent)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc, owner = walk(error["loc"], AgentConfig)
            problems.append(f"{dotted(loc)}: {describe(error, owner)}")
        raise Unreadable("; ".join(problems)) from None
    finally:
        _NAMES.reset(token)


def _name_servers(
    mapped: list[tuple[Draft, Mapped]], configured: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Give each inline server its name: its own, unless another definition of that name
    differs (the config's or another file's); then ``<agent>-<server>``. Each agent's
    entries are renamed to match."""
    definitions: dict[str, list[dict[str, Any]]] = {}
    for _, m in mapped:
        for name, entry in m.servers.items():
            definitions.setdefault(name, []).append(entry)
    out: dict[str, dict[str, Any]] = {}
    for draft, m in mapped:
        renamed: dict[str, str] = {}
        for name, entry in m.servers.items():
            others = [*definitions[name], *([configured[name]] if name in configured else [])]
            if all(o == entry for o in others):
                final = name
            else:
                final = re.sub(r"_+", "_", f"{m.name}-{name}").strip("_")
                draft.note(
                    f"servers: {name}",
                    "converted",
                    f"named {final!r}: another definition of {name!r} differs",
                )
            renamed[name] = final
            if final not in configured:
                out[final] = entry
        agent = m.agent
        agent["servers"] = [renamed.get(s, s) for s in agent["servers"]]
        for key in ("tools", "disabled_tools"):
            if key in agent:
                agent[key] = {renamed.get(s, s): t for s, t in agent[key].items()}
    return out


def _delegates(draft: Draft, m: Mapped, agents: Mapping[str, str]) -> list[str]:
    out = []
    for name in m.delegates:
        if name in agents and name != m.name:
            out.append(name)
            draft.note(f"agents: {name}", "converted", f"may delegate to {name!r}")
        else:
            draft.note(f"agents: {name}", "ignored", "no such agent here")
    return out
