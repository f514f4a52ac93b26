"""Every file in examples/ is used here, the way the README tells a newcomer to use it."""

from __future__ import annotations

import importlib.util
import json
import sys
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from inline_snapshot import snapshot

from agents_mcp.config import load_config
from tests.processes import ROOT

pytestmark = pytest.mark.anyio

EXAMPLES = ROOT / "examples"
PLACEHOLDER = "/path/to/agents-mcp"


def demo_server() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_server", EXAMPLES / "demo_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_file_is_covered_here() -> None:
    names = sorted(p.name for p in EXAMPLES.iterdir() if p.is_file())
    assert names == snapshot(
        ["agents.toml", "claude_desktop_config.json", "demo_server.py", "orchestrator.md"]
    )


def test_the_example_config_loads_on_a_fresh_machine() -> None:
    """No environment at all: every variable it names has a default."""
    config = load_config(EXAMPLES / "agents.toml", environ={})
    summary = {
        name: {
            "model": agent.model,
            "servers": agent.servers,
            "agents": agent.agents,
            "policy": agent.require_approval
            if isinstance(agent.require_approval, str)
            else agent.require_approval.model_dump(),
        }
        for name, agent in config.agents.items()
    }
    assert summary == snapshot(
        {
            "demo": {"model": "demo", "servers": ["demo"], "agents": [], "policy": "read_only"},
            "files": {
                "model": "default",
                "servers": ["fs"],
                "agents": [],
                "policy": {
                    "always": [
                        "fs__write_file",
                        "fs__edit_file",
                        "fs__move_file",
                        "fs__create_directory",
                    ],
                    "never": [],
                    "default": "read_only",
                },
            },
            "clock": {"model": "default", "servers": ["time"], "agents": [], "policy": "never"},
            "orchestrator": {
                "model": "default",
                "servers": [],
                "agents": ["files", "clock"],
                "policy": "always",
            },
        }
    )
    servers = {n: (s.command, s.args, s.cwd) for n, s in config.mcp_servers.items()}
    assert servers == {
        "demo": ("python", ["demo_server.py"], str(EXAMPLES)),
        "fs": ("npx", ["-y", "@modelcontextprotocol/server-filesystem", "."], str(EXAMPLES)),
        "time": ("uvx", ["mcp-server-time"], None),
    }
    instructions = (EXAMPLES / "orchestrator.md").read_text()
    assert config.agents["orchestrator"].instructions == instructions
    assert config.models["demo"].provider == "demo"


async def test_the_demo_server_has_a_read_only_tool_and_one_that_needs_approval() -> None:
    async with Client(demo_server().mcp) as client:
        tools = await client.list_tools()
        listed = await client.call_tool("list_notes", {})
    hints = {t.name: bool(t.annotations and t.annotations.read_only_hint) for t in tools}
    assert hints == {"list_notes": True, "add_note": False}
    assert listed.data == "welcome: Notes live in memory until the server stops."


def desktop_entry(tmp_path: Path) -> tuple[str, list[str], dict[str, str]]:
    """The example's entry with the placeholder paths made real, and nothing else changed."""
    entry = json.loads((EXAMPLES / "claude_desktop_config.json").read_text())["mcpServers"][
        "agents"
    ]
    assert entry["command"] == f"{PLACEHOLDER}/.venv/bin/agents-mcp"
    # Where this checkout's agents-mcp script is (CI installs into another venv).
    command = str(Path(sysconfig.get_path("scripts")) / "agents-mcp")
    args = [a.replace(PLACEHOLDER, str(ROOT)) for a in entry["args"]]
    # The database goes to the user data dir: keep it in tmp_path.
    env = {**entry["env"], "XDG_DATA_HOME": str(tmp_path / "data")}
    return command, args, env


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_claude_desktop_config_serves_the_demo_agent(tmp_path: Path, mode: str) -> None:
    command, args, env = desktop_entry(tmp_path)
    # Desktop apps start servers with a bare environment and an arbitrary working directory.
    transport = StdioTransport(command, args, env=env, cwd=str(tmp_path), keep_alive=False)
    note = {"title": "groceries", "text": "eggs, milk"}
    async with Client(transport, mode=mode, init_timeout=60) as client:
        tools = sorted(t.name for t in await client.list_tools())
        asked = await call(
            client,
            "chat_with_agent",
            agent="demo",
            message=f"call demo__add_note {json.dumps(note)}",
        )
        pending = asked["pending_approvals"]
        done = await call(
            client,
            "approve_call",
            thread_id=asked["thread_id"],
            call_id=pending[0]["call_id"],
            approve=True,
        )
        listed = await call(
            client, "chat_with_agent", agent="demo", message="call demo__list_notes"
        )
    assert {"chat_with_agent", "approve_call", "get_thread", "list_threads"} <= set(tools)
    assert asked["status"] == "needs_approval"
    assert [(p["server"], p["tool"], p["arguments"]) for p in pending] == [
        ("demo", "add_note", note)
    ]
    assert (done["status"], done["reply"]) == snapshot(
        ("completed", "Tool results:\nsaved note 'groceries' (2 notes now)")
    )
    assert listed["reply"] == snapshot(
        """\
Tool results:
welcome: Notes live in memory until the server stops.
groceries: eggs, milk\
"""
    )
    assert (tmp_path / "data" / "agents-mcp" / "threads.db").exists()


async def call(client: Client[Any], tool: str, **args: Any) -> dict[str, Any]:
    with anyio.fail_after(60):
        result = await client.call_tool(tool, args)
    assert result.structured_content is not None
    return result.structured_content


def test_the_desktop_entry_runs_this_python() -> None:
    """The substitution above only fixes paths: the script runs the interpreter under test."""
    script = Path(sysconfig.get_path("scripts")) / "agents-mcp"
    first = script.read_text().splitlines()[0]
    assert (
        first == f"#!{sys.executable}"
        or Path(first[2:]).resolve() == Path(sys.executable).resolve()
    )
