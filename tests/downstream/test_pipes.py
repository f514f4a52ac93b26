"""Stdio servers through our pipes (``agents_mcp.downstream.pipes``) and our own session
(``agents_mcp.downstream.rpc``), against real child processes: a raw JSON-RPC server for
the edges, the FastMCP test server for both eras."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream import DownstreamServer
from agents_mcp.downstream.pipes import Command, PipeTransport
from tests.conftest import DOWNSTREAM

pytestmark = pytest.mark.anyio

PIPE_SERVER = str(Path(__file__).parent.parent / "pipe_server.py")
ENV = {
    "test_closing_stops_a_server_that_ignores_the_end_of_its_stdin": {"PIPE_SERVER_STUBBORN": "1"}
}


class Logged:
    """A raw server and the lines it received."""

    def __init__(self, server: DownstreamServer, log: Path) -> None:
        self.server = server
        self.log = log

    def received(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture(params=["own session", "SDK session"])
async def raw(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Logged]:
    """The raw server behind our own session (``agents_mcp.downstream.rpc``, the handshake era's
    default) or behind the SDK's session over our pipes (``PipeTransport``)."""
    log = tmp_path / "received.jsonl"
    env = {"PIPE_SERVER_LOG": str(log)} | ENV.get(request.node.name.split("[")[0], {})
    config = DownstreamServerConfig(command=sys.executable, args=[PIPE_SERVER], env=env, timeout=2)
    transport = None
    if request.param == "SDK session":
        transport = PipeTransport(Command(sys.executable, (PIPE_SERVER,), env=env))
    server = DownstreamServer("raw", config, transport=transport)
    try:
        yield Logged(server, log)
    finally:
        with anyio.fail_after(30):
            await server.aclose()


async def test_concurrent_calls_each_get_their_own_answer(raw: Logged) -> None:
    texts = [f"call {i}" for i in range(30)]
    answers: dict[str, str] = {}

    async def one(text: str) -> None:
        answers[text] = (await raw.server.call("echo", {"text": text})).text

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for text in texts:
                tg.start_soon(one, text)
    assert answers == {t: t for t in texts}


async def test_a_line_that_is_not_json_rpc_does_not_end_the_session(raw: Logged) -> None:
    with anyio.fail_after(30):
        after = await raw.server.call("garbage", {})
        again = await raw.server.call("echo", {"text": "still here"})
    assert (after.ok, after.text) == (True, "after garbage")
    assert (again.ok, again.text) == (True, "still here")


async def test_many_messages_at_once_are_all_read_in_order(raw: Logged) -> None:
    # Hundreds of notifications arrive in a few reads, more than the transport queues
    # before it pauses the pipe: reading must resume and the answer behind them arrive.
    with anyio.fail_after(60):
        out = await raw.server.call("flood", {"count": 500})
        again = await raw.server.call("echo", {"text": "next"})
    assert out.text == "after 500 notifications"
    assert again.text == "next"


async def test_a_result_much_bigger_than_a_pipe_read_arrives_whole(raw: Logged) -> None:
    with anyio.fail_after(60):
        out = await raw.server.call("big", {"size": 5_000_000})
    assert out.ok
    assert out.text == "x" * 5_000_000


async def test_a_call_that_times_out_is_cancelled_at_the_server(raw: Logged) -> None:
    with anyio.fail_after(30):
        out = await raw.server.call("silent", {})
        await raw.server.call("echo", {"text": "after"})  # lines are read in order
    assert not out.ok
    assert "timed out" in out.text
    calls = [m for m in raw.received() if m.get("method") == "tools/call"]
    cancels = [m for m in raw.received() if m.get("method") == "notifications/cancelled"]
    silent = next(m for m in calls if m["params"]["name"] == "silent")
    assert [c["params"]["requestId"] for c in cancels] == [silent["id"]]


async def test_a_call_cancelled_by_its_caller_is_cancelled_at_the_server(raw: Logged) -> None:
    with anyio.fail_after(30):
        await raw.server.call("echo", {"text": "connected"})
        with anyio.move_on_after(0.5) as scope:  # well before the 2 s timeout
            await raw.server.call("silent", {})
        assert scope.cancelled_caught
        await raw.server.call("echo", {"text": "after"})
    silent = next(m for m in raw.received() if m.get("params", {}).get("name") == "silent")
    cancels = [m for m in raw.received() if m.get("method") == "notifications/cancelled"]
    assert [c["params"]["requestId"] for c in cancels] == [silent["id"]]


async def test_closing_stops_a_server_that_ignores_the_end_of_its_stdin(raw: Logged) -> None:
    with anyio.fail_after(30):
        assert (await raw.server.call("echo", {"text": "hi"})).ok
        pid = raw.received()[0]["pid"]
        await raw.server.aclose()  # stdin closed, 2 s of grace, then SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_both_protocol_eras_over_the_pipes(protocol: str) -> None:
    config = DownstreamServerConfig(
        command=sys.executable,
        args=[DOWNSTREAM],
        protocol=protocol,  # type: ignore[arg-type]
    )
    server = DownstreamServer("notes", config)
    try:
        with anyio.fail_after(60):
            tools = await server.tools()
            out = await server.call("add", {"a": 2, "b": 3})
            failed = await server.call("fail", {"reason": "no"})
    finally:
        await server.aclose()
    assert "add" in [t.name for t in tools]
    assert (out.ok, out.text, out.structured) == (True, "5", {"result": 5})
    assert not failed.ok
    assert "no" in failed.text


async def test_the_server_s_requests_are_answered(raw: Logged) -> None:
    # ping is answered; anything else is refused: we declare no capabilities
    with anyio.fail_after(30):
        out = await raw.server.call("ask", {})
    replies = json.loads(out.text)
    assert replies["s-1"] == {"id": "s-1", "result": {}}
    assert replies["s-2"] == {
        "id": "s-2",
        "error": {"code": -32600, "message": "List roots not supported"},
    }


async def test_tools_come_page_by_page_until_the_list_changes(raw: Logged) -> None:
    with anyio.fail_after(30):
        tools = await raw.server.tools()
        assert raw.server.cached_tools is tools
        await raw.server.call("changed", {})
        await raw.server.call("echo", {"text": "after"})  # the notification came before
    names = ["echo", "garbage", "flood", "big", "silent", "ask", "changed", "mismatched"]
    assert [t.name for t in tools] == names
    assert raw.server.cached_tools is None


async def test_an_error_answer_reaches_the_model(raw: Logged) -> None:
    with anyio.fail_after(30):
        out = await raw.server.call("nonexistent", {})
        again = await raw.server.call("echo", {"text": "fine"})
    assert not out.ok
    assert "Unknown tool: nonexistent" in out.text
    assert again.text == "fine"


async def test_a_result_that_does_not_match_its_output_schema_still_reaches_the_model(
    raw: Logged,
) -> None:
    with anyio.fail_after(30):
        await raw.server.tools()  # the SDK checks results only of tools it has listed
        out = await raw.server.call("mismatched", {})
    assert (out.ok, out.text, out.structured) == (True, "n is not a number", {"n": "x"})


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def test_a_server_that_dies_leaving_its_stdout_open_is_restarted(raw: Logged) -> None:
    # Its stdout never ends (a process it started holds it): its exit alone must end the
    # session, so the next call starts it again, and stopping it stops what it left.
    with anyio.fail_after(30):
        died = await raw.server.call("orphan", {})
        again = await raw.server.call("echo", {"text": "restarted"})
    assert not died.ok
    assert (again.ok, again.text) == (True, "restarted")
    [orphan] = [line["orphan"] for line in raw.received() if "orphan" in line]
    assert not _running(orphan)
