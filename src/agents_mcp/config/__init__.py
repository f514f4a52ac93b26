"""The configuration file: pydantic models for ``agents.toml`` (or ``.json``) and its loader.

::

    [mcpServers.<name>]   DownstreamServerConfig   the Claude Desktop entry shape
    [models.<name>]       ModelConfig              an LLM endpoint and the API it speaks
    [agents.<name>]       AgentConfig              what becomes one MCP tool
    [server]              ServerSettings           our own HTTP auth, database, name

:func:`load_config` parses the file, expands ``${VAR}`` / ``${VAR:-default}`` in string
values and validates everything, raising one :class:`ConfigError` with one
``file: key.path: problem`` line per problem.
"""

from __future__ import annotations

from agents_mcp.config.agents import (
    AgentConfig,
    AgentParams,
    ApprovalPolicy,
    ApprovalRules,
    TextFile,
    approval_required,
)
from agents_mcp.config.base import (
    LOCAL,
    SEPARATOR,
    AccessEntry,
    AgentName,
    ApprovalMode,
    HttpUrl,
    LocalPath,
    OwnerName,
    RuleName,
    ServerName,
    Transport,
)
from agents_mcp.config.file import Config, config_from_dict, load_config, reload_agents
from agents_mcp.config.models import (
    ANTHROPIC_API_KEY,
    ANTHROPIC_BASE_URL,
    DEFAULT_CONTEXT_TOKENS,
    ModelConfig,
)
from agents_mcp.config.servers import DownstreamServerConfig, Provider
from agents_mcp.config.settings import (
    JWTAlgorithm,
    JWTConfig,
    ServerSettings,
    TokenConfig,
)

__all__ = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "DEFAULT_CONTEXT_TOKENS",
    "LOCAL",
    "SEPARATOR",
    "AccessEntry",
    "AgentConfig",
    "AgentName",
    "AgentParams",
    "ApprovalMode",
    "ApprovalPolicy",
    "ApprovalRules",
    "Config",
    "DownstreamServerConfig",
    "HttpUrl",
    "JWTAlgorithm",
    "JWTConfig",
    "LocalPath",
    "ModelConfig",
    "OwnerName",
    "Provider",
    "RuleName",
    "ServerName",
    "ServerSettings",
    "TextFile",
    "TokenConfig",
    "Transport",
    "approval_required",
    "config_from_dict",
    "load_config",
    "reload_agents",
]
