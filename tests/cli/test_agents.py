"""Agents from agent files, as users meet them: ``agents``, ``tools AGENT`` and ``check``
through the real entry point, and a stdio server (started as a client starts it) that
picks up a file edited or added while it serves, and tells its client."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as mt
import pytest
from fastmcp import Client
from fastmcp.client.messages import MessageHandler
from fastmcp.client.transports import StdioTransport

from agents_mcp.testing import ScriptedLLM
from agents_mcp.testing.chat_server import FakeChatServer
from tests.cli.runner import agents_mcp
from tests.conftest import DOWNSTREAM
from tests.processes import ROOT, write_config

pytestmark = pytest.mark.anyio

SCRIBE = """\
---
name: scribe
description: {description}
tools: Read, mcp__notes__echo, mcp__notes__write_note
disallowedTools: mcp__notes__write_note
model: sonnet
permissionMode: acceptEdits
mcpServers:
  - notes:
      command: {python}
      args: [{downstream}, --name, notes]
---
{instructions}
"""


def scribe(folder: Path, description: str, instructions: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = SCRIBE.format(
        description=description,
        instructions=instructions,
        python=json.dumps(sys.executable),
        downstream=json.dumps(DOWNSTREAM),
    )
    (folder / "scribe.md").write_text(text)


def config(tmp_path: Path, base_url: str) -> Path:
    data: dict[str, Any] = {
        "models": {"main": {"base_url": base_url, "model": "fake-model"}},
        "model_aliases": {"sonnet": "main", "inherit": "main"},
        "server": {"agents_from": [".claude/agents"], "wait_seconds": 30},
    }
    return write_config(tmp_path / "agents.json", data)


async def test_agents_tools_and_check_through_the_command(tmp_path: Path) -> None:
    scribe(tmp_path / ".claude" / "agents", "Takes notes", "You take notes.")
    cfg = config(tmp_path, "http://127.0.0.1:9/v1")
    listed = await agents_mcp("agents", "--config", str(cfg), "--json", tmp_path=tmp_path)
    assert listed.code == 0, listed.err
    [agent] = json.loads(listed.out)["agents"]
    assert agent["name"] == "scribe"
    assert agent["model"] == "main"
    assert agent["source"] == ".claude/agents/scribe.md (Claude Code subagent)"
    tools = await agents_mcp("tools", "scribe", "--config", str(cfg), "--json", tmp_path=tmp_path)
    assert tools.code == 0, tools.err
    # write_note is allowed by tools but disallowed: the model never sees it.
    assert [t["name"] for t in json.loads(tools.out)["tools"]] == ["notes__echo"]
    check = await agents_mcp(
        "check", "--offline", "--json", "--config", str(cfg), tmp_path=tmp_path
    )
    [file] = json.loads(check.out)["agent_files"]
    assert file["status"] == "loaded"
    assert [(n["kind"], n["field"]) for n in file["notes"]] == [
        ("ignored", "permissionMode"),
        ("converted", "model"),
        ("ignored", "tools: Read"),
    ]
    text = await agents_mcp("check", "--offline", "--config", str(cfg), tmp_path=tmp_path)
    assert "✓ file .claude/agents/scribe.md  agent scribe (Claude Code subagent)" in text.out
    assert "ignored permissionMode: not honoured" in text.out


class Changes(MessageHandler):
    def __init__(self) -> None:
        self.changed = anyio.Event()

    async def on_tool_list_changed(self, message: mt.ToolListChangedNotification) -> None:
        self.changed.set()


async def test_a_file_edited_while_serving_changes_the_agent_for_the_next_call(
    tmp_path: Path,
) -> None:
    folder = tmp_path / ".claude" / "agents"
    scribe(folder, "Takes notes", "You are version one.")
    fake = FakeChatServer(ScriptedLLM("one", "two", "three"))
    async with fake.serve() as base_url:
        cfg = config(tmp_path, base_url)
        args = ["-m", "agents_mcp", "serve", "--config", str(cfg), "--db", str(tmp_path / "t.db")]
        transport = StdioTransport(sys.executable, args, cwd=str(ROOT), keep_alive=False)
        changes = Changes()
        client = Client(transport, mode="legacy", init_timeout=60, message_handler=changes)
        async with client:
            with anyio.fail_after(60):
                before = {t.name: t for t in await client.list_tools()}
                first = await client.call_tool(
                    "chat_with_agent", {"agent": "scribe", "message": "hi"}
                )
                assert first.structured_content is not None
                assert first.structured_content["reply"] == "one"
                scribe(folder, "Keeps a diary", "You are version two.")
                await changes.changed.wait()
                after = {t.name: t for t in await client.list_tools()}
                second = await client.call_tool(
                    "chat_with_agent", {"agent": "scribe", "message": "again"}
                )
                changes.changed = anyio.Event()
                (folder / "helper.md").write_text(
                    "---\nname: helper\ndescription: Helps\n---\nYou help.\n"
                )
                await changes.changed.wait()
                third = await client.call_tool(
                    "chat_with_agent", {"agent": "helper", "message": "help"}
                )
    assert "scribe: Takes notes" in (before["chat_with_agent"].description or "")
    assert "scribe: Keeps a diary" in (after["chat_with_agent"].description or "")
    assert second.structured_content is not None
    assert second.structured_content["reply"] == "two"
    assert third.structured_content is not None
    assert third.structured_content["reply"] == "three"
    systems = [r["messages"][0]["content"] for r in fake.requests]
    assert "You are version one." in systems[0]
    assert "You are version two." in systems[1]
    assert "You help." in systems[2]
    offered = [[t["function"]["name"] for t in r.get("tools", [])] for r in fake.requests]
    assert offered[:2] == [["notes__echo"], ["notes__echo"]]
