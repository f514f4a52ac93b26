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

from agents_mcp.config.agents import _NAMES, AgentConfig, TextFile, _Names
from agents_mcp.config.base import _NO_AGENTS, AgentName, ServerName, _err, _fail, _listing, _Model
from agents_mcp.config.database import is_postgres
from agents_mcp.config.errors import Loc, describe, dotted, expand, keys, order, walk
from agents_mcp.config.models import ANTHROPIC_API_KEY, ModelConfig
from agents_mcp.config.servers import DownstreamServerConfig
from agents_mcp.config.settings import ServerSettings, _beside
from agents_mcp.errors import ConfigError
from agents_mcp.structured import schema_problem


class Config(_Model):
    """The whole configuration file. ``path`` is where it was loaded from (not a file key)."""

    path: Path = Field(exclude=True)  # first, so later validators can resolve against it
    mcp_servers: dict[ServerName, DownstreamServerConfig] = Field(
        default_factory=dict, alias="mcpServers"
    )
    models: dict[str, ModelConfig] = {}
    agents: dict[AgentName, AgentConfig] = Field(default_factory=dict, validate_default=True)
    server: ServerSettings = Field(default_factory=ServerSettings)

    @model_validator(mode="wrap")
    @classmethod
    def _with_names(cls, data: Any, handler: ModelWrapValidatorHandler[Config]) -> Config:
        def keys(table: object) -> frozenset[str] | None:
            return frozenset(map(str, table)) if isinstance(table, Mapping) else None

        raw = data if isinstance(data, Mapping) else {}
        token = _NAMES.set(_Names(keys(raw.get("models", {})), keys(raw.get("mcpServers", {}))))
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
    def _some_agent(cls, agents: dict[str, AgentConfig]) -> dict[str, AgentConfig]:
        if not agents:
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
    if "path" in expanded:  # our field, filled in below; not a file key
        problems.append((("path",), f"unknown key; valid keys: {', '.join(keys(Config))}"))
        del expanded["path"]
    try:
        config = Config.model_validate({**expanded, "path": path})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc, owner = walk(error["loc"], Config)
            if loc not in env_locs:
                problems.append((loc, describe(error, owner)))
    if problems:
        lines = [f"{path}: {dotted(loc)}: {msg}" for loc, msg in sorted(problems, key=order)]
        # Raised outside the except block: the ValidationError (its text shows input values,
        # secrets included) must not ride along as __context__ into tracebacks.
        raise ConfigError("\n".join(lines))
    return config


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
