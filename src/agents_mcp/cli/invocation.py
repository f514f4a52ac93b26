"""Where a command's config and database are, and how to say the command again.

The hints the CLI prints (``continue with `agents-mcp chat demo --thread …```) repeat the
``--config`` and ``--db`` the user gave, so they work when copied as they are.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agents_mcp.errors import ConfigError

if TYPE_CHECKING:
    from agents_mcp.config import Config

DEFAULT_CONFIG = "agents.toml"
CONFIG_VARIABLE = "AGENTS_MCP_CONFIG"


@dataclass(frozen=True)
class Invocation:
    """The ``--config`` and ``--db`` options as given on the command line (None: not given)."""

    config: str | None = None
    db: str | None = None

    def config_path(self) -> Path:
        """``--config``, else ``$AGENTS_MCP_CONFIG``, else ``./agents.toml``."""
        return Path(self.config or os.environ.get(CONFIG_VARIABLE) or DEFAULT_CONFIG)

    def load(self) -> Config:
        """The config; a missing file says the three ways to name one."""
        from agents_mcp.config import load_config

        path = self.config_path()
        if not path.exists():
            if self.config is not None:
                where = f"{path} (from --config)"
            elif os.environ.get(CONFIG_VARIABLE):
                where = f"{path} (from ${CONFIG_VARIABLE})"
            else:
                where = f"{path} (the default)"
            raise ConfigError(
                f"{where}: no such file; pass --config FILE, set {CONFIG_VARIABLE}=FILE,"
                " or write a starter with `agents-mcp init`"
            )
        return load_config(path)

    def db_path(self, config: Config | None) -> str:
        from agents_mcp.store import resolve_db

        return resolve_db(config.server.db if config is not None else None, self.db)

    def history_db(self) -> str:
        """The database ``threads``/``show`` read: the config is only consulted when given
        or present (``./agents.toml``), since listing threads needs no config."""
        if self.db is not None:
            return self.db_path(None)
        named = self.config is not None or os.environ.get(CONFIG_VARIABLE)
        if not named and not Path(DEFAULT_CONFIG).is_file():
            return self.db_path(None)
        return self.db_path(self.load())

    def options(self) -> list[str]:
        """The options to repeat in a hint, as given."""
        given = [("--config", self.config), ("--db", self.db)]
        return [word for name, value in given if value is not None for word in (name, value)]

    def command(self, *words: str) -> str:
        """``agents-mcp WORDS… [--config …] [--db …]``, quoted for a POSIX shell."""
        return shlex.join(["agents-mcp", *words, *self.options()])
