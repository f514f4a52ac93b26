"""One trace across processes, exported over OTLP/HTTP to a real receiver.

A fastmcp client sends ``traceparent`` to agents-mcp A (a subprocess over HTTP); A's
agent calls agents-mcp B (a declared peer, another subprocess); B's agent calls its
downstream server (tests/downstream_server.py over stdio), which records the
``traceparent`` it received. Both agents-mcp export to :mod:`tests.otlp`, which decodes
the protobufs: one trace id throughout, each span under the right parent, the GenAI
attributes on each. A run paused for approval and resumed, in the same process and after
a restart, links back to the run it continues.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from agents_mcp.messages import Usage
from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.testing.chat_server import FakeChatServer
from tests.conftest import DOWNSTREAM
from tests.otlp import CLIENT, INTERNAL, SERVER, OTLPReceiver, Span, receiver
from tests.processes import agents_mcp_http_process, free_port, write_config
from tests.reading import structured

pytestmark = pytest.mark.anyio

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CALLER}-01"
SECRET = "sk-do-not-export-this"
USAGE = Usage(input_tokens=120, output_tokens=7, cache_read_tokens=100)


def notes(log: Path | None = None) -> dict[str, Any]:
    env = {} if log is None else {"DOWNSTREAM_LOG": str(log)}
    args = [DOWNSTREAM, "--name", "notes", "--traced"]
    return {"command": sys.executable, "args": args, "env": env}


def agents_config(
    path: Path, base_url: str, name: str, servers: dict[str, Any], **agent: Any
) -> Path:
    return write_config(
        path,
        {
            "mcpServers": servers,
            "models": {"main": {"base_url": base_url, "model": "m-1", "api_key": SECRET}},
            "agents": {
                name: {
                    "description": f"The {name} agent",
                    "model": "main",
                    "servers": list(servers),
                    "require_approval": "read_only",
                    **agent,
                }
            },
            "server": {"db": str(path.with_suffix(".db"))},
        },
    )


@asynccontextmanager
async def agents_mcp(
    config: Path, rx: OTLPReceiver, service: str, tmp_path: Path, **env: str
) -> AsyncIterator[str]:
    """``agents-mcp serve --transport http`` exporting to ``rx``; yields its MCP URL."""
    port = free_port()
    environ = {**rx.env(service), "HOME": str(tmp_path), **env}
    async with agents_mcp_http_process(config, port=port, env=environ):
        yield f"http://127.0.0.1:{port}/mcp"


async def tool(
    url: str, name: str, meta: dict[str, Any] | None = None, **args: Any
) -> dict[str, Any]:
    async with Client(StreamableHttpTransport(url), timeout=60) as client:
        with anyio.fail_after(90):
            result = await client.call_tool(name, args, meta=meta, raise_on_error=False)
    return structured(result)


def by_id(spans: list[Span]) -> dict[str, Span]:
    return {s.span_id: s for s in spans}


def one(spans: list[Span], name: str, service: str, kind: int | None = None) -> Span:
    found = [
        s
        for s in spans
        if s.name == name and s.service == service and (kind is None or s.kind == kind)
    ]
    assert len(found) == 1, (name, service, [(s.name, s.service) for s in spans])
    return found[0]


def ancestry(spans: list[Span], span_id: str) -> list[tuple[str, str]]:
    """``(service, name)`` of the span and each ancestor the receiver has, nearest first."""
    known = by_id(spans)
    out = []
    current: str | None = span_id
    while current in known:
        span = known[current]
        out.append((span.service, span.name))
        current = span.parent_id
    return out


async def test_one_trace_from_the_caller_through_two_agents_mcp_to_a_tool(tmp_path: Path) -> None:
    log = tmp_path / "downstream.jsonl"
    a_model = ScriptedLLM(
        Call("peer__chat_with_agent", {"agent": "back", "message": "trace it"}), "all done",
        usage=USAGE,
    )  # fmt: skip
    b_model = ScriptedLLM(Call("notes__traced", {}), "traced", usage=USAGE)
    with receiver() as rx:
        async with AsyncExitStack() as stack:
            a_llm = await stack.enter_async_context(FakeChatServer(a_model).serve())
            b_llm = await stack.enter_async_context(FakeChatServer(b_model).serve())
            b_config = agents_config(tmp_path / "b.json", b_llm, "back", {"notes": notes(log)})
            b = await stack.enter_async_context(agents_mcp(b_config, rx, "agents-mcp-b", tmp_path))
            peer = {"peer": {"url": b, "kind": "agents-mcp"}}
            a_config = agents_config(
                tmp_path / "a.json", a_llm, "front", peer, require_approval="never"
            )
            a = await stack.enter_async_context(agents_mcp(a_config, rx, "agents-mcp-a", tmp_path))
            done = await tool(
                a, "chat_with_agent", meta={"traceparent": TRACEPARENT}, agent="front",
                message="go",
            )  # fmt: skip

            def complete(rx: OTLPReceiver) -> list[Span] | None:
                spans = rx.spans()
                names = {(s.service, s.name) for s in spans}
                wanted = {
                    ("agents-mcp-a", "invoke_agent front"),
                    ("agents-mcp-b", "invoke_agent back"),
                }
                return spans if wanted <= names else None

            spans = await rx.wait_for(complete)
    assert done["status"] == "completed"
    [record] = [json.loads(line) for line in log.read_text().splitlines()]
    received = record["arguments"]["traceparent"]
    _, trace_id, parent_id, _ = received.split("-")

    # Every span of the conversation (handshakes and tool listings are traces of their own).
    work = ("invoke_agent", "chat ", "execute_tool", "tools/call", "MCP send tools/call")
    ours = [s for s in spans if s.name.startswith(work)]
    assert len(ours) >= 12 and {s.trace_id for s in ours} == {TRACE} and trace_id == TRACE
    a_server = one(spans, "tools/call chat_with_agent", "agents-mcp-a", SERVER)
    assert (a_server.kind, a_server.parent_id) == (SERVER, CALLER)
    assert a_server.attributes["gen_ai.conversation.id"] == done["thread_id"]
    chain = ancestry(spans, parent_id)  # from the span the tool saw up to A's request
    client = [step for step in chain if step[1].endswith("tools/call traced")]
    assert client and chain[: len(client)] == client  # B's MCP client's own spans
    assert all(svc == "agents-mcp-b" for svc, _ in client)
    chain = chain[len(client) :]
    assert chain[:3] == [
        ("agents-mcp-b", "execute_tool notes__traced"),
        ("agents-mcp-b", "invoke_agent back"),
        ("agents-mcp-b", "tools/call chat_with_agent"),
    ]
    assert chain[-3:] == [
        ("agents-mcp-a", "execute_tool peer__chat_with_agent"),
        ("agents-mcp-a", "invoke_agent front"),
        ("agents-mcp-a", "tools/call chat_with_agent"),
    ]
    between = chain[3:-3]  # the MCP client's own spans in A (fastmcp's, the SDK's)
    assert between and all(
        svc == "agents-mcp-a" and name.endswith("tools/call chat_with_agent")
        for svc, name in between
    )
    assert one(spans, "tools/call chat_with_agent", "agents-mcp-b", SERVER)
    for service, agent, thread in (
        ("agents-mcp-a", "front", done["thread_id"]),
        ("agents-mcp-b", "back", None),
    ):
        run = one(spans, f"invoke_agent {agent}", service)
        assert run.kind == INTERNAL
        assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert run.attributes["gen_ai.agent.name"] == agent
        assert run.attributes["gen_ai.provider.name"] == "openai"
        assert run.attributes["gen_ai.request.model"] == "m-1"
        assert run.attributes["agents_mcp.run.outcome"] == "completed"
        if thread is not None:
            assert run.attributes["gen_ai.conversation.id"] == thread
        chats = [s for s in spans if s.service == service and s.name == "chat m-1"]
        assert len(chats) == 2 and {c.parent_id for c in chats} == {run.span_id}
        for chat in chats:
            assert chat.kind == CLIENT
            assert chat.attributes["gen_ai.operation.name"] == "chat"
            assert chat.attributes["gen_ai.usage.input_tokens"] == 120
            assert chat.attributes["gen_ai.usage.output_tokens"] == 7
            assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 100
            assert (
                chat.attributes["gen_ai.conversation.id"]
                == run.attributes["gen_ai.conversation.id"]
            )
            assert "gen_ai.input.messages" not in chat.attributes  # capture_content is off
    tool_span = one(spans, "execute_tool notes__traced", "agents-mcp-b")
    assert tool_span.kind == CLIENT
    assert tool_span.attributes["gen_ai.tool.name"] == "notes__traced"
    assert tool_span.attributes["mcp.method.name"] == "tools/call"
    assert SECRET not in repr(spans)


async def test_a_resumed_run_links_to_the_run_it_continues(tmp_path: Path) -> None:
    """Paused for approval and resumed by approve_call (same process); then a new turn
    paused, the server restarted, and resumed: each resumed run links to the one it
    continues, under the approve_call request that resumed it."""
    write = Call("notes__write_note", {"title": "t", "body": "b"}, id="w1")
    model = ScriptedLLM(write, "written", write, "written again", usage=USAGE)
    with receiver() as rx:
        async with FakeChatServer(model).serve() as llm:
            config = agents_config(tmp_path / "a.json", llm, "front", {"notes": notes()})
            async with agents_mcp(config, rx, "agents-mcp-a", tmp_path) as a:
                paused = await tool(a, "chat_with_agent", agent="front", message="write")
                tid = paused["thread_id"]
                approved = await tool(a, "approve_call", thread_id=tid, call_id="w1", approve=True)
                again = await tool(
                    a, "chat_with_agent", agent="front", message="more", thread_id=tid
                )
            async with agents_mcp(config, rx, "agents-mcp-a", tmp_path) as a:  # restarted
                last = await tool(a, "approve_call", thread_id=tid, call_id="w1~2", approve=True)

            def four_runs(rx: OTLPReceiver) -> list[Span] | None:
                runs = [s for s in rx.spans() if s.name == "invoke_agent front"]
                return runs if len(runs) == 4 else None

            runs = sorted(await rx.wait_for(four_runs), key=lambda s: s.start)
            spans = rx.spans()
            points = rx.points()
    assert [paused["status"], approved["status"], again["status"], last["status"]] == [
        "needs_approval", "completed", "needs_approval", "completed",
    ]  # fmt: skip
    first, resumed, turn, after_restart = runs
    assert [r.attributes["agents_mcp.run.outcome"] for r in runs] == [
        "needs_approval", "completed", "needs_approval", "completed",
    ]  # fmt: skip
    assert first.links == []
    assert resumed.links == [(first.trace_id, first.span_id, {"agents_mcp.link.type": "resumes"})]
    assert turn.links == [
        (resumed.trace_id, resumed.span_id, {"agents_mcp.link.type": "previous_turn"})
    ]
    assert after_restart.links == [
        (turn.trace_id, turn.span_id, {"agents_mcp.link.type": "resumes"})
    ]
    known = by_id(spans)
    for run in (resumed, after_restart):
        request = known[run.parent_id or ""]
        assert (request.name, request.kind) == ("tools/call approve_call", SERVER)
        assert request.attributes["agents_mcp.approval.decided_by"] == "local"
        [(_, decision)] = [e for e in run.events if e[0] == "agents_mcp.approval"]
        assert decision["agents_mcp.approval.decision"] == "approved"
        assert decision["agents_mcp.approval.wait_seconds"] >= 0
    assert [e[0] for e in first.events] == ["agents_mcp.waiting_for_approval"]
    metrics = {p.metric for p in points}
    assert {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "gen_ai.invoke_agent.duration",
        "mcp.client.operation.duration",
        "mcp.server.operation.duration",
        "agents_mcp.runs.active",
    } <= metrics
    tokens = [p for p in points if p.metric == "gen_ai.client.token.usage"]
    assert {p.attributes["gen_ai.token.type"] for p in tokens} == {"input", "output"}


async def test_a_run_resumed_on_another_replica_links_to_the_run_it_continues(
    tmp_path: Path, pg_cluster: str
) -> None:
    """Two replicas on one PostgreSQL database: the run pauses on A, the approval lands on
    B, and B's resumed run links to A's (the trace context is kept in the database)."""
    from tests.postgres import fresh_database

    db = await fresh_database(pg_cluster)
    write = Call("notes__write_note", {"title": "t", "body": "b"}, id="w1")
    model = ScriptedLLM(write, "written", usage=USAGE)
    with receiver() as rx:
        async with FakeChatServer(model).serve() as llm:
            path = agents_config(tmp_path / "a.json", llm, "front", {"notes": notes()})
            data = json.loads(path.read_text())
            data["server"]["db"] = db
            config = write_config(path, data)
            async with (
                agents_mcp(config, rx, "replica-a", tmp_path) as a,
                agents_mcp(config, rx, "replica-b", tmp_path) as b,
            ):
                paused = await tool(a, "chat_with_agent", agent="front", message="write")
                tid = paused["thread_id"]
                approved = await tool(b, "approve_call", thread_id=tid, call_id="w1", approve=True)

            def two_runs(rx: OTLPReceiver) -> list[Span] | None:
                runs = [s for s in rx.spans() if s.name == "invoke_agent front"]
                return runs if len(runs) == 2 else None

            first, resumed = sorted(await rx.wait_for(two_runs), key=lambda s: s.start)
    assert (paused["status"], approved["status"]) == ("needs_approval", "completed")
    assert (first.service, resumed.service) == ("replica-a", "replica-b")
    assert resumed.links == [(first.trace_id, first.span_id, {"agents_mcp.link.type": "resumes"})]
