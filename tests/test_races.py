"""Racing requests on one thread, driven deterministically through the store's points.

For every pair of requests (a new message, approve, deny, cancel_run, get_thread of an
``on_cancel = "stop"`` agent, a client cancelling its request) and every point the first
one passes (its own store operations and those of the run it starts), the first request
is paused there, the second runs as far as it can, then the first goes on (or, for the
client that cancels, is cancelled right there). Afterwards, and again after a restart on
the same database, the invariants must hold:

* no thread is ``running`` without a live run, and every request answered in time;
* a call that was denied or cancelled never executed; an approved call that completed
  executed exactly once, and no call ever executed twice;
* a call's result says whether it ran, may have run, or did not run.

No sleeps: the harness waits for points and for tasks to block, all bounded.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import FastMCP

from agents_mcp.errors import ClientError
from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse, ToolCall, Usage
from agents_mcp.store import LOCAL_OWNER, SQLStore
from agents_mcp.store.states import DID_NOT_RUN, STOPPED_BEFORE
from agents_mcp.threads.runtime import open_threads
from agents_mcp.threads.service import Threads
from tests.conftest import make_config

pytestmark = pytest.mark.anyio

ROLE: contextvars.ContextVar[str] = contextvars.ContextVar("role", default="")
BOUND = 20.0
"""Seconds any request, run or wait may take before the scenario fails."""
WAIT = 5.0
"""The wait_seconds every request passes (runs here take milliseconds)."""


class Model:
    """The scripted model: a message starting with "note" asks for a note; else "done"."""

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        last = request.messages[-1]
        if last.role == "user" and (last.content or "").startswith("note"):
            args = json.dumps({"title": last.content, "body": "b"})
            call = ToolCall(id="w1", name="notes__write_note", arguments=args)
            return LLMResponse(content=None, tool_calls=(call,), usage=Usage())
        return LLMResponse(content="done", usage=Usage())


def recording_server(executed: list[str]) -> FastMCP:
    mcp = FastMCP("notes")

    @mcp.tool
    def write_note(title: str, body: str) -> str:
        """Write a note."""
        executed.append(title)
        return f"saved {title}"

    return mcp


@dataclass
class World:
    """One thread in one runtime, and what the downstream server executed."""

    path: Path
    executed: list[str] = field(default_factory=list[str])
    tid: str = ""

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Threads]:
        config = make_config(
            self.path.parent,
            agents={
                "helper": {
                    "description": "d",
                    "model": "main",
                    "servers": ["notes"],
                    "require_approval": "always",
                    "on_cancel": "stop",
                }
            },
        )
        async with open_threads(
            config,
            db_path=self.path,
            llms={"main": Model()},
            transports={"notes": recording_server(self.executed)},
        ) as threads:
            yield threads


Request = Callable[[Threads, str], Awaitable[Any]]


async def message(t: Threads, tid: str) -> Any:
    return await t.chat(
        owner=LOCAL_OWNER, agent="helper", message="note 2", thread_id=tid, wait=WAIT
    )


async def approve(t: Threads, tid: str) -> Any:
    return await t.approve(owner=LOCAL_OWNER, thread_id=tid, call_id="w1", approve=True, wait=WAIT)


async def deny(t: Threads, tid: str) -> Any:
    return await t.approve(
        owner=LOCAL_OWNER, thread_id=tid, call_id="w1", approve=False, reason="no", wait=WAIT
    )


async def cancel(t: Threads, tid: str) -> Any:
    return await t.cancel(owner=LOCAL_OWNER, thread_id=tid)


async def get_stop(t: Threads, tid: str) -> Any:
    """get_thread of an on_cancel="stop" agent, whose client then gives up (as the
    second request it is cancelled once it waits): it must never stop the run."""
    return await t.get(owner=LOCAL_OWNER, thread_id=tid, wait=WAIT)


REQUESTS: dict[str, Request] = {
    "message": message,
    "approve": approve,
    "deny": deny,
    "cancel": cancel,
    "get_stop": get_stop,
    "client_cancel": approve,  # an approve_call whose client cancels it
}


async def start(world: World, state: str) -> None:
    """The starting state: ``paused``, a thread whose call w1 waits for approval; or
    ``idle``, the same thread once w1 ran and the turn completed (a new message then
    starts a run, whose call waits for approval in turn)."""
    async with world.open() as threads:
        first = await threads.chat(owner=LOCAL_OWNER, agent="helper", message="note 1", wait=WAIT)
        assert first.thread.status == "needs_approval"
        world.tid = first.thread.id
        if state == "idle":
            done = await approve(threads, world.tid)
            assert done.thread.status == "completed"


async def outcome(request: Request, threads: Threads, tid: str) -> str:
    try:
        with anyio.fail_after(BOUND):  # every request answers in time
            await request(threads, tid)
    except ClientError as exc:  # a clean refusal is a fine outcome of a race
        return f"refused: {exc}"
    return "ok"


async def trace_of(tmp_path: Path, state: str, kind: str) -> list[str]:
    """The points the first request (and the run it starts) passes, alone."""
    world = World(tmp_path / f"trace-{state}-{kind}.db")
    await start(world, state)
    seen: list[str] = []
    async with world.open() as threads:
        store = threads.store
        assert isinstance(store, SQLStore)

        async def note(point: str) -> None:
            if ROLE.get() == "first":
                seen.append(point)

        store.points.set("*", note)
        ROLE.set("first")
        await outcome(REQUESTS[kind], threads, world.tid)
        with anyio.fail_after(BOUND):
            await idle(threads)
        ROLE.set("")
    return seen


async def idle(threads: Threads) -> None:
    """Until no run is in flight here (bounded by the caller)."""
    while threads.runs.running_count():
        await anyio.wait_all_tasks_blocked()
        await anyio.lowlevel.checkpoint()


async def race(tmp_path: Path, state: str, first: str, second: str, at: int) -> str:
    world = World(tmp_path / f"race-{state}-{first}-{second}-{at}.db")
    await start(world, state)
    async with world.open() as threads:
        store = threads.store
        assert isinstance(store, SQLStore)
        reached, release = anyio.Event(), anyio.Event()
        count = 0

        async def pause(point: str) -> None:
            nonlocal count
            if ROLE.get() != "first" or reached.is_set():
                return
            count += 1
            if count == at + 1:
                reached.set()
                await release.wait()

        store.points.set("*", pause)
        results: dict[str, str] = {}

        async def run_first(scope: anyio.CancelScope) -> None:
            ROLE.set("first")
            with scope:
                results["first"] = await outcome(REQUESTS[first], threads, world.tid)
                return
            results["first"] = "cancelled by its client"

        async def run_second(scope: anyio.CancelScope) -> None:
            ROLE.set("second")
            with scope:
                results["second"] = await outcome(REQUESTS[second], threads, world.tid)
                return
            results["second"] = "cancelled by its client"

        with anyio.fail_after(BOUND * 3):
            async with anyio.create_task_group() as tg:
                first_scope, second_scope = anyio.CancelScope(), anyio.CancelScope()
                tg.start_soon(run_first, first_scope)
                with anyio.move_on_after(BOUND):
                    await reached.wait()
                assert reached.is_set() or "first" in results, "the first request never got there"
                tg.start_soon(run_second, second_scope)
                await anyio.wait_all_tasks_blocked()
                if second in ("client_cancel", "get_stop"):
                    second_scope.cancel()  # its client gives up while it waits
                if first == "client_cancel":
                    first_scope.cancel()  # its client gives up right at the point
                release.set()
            store.points.clear()
            await idle(threads)
        ended = await status(threads, world.tid)
        check(world, ended, await results_of(threads, world.tid))
        if not {first, second} & {"cancel", "client_cancel"}:  # nobody asked to stop it
            assert ended[0] != "cancelled", "a run was stopped though nobody cancelled it"
        before_restart = list(world.executed)
    # Restart on the same database: recovery must keep every promise too.
    async with world.open() as threads:
        with anyio.fail_after(BOUND):
            await idle(threads)
        check(world, await status(threads, world.tid), await results_of(threads, world.tid))
        assert world.executed[: len(before_restart)] == before_restart
    return f"{results.get('first')} | {results.get('second')}"


async def status(threads: Threads, tid: str) -> tuple[str, dict[str, str]]:
    thread = await threads.store.get_thread(tid, LOCAL_OWNER)
    approvals: dict[str, str] = {a.call_id: a.status for a in await threads.store.approvals(tid)}
    return thread.status, approvals


async def results_of(threads: Threads, tid: str) -> dict[str, str]:
    return {
        h.message.tool_call_id: f"{h.message.status}:{h.message.content}"
        for h in await threads.store.messages(tid)
        if h.message.role == "tool" and h.message.tool_call_id
    }


def check(world: World, state: tuple[str, dict[str, str]], results: dict[str, str]) -> None:
    status, approvals = state
    assert status != "running", "a thread is running without a live run"
    assert len(world.executed) == len(set(world.executed)), f"a call ran twice: {world.executed}"
    for call_id, decided in approvals.items():
        ran = world.executed.count("note 1" if call_id == "w1" else "note 2")
        if status == "needs_approval" and decided == "pending":
            assert ran == 0, f"{call_id} ran before anybody decided"
        result = results.get(call_id, "")
        if decided in ("denied", "cancelled"):
            assert ran == 0, f"{call_id} was {decided} but executed"
        if result.startswith("complete:"):
            assert ran == 1, f"{call_id} completed but executed {ran} times"
        if result.endswith((STOPPED_BEFORE, DID_NOT_RUN)):
            assert ran == 0, f"{call_id} says it did not run, but it executed"
        if decided == "approved" and not result:
            assert status == "needs_approval", f"approved {call_id} is stuck ({status})"


KINDS = list(REQUESTS)


@pytest.mark.parametrize("first", KINDS)
@pytest.mark.parametrize("state", ["paused", "idle"])
async def test_every_request_racing_every_other_at_every_point(
    tmp_path: Path, state: str, first: str
) -> None:
    points = await trace_of(tmp_path, state, first)
    assert points, "the first request passes no store point"
    seen: dict[str, str] = {}
    for second in KINDS:
        for at in range(len(points)):
            key = f"{second} at {points[at]}#{at}"
            seen[key] = await race(tmp_path, state, first, second, at)
    # Every pair was driven; print the outcomes so a reader sees what was exercised.
    print(f"\n{state}, {first} first: {len(seen)} interleavings")
    for key, result in seen.items():
        print(f"  {key}: {result}")
