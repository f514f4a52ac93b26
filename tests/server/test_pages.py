"""What is too big for one answer: a pending call's arguments are cut in every result, with
the resource that has them whole, and approving still runs them whole; the transcript
comes in pages and parts; a resource that is not there is the protocol's not-found.

Through real clients: fastmcp's in memory in both eras, and over HTTP to ``agents-mcp
serve`` in its own process, where the Python SDK refuses an SSE event over 1 MiB.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from mcp import MCPError

from agents_mcp.server.app import create_server
from agents_mcp.server.pages import PAGE
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config, stdio_downstream
from tests.downstream_server import make_server
from tests.processes import agents_mcp_http, free_port, write_config
from tests.reading import cut_messages, pages, read_parts, read_text

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]
BUDGET = 20_000  # reply_budget's default


def wire_size(result: Any) -> int:
    """Characters the result takes on the wire (its text and its structuredContent)."""
    text = sum(len(c.text) for c in result.content if hasattr(c, "text"))
    return text + len(json.dumps(result.structured_content))


def writes(log: Path) -> list[dict[str, Any]]:
    """The calls the downstream server ran (one JSON line each)."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@asynccontextmanager
async def connect(
    tmp_path: Path, llm: ScriptedLLM, mode: str, policy: str = "never"
) -> AsyncIterator[Client[Any]]:
    agent = {"description": "d", "model": "main", "servers": ["notes"], "require_approval": policy}
    agents = {"helper": agent}
    config = make_config(tmp_path, agents=agents)
    mcp = create_server(
        config,
        db_path=tmp_path / "threads.db",
        llms={"main": llm},
        transports={"notes": make_server("notes")},
    )
    async with Client(mcp, mode=mode) as client:
        yield client


async def tool(client: Client[Any], name: str, **args: Any) -> Any:
    with anyio.fail_after(60):
        return await client.call_tool(name, args)


@pytest.mark.parametrize("mode", MODES)
async def test_huge_arguments_are_cut_in_every_result_and_run_whole(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "downstream.jsonl"
    monkeypatch.setenv("DOWNSTREAM_LOG", str(log))
    body = "x" * 300_000
    llm = ScriptedLLM(Call("notes__write_note", {"title": "t", "body": body}, id="w1"), "done")
    async with connect(tmp_path, llm, mode, "always") as client:
        paused = await tool(client, "chat_with_agent", agent="helper", message="write")
        tid = paused.structured_content["thread_id"]
        looked = await tool(client, "get_thread", thread_id=tid, include_messages=True)
        listed = await tool(client, "list_threads")
        view = await tool(client, "watch_thread", thread_id=tid)
        whole, parts = await read_parts(client, f"agents-mcp://threads/{tid}/calls/w1")
        assert writes(log) == []
        done = await tool(client, "approve_call", thread_id=tid, call_id="w1", approve=True)
    uri = f"agents-mcp://threads/{tid}/calls/w1"
    # Each result stays near the reply budget, and says where the arguments are whole.
    for result in (paused, looked, view):
        assert wire_size(result) < 2 * BUDGET
        (pending,) = result.structured_content["pending_approvals"]
        assert (pending["arguments_uri"], pending["arguments_chars"]) == (uri, len(whole))
        assert pending["arguments"]["title"] == "t"
        assert pending["arguments"]["body"].startswith("x" * 1000)
        assert pending["arguments"]["body"].endswith(" more characters]")
    assert f"the resource {uri}" in paused.content[0].text
    assert len(paused.content[0].text) < 2000
    (preview,) = listed.structured_content["threads"][0]["pending_approvals"]
    assert preview["arguments_uri"] == uri
    (step_call,) = view.structured_content["tree"]["steps"][-1]["calls"]
    assert step_call["arguments_uri"] == uri
    # The resource has them whole, in parts, and approving runs them whole, once.
    assert json.loads(whole) == {"title": "t", "body": body}
    assert len(parts) == 4 and all(len(p) < PAGE + 200 for p in parts)
    assert done.structured_content["status"] == "completed"
    assert writes(log) == [
        {"server": "notes", "tool": "write_note", "arguments": {"title": "t", "body": body}}
    ]


async def test_a_call_of_a_megabyte_waits_readably_over_http(tmp_path: Path) -> None:
    """At 1.1 M characters of arguments, results over 1 MiB were refused by the client, so
    the call could only be approved blind."""
    log = tmp_path / "downstream.jsonl"
    notes = stdio_downstream(env={"DOWNSTREAM_LOG": str(log)})
    config = write_config(
        tmp_path / "agents.json",
        {
            "mcpServers": {"notes": notes},
            "models": {"demo": {"provider": "demo"}},
            "agents": {"demo": {"description": "d", "model": "demo", "servers": ["notes"]}},
        },
    )
    body = "y" * 1_100_000
    message = "call notes__write_note " + json.dumps({"title": "t", "body": body})
    async with (
        agents_mcp_http(config, tmp_path / "t.db", port=free_port()) as url,
        Client(url) as client,  # the SDK's 1 MiB limit on one SSE event holds
    ):
        paused = await tool(client, "chat_with_agent", agent="demo", message=message)
        tid = paused.structured_content["thread_id"]
        looked = await tool(client, "get_thread", thread_id=tid, include_messages=True)
        (pending,) = paused.structured_content["pending_approvals"]
        whole, _ = await read_parts(client, pending["arguments_uri"])
        newest = await read_text(client, f"agents-mcp://threads/{tid}")
        call_id = pending["call_id"]
        done = await tool(client, "approve_call", thread_id=tid, call_id=call_id, approve=True)
    assert paused.structured_content["status"] == "needs_approval"
    assert wire_size(paused) < 2 * BUDGET and wire_size(looked) < 5 * BUDGET
    assert whole == json.dumps({"title": "t", "body": body})
    assert len(newest) < PAGE + 1000
    assert done.structured_content["status"] == "completed"
    assert [w["arguments"]["body"] == body for w in writes(log)] == [True]


@pytest.mark.parametrize("mode", MODES)
async def test_the_transcript_comes_in_pages_and_each_message_whole(
    tmp_path: Path, mode: str
) -> None:
    llm = ScriptedLLM("a1", Call("notes__big", {"size": 1_000_000}, id="b1"), "seen it")
    async with connect(tmp_path, llm, mode) as client:
        first = await call(client, "chat_with_agent", agent="helper", message="m1")
        tid = first["thread_id"]
        await call(client, "chat_with_agent", agent="helper", message="m2", thread_id=tid)
        read = await pages(client, f"agents-mcp://threads/{tid}")
        cut = cut_messages(read[0])
        big, parts = await read_parts(client, cut[4])
        none = await read_text(client, f"agents-mcp://threads/{tid}?before=0")
        user = await read_text(client, f"agents-mcp://threads/{tid}/messages/2")
    # 0 m1, 1 a1, 2 m2, 3 the call, 4 its million-character result, 5 seen it
    assert len(read) == 2 and all(len(p) < PAGE + 1000 for p in read)
    assert "messages 4–5 of 6" in read[0] and "seen it" in read[0]
    assert "messages 0–3 of 6" in read[1] and "## User\n\nm1" in read[1]
    assert cut == {4: f"agents-mcp://threads/{tid}/messages/4"}
    assert big.startswith("### Tool result `b1`\n\n```\n0123456789")
    assert "0123456789" * 100_000 in big
    assert len(parts) == 11 and all(len(p) < PAGE + 200 for p in parts)
    assert "no messages before 0 (6 in all)" in none
    assert user == "## User\n\nm2"


NOT_FOUND = [
    "agents-mcp://threads/th_missing",
    "agents-mcp://threads/th_missing?before=3",
    "agents-mcp://threads/{tid}/messages/9",
    "agents-mcp://threads/{tid}/messages/0?part=2",
    "agents-mcp://threads/{tid}/calls/nope",
    "agents-mcp://threads/th_missing/calls/nope",
    "agents-mcp://nothing/here",  # no resource of ours at all: fastmcp's own answer
]


@pytest.mark.parametrize("mode", MODES)
async def test_what_is_not_there_is_the_protocols_resource_not_found(
    tmp_path: Path, mode: str
) -> None:
    async with connect(tmp_path, ScriptedLLM("hello"), mode) as client:
        tid = (await call(client, "chat_with_agent", agent="helper", message="hi"))["thread_id"]
        errors = {}
        for uri in (u.format(tid=tid) for u in NOT_FOUND):
            with anyio.fail_after(30), pytest.raises(MCPError) as info:
                await client.read_resource(uri)
            errors[uri] = info.value.error
    for uri, error in errors.items():
        assert (error.code, error.message, error.data) == (
            -32602,  # INVALID_PARAMS: resource not found since SEP-2164, in both eras
            f"Resource not found: {uri!r}",
            {"uri": uri},
        )
