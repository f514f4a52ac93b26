"""``agents-mcp install CLIENT``: add this server to an MCP client's configuration
(``agents-mcp uninstall CLIENT`` takes it out again).

The entry starts agents-mcp with absolute paths (desktop apps start servers with a bare
``PATH`` in an arbitrary directory) and carries the ``env`` block the config needs: every
``${NAME}`` it names, with the default the file gives (changing nothing) or the
placeholder ``<NAME>`` to fill in. Real values only come from ``--env NAME=VALUE``; the
user's environment is never copied into a file. An existing file is backed up first, and
an existing entry of the same name is never replaced without ``--force``.

Where each client keeps its servers:

- Claude Desktop: ``claude_desktop_config.json`` in ``~/Library/Application Support/Claude``
  (macOS), ``%APPDATA%\\Claude`` (Windows), ``$XDG_CONFIG_HOME/Claude`` (Linux builds).
- Claude Code: like ``fastmcp install``, through its own CLI when ``claude`` is on
  ``PATH`` (``claude mcp add --scope user``), since Claude Code owns that file; otherwise
  the user-scope ``mcpServers`` of ``~/.claude.json``.
- Cursor: ``~/.cursor/mcp.json``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from agents_mcp.cli.environment import env_block, placeholders, read_raw, references
from agents_mcp.cli.invocation import Invocation
from agents_mcp.cli.starter import server_command
from agents_mcp.cli.terminal import Console
from agents_mcp.errors import InvalidRequest

Client = Literal["claude-desktop", "claude-code", "cursor"]
TITLES: dict[Client, str] = {
    "claude-desktop": "Claude Desktop",
    "claude-code": "Claude Code",
    "cursor": "Cursor",
}


def client_file(
    client: Client,
    *,
    platform: str = sys.platform,
    home: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Path:
    """The file where ``client`` keeps its MCP servers on this platform."""
    home = home or Path.home()
    if client == "claude-code":
        return home / ".claude.json"
    if client == "cursor":
        return home / ".cursor" / "mcp.json"
    if platform == "darwin":
        folder = home / "Library" / "Application Support" / "Claude"
    elif platform == "win32":
        folder = Path(environ.get("APPDATA") or home / "AppData" / "Roaming") / "Claude"
    else:
        folder = Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "Claude"
    return folder / "claude_desktop_config.json"


def entry(client: Client, config: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The server entry for ``client`` that serves ``config``."""
    found: dict[str, Any] = {"type": "stdio"} if client == "claude-code" else {}
    found |= server_command(config)
    if env:
        found["env"] = dict(env)
    return found


def claude_mcp_add(name: str, entry: Mapping[str, Any], claude: str = "claude") -> list[str]:
    """The ``claude mcp add`` command line for ``entry`` (user scope)."""
    words = [claude, "mcp", "add", name, "--scope", "user"]
    for key, value in entry.get("env", {}).items():
        words += ["-e", f"{key}={value}"]
    return [*words, "--", entry["command"], *entry["args"]]


def install(
    invocation: Invocation,
    client: Client,
    *,
    name: str,
    env: Sequence[str],
    print_only: bool,
    force: bool,
    console: Console,
) -> int:
    """Run the ``install`` command; returns the exit code."""
    config = invocation.config_path().resolve()
    _validate(invocation, config)
    block = env_block(read_raw(config), _pairs(env))
    server = entry(client, config, block)
    title = TITLES[client]
    if print_only:
        if client == "claude-code":
            console.line(shlex.join(claude_mcp_add(name, server)))
        else:
            console.line(json.dumps({"mcpServers": {name: server}}, indent=2))
        return 0
    claude = shutil.which("claude") if client == "claude-code" else None
    path = client_file(client)
    existing = _read(path, title, must_exist=claude is None)
    servers = existing.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise InvalidRequest(f"{path}: mcpServers is not an object; fix the file first")
    if servers.get(name) == server:
        console.status(f"{title} already has this entry {name!r} in {path}; nothing to do")
        return 0
    if name in servers and not force:
        raise InvalidRequest(
            f"{title} already has a server named {name!r} in {path}; choose another --name,"
            " or --force to replace it (the file is backed up first)"
        )
    if claude is not None:
        _run_claude(claude, name, server, replace=name in servers)
        console.status(f"Added {name!r} to {title} (user scope) with `claude mcp add`")
    else:
        backup = _write(path, existing | {"mcpServers": servers | {name: server}})
        console.status(f"Added {name!r} to {title}'s config: {path}")
        if backup is not None:
            console.status(f"  the previous file is kept as {backup}")
    _after(console, client, title, block, path if claude is None else None)
    return 0


def _validate(invocation: Invocation, config: Path) -> None:
    """The config must load; its required variables may be missing here (the client's
    env block will give them)."""
    from agents_mcp.config import load_config

    if not config.exists():
        invocation.load()  # says how to name the config
    required = [n for n, d in references(read_raw(config)).items() if d is None]
    environ = dict.fromkeys(required, "x") | dict(os.environ)
    load_config(config, environ=environ)


def _pairs(given: Sequence[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise InvalidRequest(f"--env {item!r}: write NAME=VALUE")
        pairs[key] = value
    return pairs


def _read(path: Path, title: str, *, must_exist: bool) -> dict[str, Any]:
    if not path.parent.is_dir():
        raise InvalidRequest(
            f"{path.parent} does not exist: is {title} installed (and started once)?"
            " --print shows the entry to add by hand"
        )
    if not path.exists():
        if must_exist and path.name == ".claude.json":
            raise InvalidRequest(
                f"{path} does not exist and `claude` is not on PATH: is Claude Code"
                " installed? --print shows the `claude mcp add` command"
            )
        return {}
    text = path.read_text(encoding="utf-8").strip()
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{path} is not valid JSON (line {exc.lineno}): fix it, or --print the entry"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"{path} does not hold a JSON object; fix it first")
    return data


def _backup_name(path: Path) -> Path:
    """A dated name for a copy of ``path`` that no earlier backup has (two installs in
    the same second must not leave one backup in place of two)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup, n = path.with_name(f"{path.name}.{stamp}.bak"), 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{path.name}.{stamp}-{n}.bak")
    return backup


def _write(path: Path, data: Mapping[str, Any]) -> Path | None:
    """Replace ``path`` atomically, keeping a dated copy of the old file."""
    backup = None
    if path.exists():
        backup = _backup_name(path)
        shutil.copy2(path, backup)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        if backup is not None:
            shutil.copymode(backup, temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return backup


def _run_claude(claude: str, name: str, server: Mapping[str, Any], *, replace: bool) -> None:
    commands = [[claude, "mcp", "remove", name, "--scope", "user"]] if replace else []
    commands.append(claude_mcp_add(name, server, claude))
    _run(commands)


def _run(commands: Sequence[Sequence[str]]) -> None:
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            raise InvalidRequest(
                f"`{shlex.join(command[:4])} …` failed"
                f"{': ' + why[-1] if why else f' (exit {done.returncode})'}"
            )


def _after(
    console: Console, client: Client, title: str, env: Mapping[str, str], path: Path | None
) -> None:
    todo = placeholders(env) + [n for n, v in env.items() if not v]
    if todo:
        where = path or client_file(client)
        console.status(
            f"  fill in {', '.join(todo)} (placeholders or empty): put the real values in"
            f" {where}, or install again with --env NAME=VALUE --force; never in the"
            " agents-mcp config"
        )
    restart = "start a new session" if client == "claude-code" else f"restart {title}"
    console.status(f"  {restart} to load it")


def uninstall(client: Client, *, name: str, force: bool, console: Console) -> int:
    """Run the ``uninstall`` command: remove the entry ``name`` from ``client``, after a
    backup (Claude Code: with ``claude mcp remove`` when ``claude`` is on PATH). An entry
    that does not start agents-mcp stays unless ``--force``. Nothing to remove is exit 0."""
    title = TITLES[client]
    claude = shutil.which("claude") if client == "claude-code" else None
    path = client_file(client)
    existing = _read(path, title, must_exist=False) if path.parent.is_dir() else {}
    servers = existing.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise InvalidRequest(f"{path}: mcpServers is not an object; fix the file first")
    if name not in servers:
        others = f" (its servers: {', '.join(servers)})" if servers else ""
        console.status(f"{title} has no server named {name!r} in {path}{others}; nothing to do")
        return 0
    if not force and not starts_agents_mcp(servers[name]):
        raise InvalidRequest(
            f"the server {name!r} of {title} ({path}) does not start agents-mcp;"
            " --force removes it anyway (the file is backed up first)"
        )
    if claude is not None:
        _run([[claude, "mcp", "remove", name, "--scope", "user"]])
        console.status(f"Removed {name!r} from {title} (user scope) with `claude mcp remove`")
    else:
        rest = {k: v for k, v in servers.items() if k != name}
        backup = _write(path, existing | {"mcpServers": rest})
        console.status(f"Removed {name!r} from {title}'s config: {path}")
        if backup is not None:
            console.status(f"  the previous file is kept as {backup}")
    restart = "start a new session" if client == "claude-code" else f"restart {title}"
    console.status(f"  {restart} for it to take effect")
    return 0


def starts_agents_mcp(entry: Any) -> bool:
    """Whether a client's server entry runs agents-mcp (as ``install`` writes it)."""
    if not isinstance(entry, Mapping):
        return False
    command = Path(str(entry.get("command", ""))).name
    args = entry.get("args", [])
    return command.startswith("agents-mcp") or (isinstance(args, list) and "agents_mcp" in args)
