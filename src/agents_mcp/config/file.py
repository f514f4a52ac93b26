"""The whole file (:class:`Config`) and its loaders."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agents_mcp.config.agent_files import Imported, gather
from agents_mcp.config.agents import _NAMES, AgentConfig, TextFile, _Names
from agents_mcp.config.base import _NO_AGENTS, AgentName, ServerName, _err, _fail, _listing, _Model
from agents_mcp.config.database import is_postgres
from agents_mcp.config.errors import (
    UNSET,
    Loc,
    describe,
    dotted,
    expand,
    keys,
    order,
    walk,
)
from agents_mcp.config.models import ANTHROPIC_API_KEY, ModelConfig
from agents_mcp.config.servers import DownstreamServerConfig
from agents_mcp.config.settings import ServerSettings, _beside
from agents_mcp.errors import ConfigError
from agents_mcp.structured import schema_problem


class Config(_Model):
    """The whole configuration file. ``path`` is where it was loaded from (not a file key)."""

    path: Path = Field(exclude=True)  # first, so later validators can resolve against it
    imported: Imported = Field(default_factory=Imported, exclude=True, repr=False)
    """What ``[server] agents_from`` added, file by file (not a file key)."""
    mcp_servers: dict[ServerName, DownstreamServerConfig] = Field(
        default_factory=dict, alias="mcpServers"
    )
    models: dict[str, ModelConfig] = {}
    model_aliases: dict[str, str] = {}
    """Model names used by agent files (``sonnet``, ``inherit``…) -> a ``[models]`` name."""
    agents: dict[AgentName, AgentConfig] = Field(default_factory=dict, validate_default=True)
    server: ServerSettings = Field(default_factory=ServerSettings)
    unresolved_models: dict[str, tuple[str, ...]] = Field(default_factory=dict, exclude=True)
    """Models that name environment variables that are not set (not a file key): name →
    those variables. They are not in ``models``: an agent that uses one fails when it is
    called, so one missing key does not stop the others."""
    source: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)
    """The file's data as read (before ``${VAR}`` expansion), to read the agent files
    again (:func:`reload_agents`)."""

    def origin(self, agent: str) -> str | None:
        """The file ``agent`` was read from; None: an ``[agents]`` table of the config."""
        return next(
            (f.path for f in self.imported.files if f.agent == agent and f.status == "loaded"),
            None,
        )

    @field_validator("model_aliases")
    @classmethod
    def _aliases_name_models(cls, aliases: dict[str, str]) -> dict[str, str]:
        names = _NAMES.get()
        models = names.models if names is not None else None
        if models is not None:
            _fail(
                ((alias,), f"unknown model {target!r}; valid: {_listing(models)}")
                for alias, target in aliases.items()
                if target not in models
            )
        return aliases

    @model_validator(mode="wrap")
    @classmethod
    def _with_names(cls, data: Any, handler: ModelWrapValidatorHandler[Config]) -> Config:
        def keys(table: object) -> frozenset[str] | None:
            return frozenset(map(str, table)) if isinstance(table, Mapping) else None

        raw = data if isinstance(data, Mapping) else {}
        models = keys(raw.get("models", {}))
        if models is not None:
            models |= keys(raw.get("unresolved_models", {})) or frozenset()
        token = _NAMES.set(_Names(models, keys(raw.get("mcpServers", {}))))
        try:
            return handler(data)
        finally:
            _NAMES.reset(token)

    @field_validator("mcp_servers")
    @classmethod
    def _resolve_cwd(
        cls, servers: dict[str, DownstreamServerConfig], info: ValidationInfo
    ) -> dict[str, DownstreamServerConfig]:
        return {
            n: s.model_copy(update={"cwd": _beside(s.cwd, info)}) if s.cwd else s
            for n, s in servers.items()
        }

    @field_validator("agents")
    @classmethod
    def _some_agent(
        cls, agents: dict[str, AgentConfig], info: ValidationInfo
    ) -> dict[str, AgentConfig]:
        if not agents:
            imported = info.data.get("imported")
            if imported is not None and imported.folders:
                raise _err(
                    "no_agents",
                    f"{_NO_AGENTS}, or agent files to the folders of [server] agents_from"
                    " (`agents-mcp check` says why a file was left out)",
                )
            raise _err("no_agents", _NO_AGENTS)
        problems: list[tuple[Loc, str]] = []
        for name, agent in agents.items():
            for i, other in enumerate(agent.agents):
                if other not in agents:
                    valid = _listing(agents)
                    problems.append(
                        ((name, "agents", i), f"unknown agent {other!r}; valid: {valid}")
                    )
                elif other == name:
                    problems.append(((name, "agents", i), "an agent cannot delegate to itself"))
        _fail(problems)
        return agents

    @field_validator("agents", mode="after")
    @classmethod
    def _read_text_files(
        cls, agents: dict[str, AgentConfig], info: ValidationInfo
    ) -> dict[str, AgentConfig]:
        """Load ``instructions_file`` and ``{ file = … }`` personalities into the config."""
        problems: list[tuple[Loc, str]] = []

        def read(loc: Loc, path: str) -> str:
            full = _beside(os.path.expanduser(path), info)
            try:
                with open(full, encoding="utf-8") as f:
                    return f.read()
            except OSError as exc:
                problems.append((loc, f"cannot read {full}: {exc.strerror or exc}"))
                return ""

        out: dict[str, AgentConfig] = {}
        for name, agent in agents.items():
            update: dict[str, Any] = {}
            if agent.instructions_file:
                update["instructions"] = read((name, "instructions_file"), agent.instructions_file)
            if any(isinstance(p, TextFile) for p in agent.personalities.values()):
                update["personalities"] = {
                    k: read((name, "personalities", k, "file"), v.file)
                    if isinstance(v, TextFile)
                    else v
                    for k, v in agent.personalities.items()
                }
            out[name] = agent.model_copy(update=update) if update else agent
        _fail(problems)
        return out

    @field_validator("agents", mode="after")
    @classmethod
    def _read_schema_files(
        cls, agents: dict[str, AgentConfig], info: ValidationInfo
    ) -> dict[str, AgentConfig]:
        """Load each ``output_schema_file`` (JSON) into ``output_schema``."""
        problems: list[tuple[Loc, str]] = []
        out = dict(agents)
        for name, agent in agents.items():
            if not agent.output_schema_file:
                continue
            full = _beside(os.path.expanduser(agent.output_schema_file), info)
            loc = (name, "output_schema_file")
            try:
                with open(full, encoding="utf-8") as f:
                    schema = json.load(f)
            except OSError as exc:
                problems.append((loc, f"cannot read {full}: {exc.strerror or exc}"))
                continue
            except ValueError as exc:
                problems.append((loc, f"{full} is not JSON: {exc}"))
                continue
            problem = schema_problem(schema)
            if problem is not None:
                problems.append((loc, f"{full}: {problem}"))
            else:
                out[name] = agent.model_copy(update={"output_schema": schema})
        _fail(problems)
        return out

    @field_validator("server")
    @classmethod
    def _resolve_db(cls, server: ServerSettings, info: ValidationInfo) -> ServerSettings:
        if not server.db or is_postgres(server.db) or server.db == ":memory:":
            return server
        return server.model_copy(update={"db": _beside(server.db, info)})


class InvalidConfig(ConfigError):
    """An invalid config, with what its agent files gave (``check`` says why each
    file was left out, which may be why no agent is left)."""

    def __init__(self, message: str, imported: Imported) -> None:
        super().__init__(message)
        self.imported = imported


# --- loading ----------------------------------------------------------------------------------


def config_from_dict(
    data: Mapping[str, Any], *, path: Path, environ: Mapping[str, str] | None = None
) -> Config:
    """Validate already-parsed config data; ``path`` names the file in messages and
    anchors relative paths. Raises :class:`ConfigError` listing every problem."""
    problems: list[tuple[Loc, str]] = []
    data = _with_default_keys(data)
    expanded = expand(data, (), os.environ if environ is None else environ, problems)
    env_locs = {loc for loc, _ in problems}  # a failed expansion explains later errors there
    for own in ("path", "imported", "source", "unresolved_models"):  # ours; not file keys
        if own in expanded:
            problems.append(((own,), f"unknown key; valid keys: {', '.join(keys(Config))}"))
            del expanded[own]
    imported = gather(expanded, path, os.environ if environ is None else environ)
    if imported.agents:
        agents, servers = expanded.get("agents") or {}, expanded.get("mcpServers") or {}
        if isinstance(agents, Mapping) and isinstance(servers, Mapping):
            expanded["agents"] = {**agents, **imported.agents}
            expanded["mcpServers"] = {**servers, **imported.servers}
    unresolved = _defer_models(expanded, problems, env_locs)
    try:
        config = Config.model_validate(
            {
                **expanded,
                "path": path,
                "imported": imported,
                "source": dict(data),
                "unresolved_models": unresolved,
            }
        )
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc, owner = walk(error["loc"], Config)
            if loc not in env_locs:
                problems.append((loc, describe(error, owner)))
    if problems:
        lines = [f"{path}: {dotted(loc)}: {msg}" for loc, msg in sorted(problems, key=order)]
        # Raised outside the except block: the ValidationError (its text shows input values,
        # secrets included) must not ride along as __context__ into tracebacks.
        raise InvalidConfig("\n".join(lines), imported)
    return config


def _defer_models(
    expanded: dict[str, Any], problems: list[tuple[Loc, str]], env_locs: set[Loc]
) -> dict[str, tuple[str, ...]]:
    """Take the models that name an unset environment variable out of ``expanded`` (and
    those problems out of ``problems``): name → the unset variables, reported when an
    agent that uses one is called. Their other problems stay, so the file is still
    checked whole."""
    models = expanded.get("models")
    if not isinstance(models, dict):
        return {}
    unresolved: dict[str, list[str]] = {}
    for loc, msg in list(problems):
        if loc[:1] == ("models",) and len(loc) > 2 and msg.startswith(UNSET):
            names = unresolved.setdefault(str(loc[1]), [])
            names.append(msg.removeprefix(UNSET).split(" ", 1)[0])
            problems.remove((loc, msg))
    for name in unresolved:
        entry = models.pop(name)
        if isinstance(entry, Mapping):
            try:
                ModelConfig.model_validate(entry)
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    loc, owner = walk(error["loc"], ModelConfig)
                    full = ("models", name, *loc)
                    if full not in env_locs:
                        problems.append((full, describe(error, owner)))
    return {name: tuple(dict.fromkeys(found)) for name, found in unresolved.items()}


def _with_default_keys(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data`` with ``api_key = "${ANTHROPIC_API_KEY:-}"`` on anthropic models that set none."""
    models = data.get("models")
    if not isinstance(models, Mapping):
        return data
    filled = {
        name: {**m, "api_key": ANTHROPIC_API_KEY}
        if isinstance(m, Mapping) and m.get("provider") == "anthropic" and "api_key" not in m
        else m
        for name, m in models.items()
    }
    return {**data, "models": filled}


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read, parse (``.json`` as JSON, anything else as TOML) and validate a config file."""
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    data: Any
    if file.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{file}: line {exc.lineno}, column {exc.colno}: JSON syntax error: {exc.msg}"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: (top level): expected a JSON object")
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # Python 3.11 only has the position inside the message: "… (at line 3, column 9)".
            m = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", str(exc))
            where, what = (m[2], m[1]) if m else ("", str(exc))
            raise ConfigError(
                f"{file}: {where + ': ' if where else ''}TOML syntax error: {what}"
            ) from None
    return config_from_dict(data, path=file, environ=environ)


def reload_agents(config: Config, *, environ: Mapping[str, str] | None = None) -> Config:
    """``config`` with its agent files (``[server] agents_from``) read again; the config
    file itself is not (its models and servers are what the running server has).
    Raises :class:`ConfigError` when the result is not a valid config (no agent left)."""
    return config_from_dict(config.source, path=config.path, environ=environ)
