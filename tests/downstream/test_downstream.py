"""Downstream MCP servers as real subprocesses: lazy start, restart after death, env."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client, FastMCP
from inline_snapshot import snapshot
from mcp_types import ToolListChangedNotification
from pydantic import ValidationError

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream.servers import Downstreams, DownstreamServer, unavailable_reason
from agents_mcp.server.app import create_server
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import DOWNSTREAM, call, make_config
from tests.processes import http_downstream

pytestmark = pytest.mark.anyio


def stdio(**extra: Any) -> DownstreamServerConfig:
    return DownstreamServerConfig(command=sys.executable, args=[DOWNSTREAM], **extra)


async def test_nothing_connects_until_a_tool_is_needed() -> None:
    never = DownstreamServerConfig(command="/nonexistent/server")
    servers = Downstreams.from_config({"ghost": never})
    toolset = servers.toolset(["ghost"], {})
    try:
        # Building the registry and a toolset spawned nothing; using it fails softly.
        assert await toolset.list_tools() == []
        out = await servers.servers["ghost"].call("x", {})
    finally:
        await servers.aclose()
    assert not out.ok
    assert out.text.startswith("Error: server 'ghost' is unavailable")


async def test_a_dead_stdio_server_is_restarted_on_the_next_call() -> None:
    servers = Downstreams.from_config({"notes": stdio()})
    notes = servers.servers["notes"]
    try:
        with anyio.fail_after(30):
            first = await notes.call("pid", {})
            crashed = await notes.call("crash", {})
            second = await notes.call("pid", {})
    finally:
        await servers.aclose()
    assert first.ok and second.ok
    assert first.text != second.text  # a new process answered
    assert not crashed.ok
    assert "stopped during the call" in crashed.text


async def test_a_late_reset_of_a_dead_session_leaves_the_new_one_alone() -> None:
    """Two calls failing on one dead session both reset it; the second reset may come
    after a third call connected afresh: it must not close that healthy session."""
    servers = Downstreams.from_config({"notes": stdio()})
    notes = servers.servers["notes"]
    try:
        with anyio.fail_after(30):
            await notes.call("pid", {})
            dead = notes._clients.get(None)
            crashed = await notes.call("crash", {})
            fresh = await notes.call("pid", {})
            await notes._reset(dead)  # the other failed call's reset, arriving late
            again = await notes.call("pid", {})
    finally:
        await servers.aclose()
    assert not crashed.ok and fresh.ok and again.ok
    assert again.text == fresh.text  # the same process answered: nothing was closed


def extra(**more: Any) -> DownstreamServerConfig:
    """The test server with the tools of ``--extra``."""
    return DownstreamServerConfig(command=sys.executable, args=[DOWNSTREAM, "--extra"], **more)


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_both_protocol_eras_over_stdio(protocol: Any) -> None:
    server = DownstreamServer("notes", stdio(protocol=protocol))
    try:
        with anyio.fail_after(60):
            tools = await server.tools()
            out = await server.call("add", {"a": 2, "b": 3})
            failed = await server.call("fail", {"reason": "no"})
            version = (c := server._clients.get(None)) and c.protocol_version
    finally:
        await server.aclose()
    assert version == ("2025-11-25" if protocol == "legacy" else protocol)
    assert "add" in [t.name for t in tools]
    assert (out.ok, out.text, out.structured) == (True, "5", {"result": 5})
    assert (failed.ok, failed.text) == (False, "Error calling tool 'fail': failed on purpose: no")


async def test_concurrent_calls_on_one_server_each_get_their_own_answer() -> None:
    server = DownstreamServer("notes", stdio())
    texts = [f"call {i}" for i in range(30)]
    answers: dict[str, str] = {}

    async def one(text: str) -> None:
        answers[text] = (await server.call("echo", {"text": text})).text

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for text in texts:
                    tg.start_soon(one, text)
    finally:
        await server.aclose()
    assert answers == {t: f"notes echo: {t}" for t in texts}


async def test_a_result_that_breaks_its_own_output_schema_is_an_error_for_the_model() -> None:
    server = DownstreamServer("notes", extra())
    try:
        with anyio.fail_after(60):
            out = await server.call("mismatched", {})
            again = await server.call("echo", {"text": "still here"})
    finally:
        await server.aclose()
    assert (out.ok, out.text) == (
        False,
        "Error: Invalid structured content returned by tool mismatched:"
        " 'x' is not of type 'number'",
    )
    assert (again.ok, again.text) == (True, "notes echo: still here")


async def test_a_call_that_times_out_is_an_error_and_the_server_carries_on() -> None:
    # Ten seconds: the second call answers well within it, even on a loaded machine.
    server = DownstreamServer("notes", extra(timeout=10))
    try:
        with anyio.fail_after(60):
            slow = await server.call("sleep", {"seconds": 3600})
            again = await server.call("sleep", {"seconds": 0})
    finally:
        await server.aclose()
    assert (slow.ok, slow.text) == (
        False,
        "Error: sleep did not finish within 10 s (the timeout of server 'notes'); it was"
        " cancelled, and may have done part of its work",
    )
    assert (again.ok, again.text) == (True, "awake")


async def test_a_server_that_never_answers_the_handshake_is_given_up_on() -> None:
    silent = DownstreamServerConfig(
        command=sys.executable, args=["-c", "import time; time.sleep(60)"], init_timeout=0.5
    )
    server = DownstreamServer("silent", silent)
    try:
        with anyio.fail_after(30), pytest.raises(Exception) as failed:
            await server.tools()
        out = await server.call("x", {})
    finally:
        await server.aclose()
    assert unavailable_reason(silent, failed.value) == (
        "it did not finish starting within init_timeout (0.5 s)"
    )
    assert out.text.startswith("Error: server 'silent' is unavailable: ")


async def test_stdio_children_get_only_the_declared_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_OF_THE_SERVER", "do-not-leak")
    servers = Downstreams.from_config({"notes": stdio(env={"DECLARED": "yes"})})
    try:
        with anyio.fail_after(30):
            out = await servers.servers["notes"].call("environment", {})
    finally:
        await servers.aclose()
    names = set(json.loads(out.text)) if out.text.startswith("[") else set(out.text.split())
    assert "DECLARED" in names and "PATH" in names and "HOME" in names
    assert "SECRET_OF_THE_SERVER" not in names


async def test_tool_list_is_cached_until_the_server_says_it_changed() -> None:
    server = FastMCP("live")

    @server.tool
    async def grow() -> str:
        """Add a tool and tell the client."""
        from fastmcp.server.dependencies import get_context

        server.add_tool(FastMCP("x").tool(lambda: "new", name="fresh"))
        await get_context().send_notification(ToolListChangedNotification())
        return "grown"

    servers = Downstreams.from_config(
        {"live": DownstreamServerConfig(command="unused")}, {"live": server}
    )
    live = servers.servers["live"]
    toolset = servers.toolset(["live"], {})
    try:
        before = [t.name for t in await live.tools()]
        offered = [t.name for t in await toolset.list_tools()]
        again = await toolset.list_tools()
        await live.call("grow", {})
        after = [t.name for t in await live.tools()]
        offered_after = [t.name for t in await toolset.list_tools()]
    finally:
        await servers.aclose()
    assert before == ["grow"]
    assert after == ["grow", "fresh"]
    assert [t.name for t in again] == offered == ["live__grow"]
    assert offered_after == ["live__grow", "live__fresh"]


def test_why_a_call_failed_is_short_and_names_no_exception_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from agents_mcp.downstream.failures import why as _why

    group = ExceptionGroup("unhandled errors in a TaskGroup", [ConnectionRefusedError(111, "x")])
    reasons = [
        _why(OSError(111, "Connection refused"), "s"),
        _why(RuntimeError("Client failed to connect: [Errno 111] Connection refused"), "s"),
        _why(group, "s"),
        _why(TimeoutError(), "s"),
        _why(ValueError("first line\nTraceback (most recent call last): ..."), "s"),
        _why(ValueError("y" * 500), "s")[-3:],
    ]
    assert reasons == [
        "Connection refused",
        "Client failed to connect: Connection refused",
        "x",
        "timed out",
        "first line",
        "yy…",
    ]
    with caplog.at_level(logging.ERROR, "agents_mcp"):
        silent = _why(KeyError(), "server s: calling t")
    assert silent.startswith("internal error (id err_") and "KeyError" not in silent
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is KeyError


# -- servers that cannot give their tools, through a real MCP client ----------------------

EXITING = str(Path(__file__).parent.parent / "exiting_server.py")


def _unavailable_config(tmp_path: Path, *, required: bool = False) -> Any:
    return make_config(
        tmp_path,
        servers={
            "notes": {"command": sys.executable, "args": [DOWNSTREAM]},
            "clock": {"command": "no-such-program-agents-mcp", "required": required},
            "flaky": {"command": sys.executable, "args": [EXITING]},
        },
        agents={
            "helper": {
                "description": "d",
                "instructions": "Be brief.",
                "model": "main",
                "servers": ["notes", "clock", "flaky"],
                "require_approval": "never",
            }
        },
    )


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_an_agent_without_some_servers_says_so_and_tells_its_model(
    tmp_path: Path, mode: str
) -> None:
    llm = ScriptedLLM("I cannot tell the time: my clock tool is unavailable.")
    mcp = create_server(
        _unavailable_config(tmp_path), db_path=tmp_path / "t.db", llms={"main": llm}
    )
    async with Client(mcp, mode=mode) as client:
        with anyio.fail_after(60):
            result = await client.call_tool(
                "chat_with_agent", {"agent": "helper", "message": "what time is it?"}
            )
        tid = result.structured_content["thread_id"]
        with anyio.fail_after(60):
            shown = await client.read_resource(f"agents-mcp://threads/{tid}")
    payload = result.structured_content
    assert payload is not None
    assert payload["status"] == "completed"
    assert payload["unavailable"] == snapshot(
        [
            {
                "server": "clock",
                "reason": "cannot start 'no-such-program-agents-mcp': no such program (give its absolute path in command; desktop apps start servers with a short PATH)",
            },
            {
                "server": "flaky",
                "reason": "it exited right after starting (the connection closed)",
            },
        ]
    )
    assert result.content[0].text.replace(tid, "<t>") == snapshot(
        """\
I cannot tell the time: my clock tool is unavailable.

Unavailable to the agent in this turn: the tools of server 'clock' (cannot start 'no-such-program-agents-mcp': no such program (give its absolute path in command; desktop apps start servers with a short PATH)).
Unavailable to the agent in this turn: the tools of server 'flaky' (it exited right after starting (the connection closed)).
[thread_id: <t> · agent: helper · status: completed] To continue this conversation, call chat_with_agent with thread_id='<t>'.\
"""
    )
    # The model was told, and was offered only the tools that exist.
    (request,) = llm.requests
    assert request.system == snapshot(
        "Be brief.\n\nSome of your tools are unavailable right now: server 'clock' (cannot start 'no-such-program-agents-mcp': no such program (give its absolute path in command; desktop apps start servers with a short PATH)); server 'flaky' (it exited right after starting (the connection closed)). Their tools are missing from your tool list. Do not guess what they would have returned: tell the user which tools are unavailable and why, and do what you can without them."
    )
    assert {t.name.split("__")[0] for t in request.tools} == {"notes"}
    # People reading the thread see it too.
    assert "unavailable: server 'flaky'" in shown[0].text


async def test_a_required_server_that_cannot_start_fails_the_run(tmp_path: Path) -> None:
    llm = ScriptedLLM()  # never asked: the run fails before the model
    mcp = create_server(
        _unavailable_config(tmp_path, required=True),
        db_path=tmp_path / "t.db",
        llms={"main": llm},
    )
    async with Client(mcp) as client:
        with anyio.fail_after(60):
            result = await client.call_tool(
                "chat_with_agent", {"agent": "helper", "message": "time?"}, raise_on_error=False
            )
    payload = result.structured_content
    assert payload is not None
    assert result.is_error
    assert (payload["status"], payload["error"]["type"]) == ("failed", "downstream_unavailable")
    assert payload["error"]["message"] == snapshot(
        "agent 'helper' cannot run without its required tools (server 'clock': cannot start 'no-such-program-agents-mcp': no such program (give its absolute path in command; desktop apps start servers with a short PATH)); fix the server (agents-mcp check shows why), then send a message to continue"
    )
    assert [u["server"] for u in payload["unavailable"]] == ["clock", "flaky"]
    assert llm.requests == []


# -- big results over streamable HTTP -------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "seen"),
    [
        (None, "[truncated: 50000 of 2000000 characters shown"),
        (
            1_000_000,
            "Error: the result of big is too large: server 'web' sent more than 1000000 bytes"
            " in one message (max_result_bytes), so it was refused. Ask for less: a smaller"
            " part, a page, a filter or a summary.",
        ),
    ],
)
async def test_an_http_result_over_1_mib_reaches_the_model(
    tmp_path: Path, limit: int | None, seen: str
) -> None:
    llm = ScriptedLLM(Call("web__big", {"size": 2_000_000}), "done")
    with http_downstream("web") as url:
        entry: dict[str, Any] = {"url": url}
        if limit is not None:
            entry["max_result_bytes"] = limit
        config = make_config(
            tmp_path,
            servers={"web": entry},
            agents={
                "helper": {
                    "description": "d",
                    "model": "main",
                    "servers": ["web"],
                    "require_approval": "never",
                }
            },
        )
        mcp = create_server(config, db_path=tmp_path / "t.db", llms={"main": llm})
        async with Client(mcp) as client:
            payload = await call(client, "chat_with_agent", agent="helper", message="big")
    assert payload["reply"] == "done"
    shown = next(m.content or "" for m in llm.requests[1].messages if m.role == "tool")
    assert seen in shown
    assert "SSE" not in shown


def test_max_result_bytes_is_for_http_servers_only() -> None:
    with pytest.raises(ValidationError, match="only valid with url"):
        stdio(max_result_bytes=10)
