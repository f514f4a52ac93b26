"""End to end with real processes: agents-mcp over stdio and HTTP, a stdio and an HTTP
downstream server, and the model behind a Chat Completions fake on loopback HTTP."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
from fastmcp.exceptions import ToolError
from inline_snapshot import snapshot

from agents_mcp import structured
from agents_mcp.messages import LLMResponse, ToolCall, Usage
from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.testing.anthropic_server import FakeAnthropicServer
from agents_mcp.testing.chat_server import FakeChatServer
from agents_mcp.testing.responses_server import FakeResponsesServer
from tests.conftest import DOWNSTREAM
from tests.processes import ROOT, agents_mcp_http, free_port, http_downstream, write_config

pytestmark = pytest.mark.anyio


def config(base_url: str, calc_url: str, **server: Any) -> dict[str, Any]:
    return {
        "mcpServers": {
            "notes": {"command": sys.executable, "args": [DOWNSTREAM, "--name", "notes"]},
            "calc": {"url": calc_url},
        },
        "models": {"main": {"base_url": base_url, "model": "fake", "api_key": "${FAKE_KEY:-k}"}},
        "agents": {
            "helper": {
                "description": "Uses notes and calc",
                "instructions": "Be brief.",
                "model": "main",
                "servers": ["notes", "calc"],
                "require_approval": "never",
            }
        },
        **({"server": server} if server else {}),
    }


def scrub(payload: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(payload).replace(payload["thread_id"], "<thread>"))
    return out


async def chat(client: Client[Any], **args: Any) -> dict[str, Any]:
    with anyio.fail_after(60):
        result = await client.call_tool("chat_with_agent", args)
    assert result.structured_content is not None
    assert result.meta is not None
    assert result.meta["agents-mcp/thread_id"] == result.structured_content["thread_id"]
    return result.structured_content


def script() -> ScriptedLLM:
    return ScriptedLLM(
        [
            Call("notes__echo", {"text": "hello"}, id="n1"),
            Call("calc__add", {"a": 2, "b": 3}, id="c1"),
        ],
        "echo said hello and 2+3=5",
        Call("calc__add", {"a": 5, "b": 10}, id="c2"),
        "5+10=15",
    )


FIRST: dict[str, Any] = {
    "thread_id": "<thread>",
    "agent": "helper",
    "status": "completed",
    "reply": "echo said hello and 2+3=5",
    "pending_approvals": [],
    "error": None,
    "usage": {"input_tokens": 20, "output_tokens": 10, "llm_requests": 2, "tool_calls": 2},
}


def tool_results(fake: FakeChatServer, request: int) -> list[tuple[str, str]]:
    messages = fake.requests[request]["messages"]
    return [(m["tool_call_id"], m["content"]) for m in messages if m["role"] == "tool"]


@asynccontextmanager
async def stack(tmp_path: Path) -> AsyncIterator[tuple[FakeChatServer, Path]]:
    fake = FakeChatServer(script())
    async with fake.serve() as base_url:
        with http_downstream("calc") as calc_url:
            # Every step's progress (the default rate limit would merge these fast steps).
            cfg = config(base_url, calc_url, progress_interval=0)
            yield fake, write_config(tmp_path / "agents.json", cfg)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_two_downstreams_and_a_restart(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "threads.db"
    async with stack(tmp_path) as (fake, cfg):

        def spawn() -> Client[Any]:
            args = ["-m", "agents_mcp", "serve", "--config", str(cfg), "--db", str(db)]
            transport = StdioTransport(sys.executable, args, cwd=str(ROOT), keep_alive=False)
            return Client(transport, mode=mode, init_timeout=60)

        seen: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(message or "")

        async with spawn() as client:
            with anyio.fail_after(60):
                result = await client.call_tool(
                    "chat_with_agent",
                    {"agent": "helper", "message": "echo hello and add 2 and 3"},
                    progress_handler=on_progress,
                )
            first = result.structured_content
            assert first is not None
        # A new process on the same database continues the thread.
        async with spawn() as client:
            second = await chat(
                client, agent="helper", message="now add 10", thread_id=first["thread_id"]
            )
            listed = (await client.call_tool("list_threads", {})).structured_content
    assert scrub(first) == FIRST
    # The two calls of one turn run concurrently, so their order may vary.
    assert [seen[0], sorted(seen[1:3]), *seen[3:]] == [
        "thinking (turn 1/12)",
        ["calling calc__add", "calling notes__echo"],
        "thinking (turn 2/12)",
    ]
    assert scrub(second) == snapshot(
        {
            "thread_id": "<thread>",
            "agent": "helper",
            "status": "completed",
            "reply": "5+10=15",
            "pending_approvals": [],
            "error": None,
            "usage": {"input_tokens": 20, "output_tokens": 10, "llm_requests": 2, "tool_calls": 1},
        }
    )
    assert tool_results(fake, 1) == [("n1", "notes echo: hello"), ("c1", "5")]
    # After the restart the model saw the whole stored history, without reasoning.
    assert [m["role"] for m in fake.requests[3]["messages"]] == snapshot(
        ["system", "user", "assistant", "tool", "tool", "assistant", "user", "assistant", "tool"]
    )
    assert listed is not None and len(listed["threads"]) == 1


async def test_http_transport_with_owners(tmp_path: Path) -> None:
    db = tmp_path / "threads.db"
    env = {"TOKEN_A": "alpha-secret", "TOKEN_B": "beta-secret"}
    async with stack(tmp_path) as (_fake, cfg):
        data = json.loads(cfg.read_text())
        data["server"] = {"auth_tokens": ["${TOKEN_A}", "${TOKEN_B}"]}
        write_config(cfg, data)
        async with agents_mcp_http(cfg, db, port=free_port(), env=env) as url:

            def connect(token: str | None, mode: str = "auto") -> Client[Any]:
                return Client(StreamableHttpTransport(url, auth=token), mode=mode)

            async with connect("alpha-secret", "legacy") as alice:
                first = await chat(alice, agent="helper", message="echo hello and add 2 and 3")
            async with connect("beta-secret") as bob:
                with pytest.raises(ToolError) as info:
                    await bob.call_tool(
                        "chat_with_agent",
                        {"agent": "helper", "message": "hi", "thread_id": first["thread_id"]},
                    )
                theirs = (await bob.call_tool("list_threads", {})).structured_content
                with pytest.raises(ToolError) as denied:
                    await bob.call_tool(
                        "approve_call",
                        {"thread_id": first["thread_id"], "call_id": "n1", "approve": True},
                    )
                with pytest.raises(Exception, match="not found"):
                    await bob.read_resource(f"agents-mcp://threads/{first['thread_id']}")
            async with connect("alpha-secret") as alice:
                second = await chat(
                    alice, agent="helper", message="now add 10", thread_id=first["thread_id"]
                )
            with pytest.raises(Exception):  # noqa: B017 - the fastmcp client gives a bare MCPError
                async with connect(None) as anonymous:
                    await anonymous.call_tool("list_threads", {})
            # DNS rebinding: a page on another origin must not reach a loopback server.
            async with httpx2.AsyncClient() as http:
                rebound = await http.post(
                    url,
                    headers={"Host": "evil.example", "Authorization": "Bearer alpha-secret"},
                    json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                )
    assert scrub(first) == FIRST
    assert second["reply"] == "5+10=15"
    assert str(info.value) == f"thread {first['thread_id']!r} not found"
    assert str(denied.value) == f"thread {first['thread_id']!r} not found"
    assert theirs == {"threads": [], "next_cursor": None}
    assert rebound.status_code in (403, 421)


async def test_non_loopback_http_needs_tokens(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "agents.json", config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/mcp")
    )
    proc = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "agents_mcp",
            "serve",
            "--config",
            str(cfg),
            "--transport",
            "http",
            "--host",
            "0.0.0.0",
        ],
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().strip() == snapshot(
        f'agents-mcp: {cfg}: server.tokens: binding 0.0.0.0 (not loopback) needs tokens; add [server.tokens.<owner>] with token = "${{AGENTS_MCP_TOKEN}}" (or [server.jwt]), or use --host 127.0.0.1'
    )


# --- every provider: a tool call, an approval, a restart, a structured answer --------------

SAVED = {
    "type": "object",
    "properties": {"saved": {"type": "boolean"}, "title": {"type": "string"}},
    "required": ["saved", "title"],
    "additionalProperties": False,
}
PROVIDERS = {
    "openai": ("fake", {}),
    "anthropic": ("claude", {"thinking": {"type": "enabled", "budget_tokens": 1024}}),
    "responses": ("o-fake", {"reasoning": {"effort": "low", "summary": "auto"}}),
}


def provider_script(provider: str) -> ScriptedLLM:
    """Think, call two tools (one needs approval), then answer in the schema."""
    calls = (
        ToolCall(id="toolu_echo", name="notes__echo", arguments='{"text": "note"}'),
        ToolCall(
            id="toolu_write",
            name="notes__write_note",
            arguments='{"title": "milk", "body": "buy some"}',
        ),
    )
    asked = LLMResponse(
        content=None,
        tool_calls=calls,
        reasoning="The user wants a note saved; echo first, then write it.",
        usage=Usage(input_tokens=30, output_tokens=12),
    )
    done: str | Call = json.dumps({"saved": True, "title": "milk"})
    if provider == "anthropic":
        done = Call(structured.ANSWER_TOOL, {"saved": True, "title": "milk"}, id="toolu_answer")
    return ScriptedLLM(asked, done)


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_each_provider_pauses_for_approval_and_resumes_after_a_restart(
    tmp_path: Path, provider: str
) -> None:
    """agents-mcp over stdio, restarted between the approval request and the decision; the
    reasoning the provider signed (Anthropic) or encrypted (Responses) goes back with the
    answer after the restart, and the call's output schema still holds."""
    fakes = {"openai": FakeChatServer, "anthropic": FakeAnthropicServer}
    fake = fakes.get(provider, FakeResponsesServer)(provider_script(provider))
    model_name, extra = PROVIDERS[provider]
    log = tmp_path / "downstream.log"
    db = tmp_path / "threads.db"
    async with fake.serve() as base_url:
        cfg = write_config(
            tmp_path / "agents.json",
            {
                "mcpServers": {
                    "notes": {
                        "command": sys.executable,
                        "args": [DOWNSTREAM, "--name", "notes"],
                        "env": {"DOWNSTREAM_LOG": str(log)},
                    }
                },
                "models": {
                    "main": {
                        "provider": provider,
                        "base_url": base_url,
                        "model": model_name,
                        "api_key": "${FAKE_KEY:-k}",
                        "extra": extra,
                    }
                },
                "agents": {
                    "helper": {
                        "description": "Keeps notes",
                        "model": "main",
                        "servers": ["notes"],
                        "require_approval": "read_only",
                    }
                },
            },
        )

        def spawn() -> Client[Any]:
            args = ["-m", "agents_mcp", "serve", "--config", str(cfg), "--db", str(db)]
            transport = StdioTransport(sys.executable, args, cwd=str(ROOT), keep_alive=False)
            return Client(transport, init_timeout=60)

        async with spawn() as client:
            paused = await chat(
                client, agent="helper", message="Save a note: milk", output_schema=SAVED
            )
        async with spawn() as client:  # a new process on the same database
            with anyio.fail_after(60):
                result = await client.call_tool(
                    "approve_call",
                    {"thread_id": paused["thread_id"], "call_id": "toolu_write", "approve": True},
                )
    done = result.structured_content
    assert done is not None
    assert paused["status"] == "needs_approval"
    assert [p["call_id"] for p in paused["pending_approvals"]] == ["toolu_write"]
    assert (done["status"], done["output"]) == ("completed", {"saved": True, "title": "milk"})
    assert done["usage"]["tool_calls"] == 2
    written = [json.loads(line) for line in log.read_text().splitlines()]
    assert [w["tool"] for w in written] == ["write_note"]  # exactly once
    resumed = fake.requests[-1]
    assert _reasoning_sent_back(provider, resumed)
    assert _schema_asked(provider, resumed)
    fake.llm.assert_complete()


def _reasoning_sent_back(provider: str, body: dict[str, Any]) -> bool:
    """Whether the answer that asked for the calls went back with its reasoning."""
    if provider == "anthropic":  # first in its turn, signed (the fake checks the signature)
        turns = [m for m in body["messages"] if m["role"] == "assistant"]
        first: str = turns[-1]["content"][0]["type"]
        return first == "thinking"
    if provider == "responses":
        return any(
            i.get("type") == "reasoning" and i.get("encrypted_content") for i in body["input"]
        )
    return True  # Chat Completions has no place for it


def _schema_asked(provider: str, body: dict[str, Any]) -> bool:
    if provider == "openai":
        schema: object = body["response_format"]["json_schema"]["schema"]
    elif provider == "responses":
        schema = body["text"]["format"]["schema"]
    else:
        return any(t["name"] == structured.ANSWER_TOOL for t in body["tools"])
    return schema == SAVED
