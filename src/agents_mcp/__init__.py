"""agents-mcp: run configured LLM agents as MCP tools.

The public surface is small: build a server from a config, or drive the same agents from
your own code. Names load lazily, so ``import agents_mcp`` stays cheap (the CLI's quick
commands never pay for the MCP stack).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from agents_mcp.config import Config, load_config
    from agents_mcp.errors import (
        AgentsMCPError,
        BudgetExceeded,
        ClientError,
        ConfigError,
        Conflict,
        DownstreamUnavailable,
        InternalError,
        InvalidRequest,
        LLMError,
        LostClaim,
        MaxIterations,
        NotFound,
        OutputInvalid,
        RunError,
        StopRequested,
        StoreError,
    )
    from agents_mcp.server.app import create_server
    from agents_mcp.server.transports import serve
    from agents_mcp.threads.runtime import open_threads

_WHERE = {
    "Config": "config",
    "load_config": "config",
    "AgentsMCPError": "errors",
    "BudgetExceeded": "errors",
    "ClientError": "errors",
    "ConfigError": "errors",
    "Conflict": "errors",
    "InternalError": "errors",
    "DownstreamUnavailable": "errors",
    "InvalidRequest": "errors",
    "LLMError": "errors",
    "LostClaim": "errors",
    "MaxIterations": "errors",
    "NotFound": "errors",
    "OutputInvalid": "errors",
    "RunError": "errors",
    "StopRequested": "errors",
    "StoreError": "errors",
    "open_threads": "threads.runtime",
    "create_server": "server.app",
    "serve": "server.transports",
}

__all__ = [
    "AgentsMCPError",
    "BudgetExceeded",
    "ClientError",
    "Config",
    "ConfigError",
    "Conflict",
    "DownstreamUnavailable",
    "InternalError",
    "InvalidRequest",
    "LLMError",
    "LostClaim",
    "MaxIterations",
    "NotFound",
    "OutputInvalid",
    "RunError",
    "StopRequested",
    "StoreError",
    "__version__",
    "create_server",
    "load_config",
    "open_threads",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"agents_mcp.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'agents_mcp' has no attribute {name!r}")
