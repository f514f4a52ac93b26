"""The MCP surface, in memory, through a real fastmcp Client in both protocol eras."""

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
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError
from inline_snapshot import snapshot

from agents_mcp.errors import LLMError
from agents_mcp.messages import LLMRequest
from agents_mcp.server.app import create_server
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config
from tests.downstream_server import make_server
from tests.processes import agents_mcp_http, free_port, write_config
from tests.reading import text_of

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]


def scrub(payload: dict[str, Any]) -> dict[str, Any]:
    """Replace the random thread id so whole payloads can be pinned."""
    text = json.dumps(payload).replace(payload["thread_id"], "<thread>")
    out: dict[str, Any] = json.loads(text)
    return out


@asynccontextmanager
async def connect(
    tmp_path: Path, llm: ScriptedLLM, *, mode: str = "legacy", **config: Any
) -> AsyncIterator[Client[Any]]:
    cfg = make_config(tmp_path, **config)
    servers: dict[str, FastMCP] = {name: make_server(name) for name in cfg.mcp_servers}
    mcp = create_server(
        cfg, db_path=tmp_path / "threads.db", llms={"main": llm}, transports=servers
    )
    async with Client(mcp, mode=mode) as client:
        yield client


@pytest.mark.parametrize("mode", MODES)
async def test_chat_calls_a_downstream_tool_and_answers(tmp_path: Path, mode: str) -> None:
    llm = ScriptedLLM(Call("notes__echo", {"text": "hi"}, id="c1"), "The server said hi.")
    async with connect(tmp_path, llm, mode=mode) as client:
        with anyio.fail_after(10):
            result = await client.call_tool(
                "chat_with_agent", {"agent": "helper", "message": "Echo hi please"}
            )
    payload = result.structured_content
    assert payload is not None
    tid = payload["thread_id"]
    assert result.meta is not None
    assert result.meta["agents-mcp/thread_id"] == tid
    assert result.meta["agents-mcp/status"] == "completed"
    assert scrub(payload) == snapshot(
        {
            "thread_id": "<thread>",
            "agent": "helper",
            "status": "completed",
            "reply": "The server said hi.",
            "pending_approvals": [],
            "error": None,
            "usage": {"input_tokens": 20, "output_tokens": 10, "llm_requests": 2, "tool_calls": 1},
        }
    )
    assert text_of(result.content[0]).replace(tid, "<thread>") == snapshot(
        """\
The server said hi.

[thread_id: <thread> · agent: helper · status: completed] To continue this conversation, call chat_with_agent with thread_id='<thread>'.\
"""
    )
    # What the model saw on its second request: instructions, the call and its result.
    second = llm.requests[1]
    assert [(m.role, m.content, m.tool_call_id) for m in second.messages] == snapshot(
        [
            ("user", "Echo hi please", None),
            ("assistant", None, None),
            ("tool", "notes echo: hi", "c1"),
        ]
    )
    assert second.system == "You are helpful."
    assert [t.name for t in second.tools] == snapshot(
        [
            "notes__echo",
            "notes__add",
            "notes__write_note",
            "notes__fail",
            "notes__crash",
            "notes__big",
            "notes__environment",
            "notes__pid",
        ]
    )
    llm.assert_complete()


@pytest.mark.parametrize("mode", MODES)
async def test_thread_continues_with_history(tmp_path: Path, mode: str) -> None:
    llm = ScriptedLLM("first answer", "second answer")
    async with connect(tmp_path, llm, mode=mode) as client:
        first = await call(client, "chat_with_agent", agent="helper", message="one")
        second = await call(
            client, "chat_with_agent", agent="helper", message="two", thread_id=first["thread_id"]
        )
    assert second["thread_id"] == first["thread_id"]
    assert second["reply"] == "second answer"
    assert second["usage"]["llm_requests"] == 1
    assert [(m.role, m.content) for m in llm.requests[1].messages] == snapshot(
        [("user", "one"), ("assistant", "first answer"), ("user", "two")]
    )


async def test_thread_survives_a_restart(tmp_path: Path) -> None:
    llm = ScriptedLLM("before", "after")
    async with connect(tmp_path, llm) as client:
        first = await call(client, "chat_with_agent", agent="helper", message="remember 42")
    async with connect(tmp_path, llm) as client:
        again = await call(
            client, "chat_with_agent", agent="helper", message="what?", thread_id=first["thread_id"]
        )
        listed = await call(client, "list_threads")
    assert again["reply"] == "after"
    assert [(m.role, m.content) for m in llm.requests[1].messages] == snapshot(
        [("user", "remember 42"), ("assistant", "before"), ("user", "what?")]
    )
    assert [(t["title"], t["message_count"]) for t in listed["threads"]] == [("remember 42", 4)]


async def test_tool_errors_go_back_to_the_model(tmp_path: Path) -> None:
    llm = ScriptedLLM(
        [
            Call("notes__fail", {"reason": "nope"}, id="a"),
            Call("notes__nope", {}, id="b"),
            Call("notes__echo", "{not json", id="c"),
        ],
        "recovered",
    )
    async with connect(tmp_path, llm) as client:
        payload = await call(client, "chat_with_agent", agent="helper", message="try things")
    assert payload["status"] == "completed"
    results = [(m.tool_call_id, m.content) for m in llm.requests[1].messages if m.role == "tool"]
    assert results == snapshot(
        [
            ("a", "Error calling tool 'fail': failed on purpose: nope"),
            (
                "b",
                "Error: unknown tool 'notes__nope'; available tools: notes__add, notes__big, notes__crash, notes__echo, notes__environment, notes__fail, notes__pid, notes__write_note",
            ),
            (
                "c",
                "Error: the arguments of notes__echo are not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); send a JSON object",
            ),
        ]
    )


async def test_calls_of_one_turn_run_concurrently_and_answer_in_order(tmp_path: Path) -> None:
    started = anyio.Event()
    release = anyio.Event()
    both_running = anyio.Event()
    seen: list[str] = []

    # A downstream server whose two tools wait for each other: only concurrency finishes.
    slow = FastMCP("slow")

    @slow.tool
    async def first() -> str:
        seen.append("first")
        started.set()
        with anyio.fail_after(5):
            await both_running.wait()
        release.set()
        return "first done"

    @slow.tool
    async def second() -> str:
        with anyio.fail_after(5):
            await started.wait()
        seen.append("second")
        both_running.set()
        with anyio.fail_after(5):
            await release.wait()
        return "second done"

    llm = ScriptedLLM([Call("slow__first", id="x1"), Call("slow__second", id="x2")], "ok")
    cfg = make_config(
        tmp_path,
        servers={"slow": {"command": "unused"}},
        agents={
            "a": {
                "description": "d",
                "model": "main",
                "servers": ["slow"],
                "require_approval": "never",
            }
        },
    )
    mcp = create_server(
        cfg, db_path=tmp_path / "t.db", llms={"main": llm}, transports={"slow": slow}
    )
    async with Client(mcp) as client:
        payload = await call(client, "chat_with_agent", agent="a", message="go")
    assert payload["status"] == "completed"
    assert [(m.tool_call_id, m.content) for m in llm.requests[1].messages if m.role == "tool"] == [
        ("x1", "first done"),
        ("x2", "second done"),
    ]


async def test_iteration_cap_fails_and_keeps_everything(tmp_path: Path) -> None:
    llm = ScriptedLLM(*[Call("notes__echo", {"text": str(i)}) for i in range(2)])
    agents = {
        "helper": {
            "description": "d",
            "model": "main",
            "servers": ["notes"],
            "require_approval": "never",
            "max_iterations": 2,
        }
    }
    async with connect(tmp_path, llm, agents=agents) as client:
        payload = await call(client, "chat_with_agent", agent="helper", message="loop")
    assert payload["status"] == "failed"
    assert payload["error"] == snapshot(
        {
            "type": "max_iterations",
            "message": "agent 'helper' reached max_iterations (2) without a final answer; send a message to continue",
        }
    )
    assert payload["usage"]["tool_calls"] == 2


async def test_llm_failure_fails_the_run_with_the_provider_message(tmp_path: Path) -> None:
    llm = ScriptedLLM(LLMError("LLM request failed: HTTP 401: bad key", status=401), "later ok")
    async with connect(tmp_path, llm) as client:
        payload = await call(client, "chat_with_agent", agent="helper", message="hi")
        assert payload["status"] == "failed"
        assert payload["error"] == {
            "type": "llm_error",
            "message": "LLM request failed: HTTP 401: bad key",
        }
        # The thread is not lost: the next message continues it.
        again = await call(
            client,
            "chat_with_agent",
            agent="helper",
            message="retry",
            thread_id=payload["thread_id"],
        )
    assert again["status"] == "completed"
    assert again["error"] is None


@pytest.mark.parametrize("mode", MODES)
async def test_client_mistakes_are_precise_tool_errors(tmp_path: Path, mode: str) -> None:
    llm = ScriptedLLM()
    async with connect(tmp_path, llm, mode=mode) as client:
        errors = []
        for args in (
            {"agent": "nobody", "message": "hi"},
            {"agent": "helper", "message": "   "},
            {"agent": "helper", "message": "hi", "thread_id": "th_missing"},
        ):
            with pytest.raises(ToolError) as info:
                await client.call_tool("chat_with_agent", args)
            errors.append(str(info.value))
        listed = await call(client, "list_threads")
    assert errors == snapshot(
        [
            "unknown agent 'nobody'; valid agents: helper",
            "message is empty; send the text the agent should act on",
            "thread 'th_missing' not found",
        ]
    )
    assert listed == {"threads": [], "next_cursor": None}


async def test_tools_and_schemas(tmp_path: Path) -> None:
    async with connect(tmp_path, ScriptedLLM()) as client:
        tools = {t.name: t for t in await client.list_tools()}
    chat = tools["chat_with_agent"]
    assert chat.input_schema["properties"]["agent"]["enum"] == ["helper"]
    assert "- helper: A helpful agent with a notes server" in (chat.description or "")
    assert chat.output_schema is not None
    assert sorted(chat.output_schema["properties"]) == snapshot(
        [
            "agent",
            "error",
            "output",
            "pending_approvals",
            "pending_authorizations",
            "pending_questions",
            "reply",
            "status",
            "thread_id",
            "unavailable",
            "usage",
        ]
    )
    assert tools["list_threads"].annotations is not None
    assert tools["list_threads"].annotations.read_only_hint is True
    assert sorted(tools["approve_call"].input_schema["properties"]) == snapshot(
        ["approve", "call_id", "reason", "scope", "thread_id", "wait_seconds"]
    )


async def test_list_threads_pages_newest_first(tmp_path: Path) -> None:
    llm = ScriptedLLM(*[f"answer {i}" for i in range(5)])
    async with connect(tmp_path, llm) as client:
        for i in range(5):
            await call(client, "chat_with_agent", agent="helper", message=f"message {i}")
        page1 = await call(client, "list_threads", limit=2)
        page2 = await call(client, "list_threads", limit=2, cursor=page1["next_cursor"])
        page3 = await call(client, "list_threads", limit=2, cursor=page2["next_cursor"])
        with pytest.raises(ToolError, match="invalid cursor"):
            await client.call_tool("list_threads", {"cursor": "garbage!"})
        with pytest.raises(ToolError, match="unknown agent"):
            await client.call_tool("list_threads", {"agent": "ghost"})
    titles = [t["title"] for p in (page1, page2, page3) for t in p["threads"]]
    assert titles == [f"message {i}" for i in (4, 3, 2, 1, 0)]
    assert page3["next_cursor"] is None


async def test_scripted_llm_records_settings(tmp_path: Path) -> None:
    def respond(request: LLMRequest) -> str:
        return f"{len(request.tools)} tools"

    llm = ScriptedLLM(respond)
    async with connect(tmp_path, llm) as client:
        payload = await call(client, "chat_with_agent", agent="helper", message="count")
    assert payload["reply"] == "8 tools"


async def test_reasoning_is_stored_but_never_sent_back(tmp_path: Path) -> None:
    from agents_mcp.messages import LLMResponse

    thinking = LLMResponse(content="42", reasoning="Let me think about this carefully.")
    llm = ScriptedLLM(thinking, "still 42")
    async with connect(tmp_path, llm) as client:
        first = await call(client, "chat_with_agent", agent="helper", message="answer?")
        await call(
            client, "chat_with_agent", agent="helper", message="sure?", thread_id=first["thread_id"]
        )
        contents = await client.read_resource(f"agents-mcp://threads/{first['thread_id']}")
    assert all(m.reasoning is None for m in llm.requests[1].messages)
    assert "Let me think about this carefully." in text_of(contents[0])


async def test_descriptions_stay_under_two_kilobytes(tmp_path: Path) -> None:
    many = {
        f"agent{i}": {"description": "does things " * 40, "model": "main", "servers": ["notes"]}
        for i in range(30)
    }
    async with connect(tmp_path, ScriptedLLM(), agents=many) as client:
        tools = await client.list_tools()
    assert all(len(t.description or "") < 2048 for t in tools)
    assert sorted(t.name for t in tools) == snapshot(
        [
            "answer_question",
            "approve_call",
            "cancel_run",
            "chat_with_agent",
            "delete_thread",
            "get_thread",
            "list_threads",
        ]
    )


def test_a_server_name_too_long_for_client_tool_names_is_a_config_error(tmp_path: Path) -> None:
    from agents_mcp.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        make_config(tmp_path, server={"name": "a-very-long-server-name-for-all-of-our-team-agents"})
    assert str(info.value).split(": ", 1)[1] == snapshot(
        "server.name: makes client tool names like 'mcp__a-very-long-server-name-for-all-of-our-team-agents__chat_with_agent' longer than 64 characters; use at most 42 characters"
    )


async def test_the_guard_refuses_real_llm_endpoints() -> None:
    from agents_mcp.llm.chat import OpenAIChatModel
    from agents_mcp.messages import LLMRequest, Message
    from agents_mcp.testing import RealLLMBlocked

    model = OpenAIChatModel(base_url="https://api.openai.com/v1", model="gpt")
    with pytest.raises(RealLLMBlocked):
        await model.complete(LLMRequest(system="", messages=[Message(role="user", content="hi")]))
    await model.aclose()


# -- behind a reverse proxy: Host and Origin, over real HTTP ----------------------------------

PROXIED = {
    "Host": "agents.example.com",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.7",
}


def demo_config(tmp_path: Path, **server: Any) -> Path:
    data: dict[str, Any] = {
        "models": {"demo": {"provider": "demo"}},
        "agents": {"demo": {"description": "d", "model": "demo"}},
    }
    if server:
        data["server"] = server
    return write_config(tmp_path / "agents.json", data)


async def initialize(url: str, headers: dict[str, str]) -> int:
    """The HTTP status of an ``initialize`` POST sent with ``headers`` (as a proxy would)."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "0"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(url, json=body, headers={**accept, **headers})
    return response.status_code


async def test_a_proxied_host_is_refused_unless_allowed(tmp_path: Path) -> None:
    app = {"Origin": "https://app.example.com"}
    async with agents_mcp_http(demo_config(tmp_path), tmp_path / "a.db", port=free_port()) as url:
        plain = await initialize(url, {})
        refused = await initialize(url, PROXIED)
        foreign = await initialize(url, app)
    assert (plain, refused, foreign) == (200, 421, 403)

    allowed = demo_config(tmp_path, allowed_hosts=["agents.example.com"])
    async with agents_mcp_http(allowed, tmp_path / "b.db", port=free_port()) as url:
        proxied = await initialize(url, PROXIED)
        # A browser on the proxy's own origin (https, as X-Forwarded-Proto says) is fine.
        same_origin = await initialize(url, {**PROXIED, "Origin": "https://agents.example.com"})
        other_origin = await initialize(url, {**PROXIED, **app})
        other_host = await initialize(url, {**PROXIED, "Host": "evil.example.net"})
        async with Client(StreamableHttpTransport(url, headers=PROXIED)) as client:
            answer = await call(client, "chat_with_agent", agent="demo", message="hello")
    assert (proxied, same_origin, other_origin, other_host) == (200, 200, 403, 421)
    assert answer["status"] == "completed"


async def test_serve_takes_allowed_hosts_and_origins(tmp_path: Path) -> None:
    """``agents-mcp serve --allowed-host … --allowed-origin …``, as a proxy's admin runs it."""
    port = free_port()
    config = demo_config(tmp_path)
    db = tmp_path / "t.db"
    command = [sys.executable, "-m", "agents_mcp", "serve", "--config", str(config)]
    command += ["--db", str(db), "--transport", "http", "--port", str(port)]
    command += [
        "--allowed-host",
        "agents.example.com",
        "--allowed-origin",
        "https://app.example.com",
    ]
    async with agents_mcp_http(config, db, port=port, command=command) as url:
        proxied = await initialize(url, PROXIED)
        app = await initialize(url, {**PROXIED, "Origin": "https://app.example.com"})
        other = await initialize(url, {**PROXIED, "Origin": "https://other.example.com"})
    assert (proxied, app, other) == (200, 200, 403)
