"""``stateless_http = true`` with handshake-era clients: the MCP Apps declaration and the
cancellations that a session would keep, kept without one, on any replica."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastmcp import Client
from mcp.client.extension import advertise
from mcp.client.subscriptions import ResourceUpdated, listen
from mcp.shared.exceptions import MCPError

from agents_mcp.config import Config
from agents_mcp.messages import LLMRequest
from agents_mcp.server.app import create_server
from agents_mcp.server.declarations import declared, session_id
from agents_mcp.server.transports import http_app
from agents_mcp.server.ui import UI_EXTENSION, UI_MIME
from agents_mcp.testing import ScriptedLLM
from tests.conftest import make_config
from tests.processes import asgi_on_loopback
from tests.proxy import RoundRobin
from tests.reading import structured

pytestmark = pytest.mark.anyio

APPS = advertise(UI_EXTENSION, {"mimeTypes": [UI_MIME]})


def config(tmp_path: Path, on_cancel: str = "stop") -> Config:
    agents = {
        "helper": {"description": "d", "model": "main", "servers": [], "on_cancel": on_cancel}
    }
    return make_config(tmp_path, agents=agents)


@asynccontextmanager
async def stateless(
    cfg: Config, db: Path | str, llms: Sequence[ScriptedLLM]
) -> AsyncIterator[list[str]]:
    """One stateless agents-mcp per model, all on ``db``; yields their base URLs."""
    async with AsyncExitStack() as stack:
        urls = []
        for llm in llms:
            mcp = create_server(cfg, db_path=db, llms={"main": llm})
            app = http_app(mcp, host="127.0.0.1", stateless=True)
            urls.append(await stack.enter_async_context(asgi_on_loopback(app, lifespan="on")))
        yield urls


def test_a_session_id_carries_the_declaration() -> None:
    caps = {"extensions": {UI_EXTENSION: {"mimeTypes": [UI_MIME]}}, "elicitation": {}}
    one, two = session_id(caps), session_id(caps)
    assert one is not None and two is not None and one != two
    assert declared(one) == declared(two) == caps
    assert declared("sl1.not-base64!") is None
    assert declared("a-session-of-someone-else") is None
    assert session_id({"x": "y" * 10_000}) is None


async def test_the_mcp_apps_declaration_survives_statelessness(tmp_path: Path) -> None:
    async with stateless(config(tmp_path), tmp_path / "t.db", [ScriptedLLM()]) as [base]:
        listed = {}
        for name, extensions in (("apps", [APPS]), ("plain", None)):
            async with Client(f"{base}/mcp", mode="legacy", extensions=extensions) as client:
                listed[name] = {t.name: t for t in await client.list_tools()}
    assert "watch_thread" in listed["apps"]
    assert (listed["apps"]["chat_with_agent"].meta or {}).get("ui") == {
        "resourceUri": "ui://agents-mcp/thread"
    }
    assert "watch_thread" not in listed["plain"]
    assert "ui" not in (listed["plain"]["chat_with_agent"].meta or {})


class Forever:
    """A model step that never answers, and says when it was asked."""

    def __init__(self) -> None:
        self.asked = anyio.Event()

    async def __call__(self, request: LLMRequest) -> str:
        self.asked.set()
        await anyio.sleep_forever()
        raise AssertionError


HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": "2025-11-25",
}


async def rpc(http: httpx2.AsyncClient, url: str, message: dict[str, Any], **headers: str) -> Any:
    return await http.post(url, json={"jsonrpc": "2.0", **message}, headers={**HEADERS, **headers})


async def cancel_a_waiting_call(url: str, status_url: str, asked: anyio.Event) -> str:
    """A handshake client calls chat_with_agent and, once its run asks the model, sends
    ``notifications/cancelled`` for it, keeping the call's own response open (as a client
    that gives up on a call but not on its connection does). Returns the thread's status
    once it moves."""
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    }
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None)) as http:
        opened = await rpc(http, url, {"id": 1, "method": "initialize", "params": params})
        session = opened.headers["mcp-session-id"]
        await rpc(http, url, {"method": "notifications/initialized"}, **{"mcp-session-id": session})
        call = {
            "id": 7,
            "method": "tools/call",
            "params": {
                "name": "chat_with_agent",
                "arguments": {"agent": "helper", "message": "hi"},
            },
        }
        request = http.build_request(
            "POST",
            url,
            json={"jsonrpc": "2.0", **call},
            headers={**HEADERS, "mcp-session-id": session},
        )
        response = await http.send(request, stream=True)
        try:
            with anyio.fail_after(20):
                await asked.wait()
            cancel = {"method": "notifications/cancelled", "params": {"requestId": 7}}
            await rpc(http, url, cancel, **{"mcp-session-id": session})
            return await status_of(status_url)
        finally:
            await response.aclose()


async def status_of(url: str) -> str:
    """The status of the only thread, once it is no longer running (``get_thread``
    waits for a running turn)."""
    async with Client(url, mode="legacy") as client:
        listed = await client.call_tool("list_threads", {})
        assert listed.structured_content is not None
        tid = listed.structured_content["threads"][0]["thread_id"]
        with anyio.fail_after(30):
            got = await client.call_tool("get_thread", {"thread_id": tid, "wait_seconds": 20})
        assert got.structured_content is not None
        status: str = got.structured_content["status"]
        return status


async def test_a_cancellation_stops_a_run_statelessly(tmp_path: Path) -> None:
    model = Forever()
    async with stateless(config(tmp_path), tmp_path / "t.db", [ScriptedLLM(model)]) as [base]:
        status = await cancel_a_waiting_call(f"{base}/mcp", f"{base}/mcp", model.asked)
    assert status == "cancelled"


def calls_to_the_first(body: bytes) -> int:
    """Route tools/call to the first replica and everything else to the second."""
    return 0 if b'"method":"tools/call"' in body.replace(b" ", b"") else 1


async def test_a_cancellation_reaching_another_replica_stops_the_run(
    tmp_path: Path, pg_cluster: str
) -> None:
    """The call waits on one replica and its cancellation arrives at the other, as behind
    a balancer without affinity: it goes through the database."""
    from tests.postgres import fresh_database

    db = await fresh_database(pg_cluster)
    model = Forever()
    llms = [ScriptedLLM(model), ScriptedLLM()]
    async with stateless(config(tmp_path), db, llms) as urls:
        balancer = RoundRobin(urls, route=calls_to_the_first)
        async with asgi_on_loopback(balancer) as front:
            status = await cancel_a_waiting_call(f"{front}/mcp", f"{urls[1]}/mcp", model.asked)
        await balancer.http.aclose()
    assert status == "cancelled"


async def test_a_detaching_agent_runs_on_after_a_stateless_cancel(tmp_path: Path) -> None:
    gate, asked = anyio.Event(), anyio.Event()

    async def held(request: LLMRequest) -> str:
        asked.set()
        await gate.wait()
        return "done anyway"

    cfg = config(tmp_path, on_cancel="detach")
    async with stateless(cfg, tmp_path / "t.db", [ScriptedLLM(held)]) as [base]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_a_waiting_call, f"{base}/mcp", f"{base}/mcp", asked)
            with anyio.fail_after(20):
                await asked.wait()
            gate.set()
        async with Client(f"{base}/mcp", mode="legacy") as client:
            listed = await client.call_tool("list_threads", {})
    assert listed.structured_content is not None
    assert listed.structured_content["threads"][0]["status"] == "completed"


async def a_thread(client: Client[Any]) -> str:
    result = await client.call_tool("chat_with_agent", {"agent": "helper", "message": "hi"})
    tid: str = structured(result)["thread_id"]
    return tid


async def test_subscribing_without_sessions_is_refused_with_the_reason(tmp_path: Path) -> None:
    """No stream outlives a request to carry the notices: a handshake client is not
    offered ``resources/subscribe``, and is told why when it subscribes anyway, to a
    thread of its own."""
    async with (
        stateless(config(tmp_path), tmp_path / "t.db", [ScriptedLLM("hello")]) as [base],
        Client(f"{base}/mcp", mode="legacy") as client,
    ):
        assert client.initialize_result is not None
        offered = client.initialize_result.capabilities.resources
        tid = await a_thread(client)
        with warnings.catch_warnings(), pytest.raises(MCPError) as error:
            warnings.simplefilter("ignore")  # resources/subscribe is gone in 2026-07-28
            await client.session.subscribe_resource(f"agents-mcp://threads/{tid}")
    assert offered is not None and not offered.subscribe
    assert error.value.error.code == -32600
    assert "stateless_http" in error.value.error.message
    assert "subscriptions/listen" in error.value.error.message


async def test_a_2026_client_follows_a_thread_without_sessions(tmp_path: Path) -> None:
    """``subscriptions/listen`` carries the notices on the client's own request."""
    uri = ""
    async with (
        stateless(config(tmp_path), tmp_path / "t.db", [ScriptedLLM("hello", "again")]) as [base],
        Client(f"{base}/mcp", mode="2026-07-28") as client,
    ):
        tid = await a_thread(client)
        uri = f"agents-mcp://threads/{tid}"
        async with listen(client.session, resource_subscriptions=[uri]) as stream:
            more = {"agent": "helper", "message": "more", "thread_id": tid}
            await client.call_tool("chat_with_agent", more)
            with anyio.fail_after(20):
                event = await stream.__anext__()
    assert isinstance(event, ResourceUpdated)
    assert event.uri == uri
