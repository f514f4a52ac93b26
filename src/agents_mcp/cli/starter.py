"""``agents-mcp init``: a commented starter configuration and the client snippet for it."""

from __future__ import annotations

import json
import os
import shlex
import sys
import sysconfig
import tomllib
from pathlib import Path
from typing import Any

from agents_mcp.errors import InvalidRequest

STARTER = """\
# agents-mcp configuration. Each [agents.<name>] table is an agent that your MCP client
# (Claude Desktop, Claude Code, Cursor, …) can talk to through the chat_with_agent tool.
#
#   agents-mcp check --config {name}             is everything reachable?
#   agents-mcp chat demo "hello" --config {name}  talk to an agent from the terminal
#   agents-mcp serve --config {name}              what your MCP client runs
#
# Every key is described in agents-mcp's docs/configuration.md.
# "${{NAME}}" reads an environment variable, "${{NAME:-default}}" with a default.
# Secrets (API keys, tokens) belong in the environment, never in this file.

# --- Models: the LLM endpoints agents think with ---------------------------------------

# The bundled demo model needs no key and no network. It echoes what you say, and
# "call <tool> {{json}}" makes it call that tool.
[models.demo]
provider = "demo"

# Any OpenAI-compatible Chat Completions endpoint: OpenAI, OpenRouter, Together, a local
# Ollama (http://localhost:11434/v1), vLLM, LM Studio, …
[models.default]
base_url = "${{OPENAI_BASE_URL:-https://api.openai.com/v1}}"
api_key = "${{OPENAI_API_KEY:-}}"
model = "${{OPENAI_MODEL:-gpt-4.1-mini}}"
# temperature = 0.2
# max_tokens = 2000

# --- Downstream MCP servers: the tools agents may use ----------------------------------
# The same shape as Claude Desktop's "mcpServers". A tool reaches the model as
# <server>__<tool>, e.g. files__read_text_file. Servers start on first use.
#
# [mcpServers.files]                       # needs Node.js
# command = "npx"
# args = ["-y", "@modelcontextprotocol/server-filesystem", "/path/to/a/folder"]
#
# [mcpServers.time]                        # needs uv
# command = "uvx"
# args = ["mcp-server-time"]

# --- Agents -----------------------------------------------------------------------------

[agents.demo]
description = "A demo agent on the bundled demo model: no API key needed."
model = "demo"

[agents.assistant]
description = "A general assistant. Ask it anything; it answers briefly."
instructions = "You are concise and precise."
model = "default"
# servers = ["files", "time"]
# require_approval = "read_only"   # ask before tools that change things (default: "always")
# personalities = {{ brief = "Answer in one sentence.", teacher = "Explain step by step." }}
# default_personality = "brief"
# params = {{ temperature = 0.3 }}

# --- agents-mcp's own server ------------------------------------------------------------
# [server]
# db = "threads.db"                         # default: the user data directory
#
# A bearer token per owner; required to serve HTTP beyond localhost. Each owner sees only
# their own threads.
# [server.tokens.alice]
# token = "${{AGENTS_MCP_TOKEN}}"
"""


def write_starter(path: Path) -> Path:
    """Write the starter config at ``path`` (a directory gets ``agents.toml``): TOML with
    comments, or the same settings as JSON for a ``.json`` name (the loader reads a file
    by its extension)."""
    if path.is_dir():
        path = path / "agents.toml"
    suffix = path.suffix.lower()
    if suffix not in ("", ".toml", ".json"):
        raise InvalidRequest(
            f"{path}: a config is TOML or JSON, read by its extension; choose a name"
            f" ending in .toml or .json, not {path.suffix}"
        )
    if path.exists():
        raise InvalidRequest(f"{path} already exists; not overwriting it (choose another PATH)")
    if not path.parent.is_dir():
        raise InvalidRequest(f"{path.parent} is not a directory")
    text = STARTER.format(name=_shown(path))
    if suffix == ".json":  # JSON has no comments: the settings alone
        text = json.dumps(tomllib.loads(text), indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return path.resolve()


def _shown(path: Path) -> str:
    """How to name the file in its own comments: relative when it is in the current dir."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def server_command(config: Path) -> dict[str, Any]:
    """The command that serves ``config`` over stdio, with absolute paths.

    Desktop apps start servers with a minimal PATH, so the executable is spelled out.
    """
    script = Path(sysconfig.get_path("scripts")) / (
        "agents-mcp.exe" if os.name == "nt" else "agents-mcp"
    )
    if script.exists():
        return {"command": str(script), "args": ["serve", "--config", str(config)]}
    return {
        "command": sys.executable,
        "args": ["-m", "agents_mcp", "serve", "--config", str(config)],
    }


def desktop_snippet(config: Path, env: dict[str, str] | None = None) -> str:
    """The ``claude_desktop_config.json`` entry for ``config``."""
    entry = server_command(config) | ({"env": env} if env else {})
    return json.dumps({"mcpServers": {"agents": entry}}, indent=2)


def next_steps(config: Path) -> list[str]:
    from agents_mcp.cli.environment import env_block, read_raw

    shown = _quote(_shown(config))
    env = env_block(read_raw(config))
    entry = server_command(config)
    add = ["claude", "mcp", "add", "agents", "--scope", "user"]
    add += [w for name, value in env.items() for w in ("-e", f"{name}={value}")]
    add += ["--", entry["command"], *entry["args"]]
    return [
        f"Wrote {config}",
        "",
        "Next:",
        f"  agents-mcp check --config {shown} --offline",
        f'  agents-mcp chat demo "hello" --config {shown}',
        "",
        "Add it to your MCP client (a backup of its config is kept):",
        "",
        f"  agents-mcp install claude-desktop --config {shown}",
        f"  agents-mcp install claude-code --config {shown}",
        f"  agents-mcp install cursor --config {shown}",
        "",
        "or by hand. Claude Desktop: add this to claude_desktop_config.json (Settings →",
        "Developer → Edit Config), fill in the env values, and restart Claude Desktop:",
        "",
        desktop_snippet(config, env),
        "",
        "Claude Code:",
        "",
        f"  {shlex.join(add)}",
    ]


def _quote(arg: str) -> str:
    return shlex.quote(arg)
