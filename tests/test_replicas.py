"""Several agents-mcp replicas on one PostgreSQL database, as real HTTP server processes.

Any replica serves any request, in both protocol eras: a thread started on one continues
on another, a call paused by one is approved on another and runs once, a wait on one
follows a run on another, and cancel_run on one stops a run on another. Under load, 300
concurrent conversations spread over three replicas all complete, every tool call once;
and when one replica is killed with SIGKILL during the load, the others settle its
threads once its lease expires: nothing stuck, nothing run twice, approved calls run once.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError

from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse, ToolCall, Usage
from agents_mcp.store.states import MAY_HAVE_RUN
from agents_mcp.testing.chat_server import FakeChatServer
from tests.postgres import fresh_database
from tests.processes import free_port, http_downstream, write_config

pytestmark = pytest.mark.anyio

BOUND = 120.0


@dataclass
class Model:
    """Asks for a note titled with the caller's message, then says it is done. Before
    answering it may wait: ``latency`` seconds (load), or until ``gate`` opens."""

    latency: float = 0.0
    gate: anyio.Event | None = None
    asked: anyio.Event = field(default_factory=anyio.Event)
    count: int = 0
    busy: anyio.Event = field(default_factory=anyio.Event)
    """Set once ``busy_after`` more requests came after it was armed (see ``arm``)."""
    busy_after: int | None = None

    def arm(self, requests: int) -> anyio.Event:
        self.busy, self.busy_after = anyio.Event(), self.count + requests
        return self.busy

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        self.asked.set()
        self.count += 1
        if self.busy_after is not None and self.count >= self.busy_after:
            self.busy.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.latency:
            await anyio.sleep(self.latency)  # the model's own latency, not a test wait
        last = request.messages[-1]
        if last.role == "user":
            args = json.dumps({"title": last.content, "body": "b"})
            call = ToolCall(id="w1", name="notes__write_note", arguments=args)
            return LLMResponse(content=None, tool_calls=(call,), usage=Usage())
        return LLMResponse(content="done", usage=Usage())


@dataclass
class Replicas:
    urls: list[str]
    log: Path
    procs: list[Any]

    def executed(self) -> list[str]:
        if not self.log.exists():
            return []
        return [
            json.loads(line)["arguments"]["title"] for line in self.log.read_text().splitlines()
        ]


@asynccontextmanager
async def replicas(
    tmp_path: Path,
    pg_cluster: str,
    model: Model,
    *,
    count: int = 3,
    approval: str = "never",
    lease_seconds: float = 15,
    stateless: bool = False,
) -> AsyncIterator[Replicas]:
    from tests.processes import agents_mcp_http_process

    db = await fresh_database(pg_cluster)
    log = tmp_path / "executed.jsonl"
    async with AsyncExitStack() as stack:
        base_url = await stack.enter_async_context(FakeChatServer(model).serve())
        notes = stack.enter_context(http_downstream("notes", env={"DOWNSTREAM_LOG": str(log)}))
        config = write_config(
            tmp_path / "agents.json",
            {
                "mcpServers": {"notes": {"url": notes}},
                "models": {"main": {"base_url": base_url, "model": "m"}},
                "agents": {
                    "scribe": {
                        "description": "Writes notes",
                        "model": "main",
                        "servers": ["notes"],
                        "require_approval": approval,
                    }
                },
                "server": {"db": db, "lease_seconds": lease_seconds, "stateless_http": stateless},
            },
        )
        urls, procs = [], []
        for _ in range(count):
            port = free_port()
            proc = await stack.enter_async_context(
                agents_mcp_http_process(config, port=port, env={"HOME": str(tmp_path)})
            )
            urls.append(f"http://127.0.0.1:{port}/mcp")
            procs.append(proc)
        yield Replicas(urls, log, procs)


def client(url: str, mode: str = "auto") -> Client[Any]:
    return Client(StreamableHttpTransport(url), mode=mode, timeout=BOUND)


async def tool(c: Client[Any], name: str, **args: Any) -> dict[str, Any]:
    """A tool's structured result; a failed run's too (an error result that still carries
    the thread), other errors raise."""
    with anyio.fail_after(BOUND):
        result = await c.call_tool(name, args, raise_on_error=False)
    if result.structured_content is None:
        raise ToolError(str(result.content))
    return result.structured_content


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_any_replica_serves_any_request(tmp_path: Path, pg_cluster: str, mode: str) -> None:
    model = Model()
    async with replicas(tmp_path, pg_cluster, model, approval="always") as r:
        a, b, c = (client(u, mode) for u in r.urls)
        async with a, b, c:
            paused = await tool(a, "chat_with_agent", agent="scribe", message="first")
            tid = paused["thread_id"]
            approved = await tool(b, "approve_call", thread_id=tid, call_id="w1", approve=True)
            # A new message on the third replica, whose call the first one approves.
            again = await tool(
                c, "chat_with_agent", agent="scribe", message="second", thread_id=tid
            )
            done = await tool(a, "approve_call", thread_id=tid, call_id="w1~2", approve=True)

            # A wait on one replica follows a run on another to its end.
            model.gate, model.asked = anyio.Event(), anyio.Event()
            running = await tool(
                a, "chat_with_agent", agent="scribe", message="third", thread_id=tid, wait_seconds=0
            )
            followed: dict[str, Any] = {}

            async def follow() -> None:
                followed.update(await tool(b, "get_thread", thread_id=tid, wait_seconds=60))

            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                with anyio.fail_after(BOUND):
                    await model.asked.wait()
                model.gate.set()  # the run on the first replica goes on and pauses
            listed = await tool(c, "list_threads", status="needs_approval")
            await tool(c, "approve_call", thread_id=tid, call_id="w1~3", approve=False)

            # cancel_run on one replica stops a run on another.
            model.gate, model.asked = anyio.Event(), anyio.Event()
            await tool(
                a,
                "chat_with_agent",
                agent="scribe",
                message="fourth",
                thread_id=tid,
                wait_seconds=0,
            )
            with anyio.fail_after(BOUND):
                await model.asked.wait()
            cancelled = await tool(b, "cancel_run", thread_id=tid)
            model.gate.set()
            final = await tool(c, "get_thread", thread_id=tid, wait_seconds=30)
    assert (paused["status"], approved["status"]) == ("needs_approval", "completed")
    assert (again["status"], done["status"]) == ("needs_approval", "completed")
    assert running["status"] == "running"
    assert followed["status"] == "needs_approval"
    assert [t["thread_id"] for t in listed["threads"]] == [tid]
    assert cancelled["status"] == "cancelled"
    assert final["status"] == "cancelled"
    assert sorted(r.executed()) == ["first", "second"]  # denied and cancelled never ran


async def test_a_handshake_era_client_behind_a_load_balancer(
    tmp_path: Path, pg_cluster: str
) -> None:
    """Replicas with stateless_http behind a round-robin balancer (no session affinity):
    a handshake-era client's consecutive requests land on different replicas and work."""
    from tests.processes import asgi_on_loopback
    from tests.proxy import RoundRobin

    async with replicas(tmp_path, pg_cluster, Model(), approval="always", stateless=True) as r:
        balancer = RoundRobin([u.removesuffix("/mcp") for u in r.urls])
        async with asgi_on_loopback(balancer) as base, client(base + "/mcp", "legacy") as c:
            paused = await tool(c, "chat_with_agent", agent="scribe", message="first")
            tid = paused["thread_id"]
            listed = await tool(c, "list_threads", status="needs_approval")
            done = await tool(c, "approve_call", thread_id=tid, call_id="w1", approve=True)
            again = await tool(c, "get_thread", thread_id=tid)
        await balancer.http.aclose()
    assert (paused["status"], done["status"], again["status"]) == (
        "needs_approval",
        "completed",
        "completed",
    )
    assert [t["thread_id"] for t in listed["threads"]] == [tid]
    assert len(set(balancer.sent)) == 3  # every replica served some of it
    assert r.executed() == ["first"]


async def test_three_replicas_under_load(tmp_path: Path, pg_cluster: str) -> None:
    """300 concurrent conversations, round-robin over three replicas (sessionless era),
    the model answering after 50 ms: every one completes, every call runs once."""
    async with replicas(tmp_path, pg_cluster, Model(latency=0.05)) as r:
        clients = [client(u) for u in r.urls]
        results: dict[int, dict[str, Any]] = {}
        errors: list[str] = []
        async with AsyncExitStack() as stack:
            for c in clients:
                await stack.enter_async_context(c)

            async def conversation(i: int) -> None:
                try:
                    results[i] = await tool(
                        clients[i % 3], "chat_with_agent", agent="scribe", message=f"n{i}",
                        wait_seconds=90,
                    )  # fmt: skip
                except Exception as exc:
                    errors.append(f"{i}: {exc}")

            async with anyio.create_task_group() as tg:
                for i in range(300):
                    tg.start_soon(conversation, i)
            counts = await message_counts(
                clients[0], [res["thread_id"] for res in results.values()]
            )
    assert errors == []
    assert {res["status"] for res in results.values()} == {"completed"}
    assert sorted(r.executed()) == sorted(f"n{i}" for i in range(300))
    assert set(counts) == {4}  # the message, the call, its result, the answer


async def message_counts(c: Client[Any], tids: list[str]) -> list[int]:
    counts = []
    for tid in tids:
        page = await tool(c, "get_thread", thread_id=tid, include_messages=True)
        counts.append(len(page["messages"]))
    return counts


async def test_a_replica_killed_under_load_leaves_nothing_stuck(
    tmp_path: Path, pg_cluster: str
) -> None:
    """Threads paused on every replica, approved round-robin on another one; one replica
    is killed with SIGKILL while the approved runs go on. The others settle its threads
    once its lease expires: none stays running, no call runs twice, and every approved
    call ran once, or says it may have run (killed between starting it and its end)."""
    count = 60
    model = Model(latency=0.1)
    async with replicas(tmp_path, pg_cluster, model, approval="always", lease_seconds=10) as r:
        clients = [client(u) for u in r.urls]
        async with AsyncExitStack() as stack:
            for c in clients:
                await stack.enter_async_context(_closed_quietly(c))
            paused = await _all(
                lambda i: tool(clients[i % 3], "chat_with_agent", agent="scribe", message=f"n{i}"),
                count,
            )
            tids = [p["thread_id"] for p in paused]

            async def approve(i: int) -> dict[str, Any]:
                # On the next replica: a call paused by one runs on another.
                return await tool(
                    clients[(i + 1) % 3], "approve_call", thread_id=tids[i], call_id="w1",
                    approve=True, wait_seconds=60,
                )  # fmt: skip

            busy = model.arm(count // 3)  # a third of the resumed runs asked the model
            async with anyio.create_task_group() as tg:
                for i in range(count):
                    tg.start_soon(_quietly, approve, i)
                with anyio.fail_after(BOUND):
                    await busy.wait()
                os.kill(r.procs[0].pid, signal.SIGKILL)  # while runs are in flight
            survivor = clients[1]
            with anyio.fail_after(BOUND):
                states = [
                    await tool(survivor, "get_thread", thread_id=t, wait_seconds=30) for t in tids
                ]
                while any(s["status"] == "running" for s in states):
                    states = [
                        await tool(survivor, "get_thread", thread_id=t, wait_seconds=30)
                        for t in tids
                    ]
            pages = [
                await tool(survivor, "get_thread", thread_id=t, include_messages=True) for t in tids
            ]
    executed = r.executed()
    assert len(executed) == len(set(executed)), "a call ran twice"
    assert not [s for s in states if s["status"] == "running"]
    outcomes: dict[str, int] = {}
    for i, page in enumerate(pages):
        results = [m["content"] for m in page["messages"] if m["role"] == "tool"]
        if page["status"] == "needs_approval":  # its approval went to the killed replica
            assert f"n{i}" not in executed
            assert [p["call_id"] for p in page["pending_approvals"]] == ["w1"]
            outcome = "still waiting for approval"
        elif f"n{i}" in executed:
            events = [m["content"] for m in page["messages"] if m["role"] == "event"]
            outcome = "ran once, resumed by another replica" if events else "ran once"
        else:
            assert MAY_HAVE_RUN in results, f"n{i} never ran: {page['status']} {results}"
            outcome = "may have run (killed mid-call)"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"\n{count} approved threads, one replica killed: {outcomes}")
    assert outcomes.get("ran once, resumed by another replica", 0) >= 1  # recovery was tested


async def _all(make: Callable[[int], Any], count: int) -> list[dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}

    async def one(i: int) -> None:
        out[i] = await make(i)

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    return [out[i] for i in range(count)]


@asynccontextmanager
async def _closed_quietly(c: Client[Any]) -> AsyncIterator[Client[Any]]:
    """A client whose server may be gone by the time it says goodbye."""
    goodbye = AsyncExitStack()
    await goodbye.enter_async_context(c)
    try:
        yield c
    finally:
        # The killed replica cannot answer the goodbye.
        with anyio.CancelScope(shield=True), anyio.move_on_after(10), suppress(Exception):
            await goodbye.aclose()


async def _quietly(fn: Callable[[int], Any], i: int) -> None:
    """A request whose replica is killed under it fails; that is the point."""
    with suppress(ToolError, Exception):
        await fn(i)
