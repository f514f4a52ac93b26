"""Thread resources a client follows: ``resources/subscribe`` (handshake era) and
``subscriptions/listen`` (2026-07-28) announce each change of ``agents-mcp://threads/<id>``;
unknown and foreign threads are the protocol's resource-not-found, never ``-32603``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from mcp.client.subscriptions import listen
from mcp.shared.exceptions import MCPError
from mcp_types import ResourceUpdatedNotification

from agents_mcp.config import Config
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import make_config
from tests.downstream_server import make_server
from tests.processes import agents_mcp_in_process
from tests.reading import text_of

pytestmark = pytest.mark.anyio

WRITE = Call("notes__write_note", {"title": "t", "body": "b"}, id="w1")
TOKENS = {"alice": {"token": "alice-token"}, "bob": {"token": "bob-token"}}


def config(tmp_path: Path) -> Config:
    agents = {"helper": {"description": "d", "model": "main", "servers": ["notes"]}}
    return make_config(tmp_path, agents=agents, server={"tokens": TOKENS})


def uri(thread_id: str) -> str:
    return f"agents-mcp://threads/{thread_id}"


async def paused_thread(client: Client[Any]) -> str:
    result = await client.call_tool("chat_with_agent", {"agent": "helper", "message": "n"})
    assert result.structured_content is not None
    assert result.structured_content["status"] == "needs_approval"
    tid: str = result.structured_content["thread_id"]
    return tid


async def test_a_handshake_client_is_told_of_each_change(tmp_path: Path) -> None:
    updates: list[str] = []
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(message.params.uri)
            changed.set()

    llm = ScriptedLLM(WRITE, "saved")
    async with (
        agents_mcp_in_process(
            config(tmp_path),
            tmp_path / "t.db",
            llms={"main": llm},
            transports={"notes": make_server()},
        ) as url,
        Client(url, mode="legacy", auth="alice-token", message_handler=on_message) as alice,
        Client(url, mode="legacy", auth="bob-token") as bob,
    ):
        assert alice.initialize_result is not None
        caps = alice.initialize_result.capabilities.resources
        tid = await paused_thread(alice)
        with warnings.catch_warnings():  # removed in 2026-07-28; this is the handshake era
            warnings.simplefilter("ignore")
            await alice.session.subscribe_resource(uri(tid))
            refused = []
            for who, target in ((bob, uri(tid)), (alice, uri("th_unknown")), (alice, "ui://x")):
                with pytest.raises(MCPError) as error:
                    await who.session.subscribe_resource(target)
                refused.append((error.value.error.code, error.value.error.data))
            await alice.call_tool(
                "approve_call", {"thread_id": tid, "call_id": "w1", "approve": True}
            )
            with anyio.fail_after(20):
                await changed.wait()
            await alice.session.unsubscribe_resource(uri(tid))
    assert caps is not None and caps.subscribe is True
    assert updates[0] == uri(tid)
    assert refused == [
        (-32602, {"uri": uri(tid)}),
        (-32602, {"uri": uri("th_unknown")}),
        (-32602, {"uri": "ui://x"}),
    ]


async def test_a_2026_client_listens(tmp_path: Path) -> None:
    llm = ScriptedLLM(WRITE, "saved")
    async with (
        agents_mcp_in_process(
            config(tmp_path),
            tmp_path / "t.db",
            llms={"main": llm},
            transports={"notes": make_server()},
        ) as url,
        Client(url, mode="2026-07-28", auth="alice-token") as alice,
        Client(url, mode="2026-07-28", auth="bob-token") as bob,
    ):
        tid = await paused_thread(alice)
        with pytest.raises(MCPError) as theirs:
            async with listen(bob.session, resource_subscriptions=[uri(tid)]):
                pass
        async with listen(alice.session, resource_subscriptions=[uri(tid)]) as stream:
            await alice.call_tool(
                "approve_call", {"thread_id": tid, "call_id": "w1", "approve": True}
            )
            with anyio.fail_after(20):
                event = await stream.__anext__()
    assert theirs.value.error.code == -32602
    assert theirs.value.error.data == {"uri": uri(tid)}
    assert getattr(event, "uri", None) == uri(tid)


async def test_reading_an_unknown_or_foreign_thread_is_not_found(tmp_path: Path) -> None:
    llm = ScriptedLLM(WRITE)
    async with agents_mcp_in_process(
        config(tmp_path), tmp_path / "t.db", llms={"main": llm}, transports={"notes": make_server()}
    ) as url:
        async with Client(url, mode="2026-07-28", auth="alice-token") as alice:
            tid = await paused_thread(alice)
            own = await alice.read_resource(uri(tid))
        errors = []
        for mode in ("legacy", "2026-07-28"):
            async with Client(url, mode=mode, auth="bob-token") as bob:
                for target in (uri(tid), uri("th_unknown")):
                    with pytest.raises(MCPError) as error:
                        await bob.read_resource(target)
                    errors.append((error.value.error.code, error.value.error.message))
    assert text_of(own[0]).startswith("# ")
    assert (
        errors
        == [
            (-32602, f"Resource not found: {uri(tid)!r}"),
            (-32602, f"Resource not found: {uri('th_unknown')!r}"),
        ]
        * 2
    )
