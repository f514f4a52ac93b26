"""``agents-mcp install``, through the real entry point, against a scratch home."""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from inline_snapshot import snapshot

from agents_mcp.cli.install import client_file
from tests.cli.runner import Options, agents_mcp, scrub
from tests.processes import ROOT, write_config

pytestmark = pytest.mark.anyio

EXAMPLE = ROOT / "examples" / "agents.toml"
AGENTS_MCP = str(Path(sysconfig.get_path("scripts")) / "agents-mcp")


def needs_a_key(tmp_path: Path) -> Path:
    """A config that names a variable without a default (so the entry needs a value)."""
    return write_config(
        tmp_path / "keyed.json",
        {
            "models": {
                "main": {
                    "base_url": "${KEYED_URL:-https://llm.example/v1}",
                    "api_key": "${KEYED_API_KEY}",
                    "model": "m",
                }
            },
            "agents": {"a": {"description": "d", "model": "main"}},
        },
    )


def clean(tmp_path: Path, **env: str) -> Options:
    """Runs in tmp_path with no `claude` on PATH, whatever this machine has installed."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    return {
        "tmp_path": tmp_path,
        "inherit": False,
        "environ": {"PATH": str(tmp_path / "bin"), **env},
    }


async def test_claude_desktop_gets_the_entry_with_a_backup_and_never_a_silent_replace(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "config" / "Claude"  # Linux: $XDG_CONFIG_HOME/Claude
    folder.mkdir(parents=True)
    file = folder / "claude_desktop_config.json"
    before: dict[str, Any] = {"mcpServers": {"other": {"command": "other-server"}}, "theme": "dark"}
    file.write_text(json.dumps(before))
    common = clean(tmp_path)
    added = await agents_mcp("install", "claude-desktop", "--config", str(EXAMPLE), **common)
    assert (added.code, added.out) == (0, "")
    after = json.loads(file.read_text())
    assert (
        after["theme"] == "dark" and after["mcpServers"]["other"] == before["mcpServers"]["other"]
    )
    assert after["mcpServers"]["agents"] == {
        "command": AGENTS_MCP,
        "args": ["serve", "--config", str(EXAMPLE)],
        "env": {  # every variable the example names, at its default: it changes nothing
            "OPENAI_BASE_URL": "https://api.openai.com/v1",
            "OPENAI_API_KEY": "<OPENAI_API_KEY>",  # api.openai.com needs one: fill it in
            "OPENAI_MODEL": "gpt-4.1-mini",
            "AGENTS_FILES": ".",
        },
    }
    (backup,) = folder.glob("claude_desktop_config.json.*.bak")
    assert json.loads(backup.read_text()) == before
    assert scrub(added.err.replace(backup.name, "<backup>")) == snapshot("""\
Added 'agents' to Claude Desktop's config: <tmp>/config/Claude/claude_desktop_config.json
  the previous file is kept as <tmp>/config/Claude/<backup>
  fill in OPENAI_API_KEY (placeholders or empty): put the real values in <tmp>/config/Claude/claude_desktop_config.json, or install again with --env NAME=VALUE --force; never in the agents-mcp config
  restart Claude Desktop to load it
""")
    same = await agents_mcp("install", "claude-desktop", "--config", str(EXAMPLE), **common)
    assert same.code == 0 and "nothing to do" in same.err

    keyed = str(needs_a_key(tmp_path))
    refused = await agents_mcp("install", "claude-desktop", "--config", keyed, **common)
    assert refused.code == 2
    assert scrub(refused.err) == snapshot(
        "agents-mcp: Claude Desktop already has a server named 'agents' in <tmp>/config/Claude/claude_desktop_config.json; choose another --name, or --force to replace it (the file is backed up first)\n"
    )
    assert json.loads(file.read_text()) == after
    forced = await agents_mcp(
        "install", "claude-desktop", "--config", keyed, "--force", "--env", "KEYED_URL=http://x/v1",
        **common,
    )  # fmt: skip
    assert forced.code == 0, forced.err
    assert json.loads(file.read_text())["mcpServers"]["agents"]["env"] == {
        "KEYED_URL": "http://x/v1",
        "KEYED_API_KEY": "<KEYED_API_KEY>",  # a placeholder: never the user's value
    }
    assert "fill in KEYED_API_KEY" in forced.err
    assert len(list(folder.glob("*.bak"))) == 2


async def test_cursor_and_a_missing_client(tmp_path: Path) -> None:
    common = clean(tmp_path)
    missing = await agents_mcp("install", "cursor", "--config", str(EXAMPLE), **common)
    assert missing.code == 2
    assert scrub(missing.err) == snapshot(
        "agents-mcp: <tmp>/home/.cursor does not exist: is Cursor installed (and started once)? --print shows the entry to add by hand\n"
    )
    (tmp_path / "home" / ".cursor").mkdir(parents=True)
    ran = await agents_mcp(
        "install", "cursor", "--config", str(EXAMPLE), "--name", "helpers", **common
    )
    assert ran.code == 0, ran.err
    written = json.loads((tmp_path / "home" / ".cursor" / "mcp.json").read_text())
    assert list(written["mcpServers"]) == ["helpers"]
    assert written["mcpServers"]["helpers"]["command"] == AGENTS_MCP
    assert "kept as" not in ran.err  # there was no file to back up


async def test_claude_code_without_its_cli_writes_the_user_scope_of_claude_json(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".claude.json").write_text(json.dumps({"numStartups": 3, "projects": {}}))
    ran = await agents_mcp(
        "install", "claude-code", "--config", str(EXAMPLE),
        **clean(tmp_path),
    )  # fmt: skip
    assert ran.code == 0, ran.err
    written = json.loads((home / ".claude.json").read_text())
    assert written["numStartups"] == 3
    entry = written["mcpServers"]["agents"]
    assert (entry["type"], entry["command"]) == ("stdio", AGENTS_MCP)
    assert "start a new session" in ran.err


async def test_claude_code_with_its_cli_is_configured_through_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    existing = {"mcpServers": {"agents": {"type": "stdio", "command": "old"}}}
    (home / ".claude.json").write_text(json.dumps(existing))
    calls = tmp_path / "calls.jsonl"
    common = clean(tmp_path, CLAUDE_CALLS=str(calls))
    claude = tmp_path / "bin" / "claude"
    claude.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "with open(os.environ['CLAUDE_CALLS'], 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    claude.chmod(claude.stat().st_mode | stat.S_IXUSR)
    keyed = str(needs_a_key(tmp_path))
    refused = await agents_mcp("install", "claude-code", "--config", keyed, **common)
    ran = await agents_mcp("install", "claude-code", "--config", keyed, "--force", **common)
    printed = await agents_mcp(
        "install", "claude-code", "--config", keyed, "--print", "--name", "x", **common
    )
    assert refused.code == 2 and "--force" in refused.err
    assert ran.code == 0, ran.err
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    add = [
        "mcp", "add", "agents", "--scope", "user",
        "-e", "KEYED_URL=https://llm.example/v1", "-e", "KEYED_API_KEY=<KEYED_API_KEY>",
        "--", AGENTS_MCP, "serve", "--config", keyed,
    ]  # fmt: skip
    assert recorded == [["mcp", "remove", "agents", "--scope", "user"], add]
    assert json.loads((home / ".claude.json").read_text()) == existing  # the CLI's to change
    assert printed.code == 0 and shlex.split(printed.out)[1:] == [*add[:2], "x", *add[3:]]
    assert len(recorded) == 2  # --print ran nothing


def test_where_each_client_keeps_its_servers() -> None:
    home = Path("/home/u")
    mac = client_file("claude-desktop", platform="darwin", home=home, environ={})
    win = client_file(
        "claude-desktop",
        platform="win32",
        home=home,
        environ={"APPDATA": "C:/Users/u/AppData/Roaming"},
    )
    linux = client_file("claude-desktop", platform="linux", home=home, environ={})
    assert [str(p) for p in (mac, win, linux)] == [
        "/home/u/Library/Application Support/Claude/claude_desktop_config.json",
        "C:/Users/u/AppData/Roaming/Claude/claude_desktop_config.json",
        "/home/u/.config/Claude/claude_desktop_config.json",
    ]
    assert client_file("claude-code", home=home) == home / ".claude.json"
    assert client_file("cursor", home=home) == home / ".cursor" / "mcp.json"
    assert os.sep == "/"  # the paths above are written for POSIX


async def test_uninstall_takes_out_only_an_agents_mcp_entry_after_a_backup(
    tmp_path: Path,
) -> None:
    cursor = tmp_path / "home" / ".cursor"
    cursor.mkdir(parents=True)
    file = cursor / "mcp.json"
    file.write_text(json.dumps({"mcpServers": {"other": {"command": "other-server"}}}))
    common = clean(tmp_path)
    added = await agents_mcp("install", "cursor", "--config", str(EXAMPLE), **common)
    assert added.code == 0, added.err
    removed = await agents_mcp("uninstall", "cursor", **common)
    backups = {p: json.loads(p.read_text()) for p in cursor.glob("mcp.json.*.bak")}
    again = await agents_mcp("uninstall", "cursor", **common)
    foreign = await agents_mcp("uninstall", "cursor", "--name", "other", **common)
    assert json.loads(file.read_text()) == {"mcpServers": {"other": {"command": "other-server"}}}
    forced = await agents_mcp("uninstall", "cursor", "--name", "other", "--force", **common)
    assert (removed.code, removed.out) == (0, "")
    # One backup by install, one by uninstall: the file as it was, the entry in it.
    (kept,) = [p for p, data in backups.items() if "agents" in data["mcpServers"]]
    assert len(backups) == 2
    assert scrub(removed.err.replace(kept.name, "<backup>")) == snapshot("""\
Removed 'agents' from Cursor's config: <tmp>/home/.cursor/mcp.json
  the previous file is kept as <tmp>/home/.cursor/<backup>
  restart Cursor for it to take effect
""")
    assert (again.code, scrub(again.err)) == (
        0,
        "Cursor has no server named 'agents' in <tmp>/home/.cursor/mcp.json (its servers:"
        " other); nothing to do\n",
    )
    assert foreign.code == 2 and "does not start agents-mcp; --force" in foreign.err
    assert forced.code == 0 and json.loads(file.read_text()) == {"mcpServers": {}}


async def test_uninstall_from_claude_code_goes_through_its_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    entry = {"type": "stdio", "command": AGENTS_MCP, "args": ["serve", "--config", "x"]}
    (home / ".claude.json").write_text(json.dumps({"mcpServers": {"agents": entry}}))
    calls = tmp_path / "calls.jsonl"
    common = clean(tmp_path, CLAUDE_CALLS=str(calls))
    claude = tmp_path / "bin" / "claude"
    claude.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "with open(os.environ['CLAUDE_CALLS'], 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    claude.chmod(claude.stat().st_mode | stat.S_IXUSR)
    ran = await agents_mcp("uninstall", "claude-code", **common)
    assert ran.code == 0, ran.err
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [
        ["mcp", "remove", "agents", "--scope", "user"]
    ]
    assert "start a new session" in ran.err
