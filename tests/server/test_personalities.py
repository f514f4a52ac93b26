"""Personalities and per-agent params, seen where they matter: the HTTP body the model gets.

A real MCP client talks to the server in memory; the model is the real Chat Completions
adapter sending HTTP to a fake endpoint on loopback, which records every request body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from inline_snapshot import snapshot

from agents_mcp.config import config_from_dict
from agents_mcp.server.app import create_server
from agents_mcp.testing import ScriptedLLM
from agents_mcp.testing.chat_server import FakeChatServer

pytestmark = pytest.mark.anyio


def config_data(base_url: str) -> dict[str, Any]:
    return {
        "models": {
            "main": {
                "base_url": base_url,
                "model": "fake-model",
                "temperature": 0.1,
                "max_tokens": 500,
                "extra": {"user": "agents-mcp", "top_p": 0.5, "seed": 1},
            }
        },
        "agents": {
            "writer": {
                "description": "Writes things",
                "instructions_file": "prompts/writer.md",
                "model": "main",
                "personalities": {
                    "terse": "Answer in one line.",
                    "pirate": {"file": "prompts/pirate.md"},
                },
                "default_personality": "terse",
                "params": {
                    "temperature": 0.9,
                    "top_p": 0.8,
                    "stop": ["END"],
                    "seed": 7,
                    "response_format": {"type": "json_object"},
                    "tool_choice": "none",
                    "extra": {"presence_penalty": 0.5, "user": "writer"},
                },
            },
            "plain": {"description": "No personality, no params", "model": "main"},
        },
    }


@asynccontextmanager
async def connect(
    tmp_path: Path, *replies: str
) -> AsyncIterator[tuple[Client[Any], FakeChatServer]]:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "writer.md").write_text("You write clearly.\n")
    (tmp_path / "prompts" / "pirate.md").write_text("Talk like a pirate.\n")
    fake = FakeChatServer(ScriptedLLM(*replies))
    async with fake.serve() as base_url:
        config = config_from_dict(config_data(base_url), path=tmp_path / "agents.toml")
        mcp = create_server(config, db_path=tmp_path / "threads.db")
        async with Client(mcp, mode="legacy") as client:
            yield client, fake


async def chat(client: Client[Any], **args: Any) -> dict[str, Any]:
    with anyio.fail_after(30):
        result = await client.call_tool("chat_with_agent", args)
    assert result.structured_content is not None
    return result.structured_content


def sent(fake: FakeChatServer) -> list[dict[str, Any]]:
    """What the model was sent, minus the parts every request shares."""
    return [
        {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        for body in fake.requests
    ]


async def test_default_personality_and_params_merged_over_model_defaults(tmp_path: Path) -> None:
    async with connect(tmp_path, "ok") as (client, fake):
        result = await chat(client, agent="writer", message="Hi")
    assert result["reply"] == "ok"
    assert sent(fake) == snapshot(
        [
            {
                "model": "fake-model",
                "messages": [
                    {"role": "system", "content": "You write clearly.\n\nAnswer in one line."},
                    {"role": "user", "content": "Hi"},
                ],
                "temperature": 0.9,
                "max_tokens": 500,
                "user": "writer",
                "top_p": 0.8,
                "seed": 7,
                "stop": ["END"],
                "response_format": {"type": "json_object"},
                "tool_choice": "none",
                "presence_penalty": 0.5,
            }
        ]
    )
    # stream = "auto": nobody shows an MCP caller the answer as it streams, so it is asked
    # for whole (the terminal chat streams; see test_cli).
    assert fake.requests[0]["stream"] is False


async def test_chosen_personality_from_a_file_for_one_message(tmp_path: Path) -> None:
    async with connect(tmp_path, "arr", "plain again") as (client, fake):
        first = await chat(client, agent="writer", message="Hi", personality="pirate")
        await chat(client, agent="writer", message="And now?", thread_id=first["thread_id"])
    systems = [body["messages"][0] for body in fake.requests]
    # The choice holds for the message it came with; the next one is back to the default.
    assert systems == snapshot(
        [
            {"role": "system", "content": "You write clearly.\n\nTalk like a pirate."},
            {"role": "system", "content": "You write clearly.\n\nAnswer in one line."},
        ]
    )


async def test_unknown_personality_is_refused_before_the_model_is_asked(tmp_path: Path) -> None:
    async with connect(tmp_path) as (client, fake):
        with pytest.raises(ToolError) as unknown, anyio.fail_after(30):
            await client.call_tool(
                "chat_with_agent", {"agent": "writer", "message": "Hi", "personality": "poet"}
            )
        with pytest.raises(ToolError) as none, anyio.fail_after(30):
            await client.call_tool(
                "chat_with_agent", {"agent": "plain", "message": "Hi", "personality": "terse"}
            )
        listed = (await client.call_tool("list_threads", {})).structured_content
    assert str(unknown.value) == snapshot(
        "unknown personality 'poet' for agent 'writer'; valid: pirate, terse"
    )
    assert str(none.value) == snapshot(
        "unknown personality 'terse' for agent 'plain'; valid: none (this agent has no personalities)"
    )
    assert fake.requests == []
    assert listed == {"threads": [], "next_cursor": None}


async def test_an_agent_without_params_sends_the_model_defaults(tmp_path: Path) -> None:
    async with connect(tmp_path, "fine") as (client, fake):
        await chat(client, agent="plain", message="Hi")
    assert sent(fake) == snapshot(
        [
            {
                "model": "fake-model",
                "messages": [{"role": "user", "content": "Hi"}],
                "temperature": 0.1,
                "max_tokens": 500,
                "user": "agents-mcp",
                "top_p": 0.5,
                "seed": 1,
            }
        ]
    )


async def test_the_tool_description_names_each_agents_personalities(tmp_path: Path) -> None:
    async with connect(tmp_path) as (client, _):
        tools = {t.name: t for t in await client.list_tools()}
    description = tools["chat_with_agent"].description or ""
    agents = description[description.index("Agents:") :]
    assert agents == snapshot(
        """\
Agents:
- writer: Writes things (personalities: terse, pirate)
- plain: No personality, no params\
"""
    )
