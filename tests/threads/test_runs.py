"""Long runs in real clients: progress, deadlines, cancellation, restarts, size limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from inline_snapshot import snapshot
from mcp_types import ResourceLink

from agents_mcp.messages import LLMRequest, LLMResponse
from agents_mcp.server.app import create_server
from agents_mcp.store.states import STOPPED_BEFORE
from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.threads.service import Threads
from agents_mcp.toolsets import llm_tool_names
from tests.conftest import call, make_config
from tests.downstream_server import make_server
from tests.reading import cut_messages, read_parts, read_text

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]


def agents(**extra: Any) -> dict[str, Any]:
    return {
        "helper": {
            "description": "d",
            "model": "main",
            "servers": ["notes"],
            "require_approval": "never",
            **extra,
        }
    }


@asynccontextmanager
async def connect(
    tmp_path: Path, llm: ScriptedLLM, *, mode: str = "legacy", server: Any = None, **extra: Any
) -> AsyncIterator[Client[Any]]:
    cfg = make_config(tmp_path, agents=agents(**extra), server=server)
    mcp = create_server(
        cfg,
        db_path=tmp_path / "threads.db",
        llms={"main": llm},
        transports={"notes": make_server("notes")},
    )
    async with Client(mcp, mode=mode) as client:
        yield client


def blocking(
    answer: str, started: anyio.Event, release: anyio.Event
) -> Callable[[LLMRequest], Awaitable[str]]:
    """A model step that signals it started and answers once the test releases it."""

    async def step(request: LLMRequest) -> str:
        started.set()
        await release.wait()
        return answer

    return step


@pytest.mark.parametrize("mode", MODES)
async def test_progress_messages_arrive_in_order(tmp_path: Path, mode: str) -> None:
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    llm = ScriptedLLM(Call("notes__echo", {"text": "a"}), "done")
    every_step = {"progress_interval": 0}
    async with connect(tmp_path, llm, mode=mode, server=every_step) as client:
        with anyio.fail_after(10):
            await client.call_tool(
                "chat_with_agent",
                {"agent": "helper", "message": "go"},
                progress_handler=on_progress,
            )
    assert seen == snapshot(["thinking (turn 1/12)", "calling notes__echo", "thinking (turn 2/12)"])


@pytest.mark.parametrize("mode", MODES)
async def test_progress_is_rate_limited_and_never_trails_the_result(
    tmp_path: Path, mode: str
) -> None:
    sent: list[tuple[float, str]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        sent.append((progress, message or ""))

    # Four fast steps inside the first (long) interval: the statuses still pending when
    # the result is ready are dropped, not sent after it.
    llm = ScriptedLLM(Call("notes__echo", {"text": "a"}), Call("notes__echo", {"text": "b"}), "ok")
    async with connect(tmp_path, llm, mode=mode, server={"progress_interval": 60}) as client:
        with anyio.fail_after(10):
            result = await client.call_tool(
                "chat_with_agent",
                {"agent": "helper", "message": "go"},
                progress_handler=on_progress,
            )
    assert result.structured_content is not None
    assert result.structured_content["reply"] == "ok"
    assert sent == []


@pytest.mark.parametrize("mode", MODES)
async def test_rate_limited_progress_still_reports_every_slow_step(
    tmp_path: Path, mode: str
) -> None:
    sent: list[tuple[float, str]] = []
    changed = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        nonlocal changed
        sent.append((progress, message or ""))
        changed.set()
        changed = anyio.Event()

    async def shown(message: str) -> None:
        while not sent or sent[-1][1] != message:
            await changed.wait()

    async def first(request: LLMRequest) -> LLMResponse:
        await shown("thinking (turn 1/12)")
        return LLMResponse(content=None, tool_calls=(Call("notes__echo").to_tool_call(),))

    async def second(request: LLMRequest) -> str:
        # Posted a moment after "calling notes__echo", inside the interval: it is sent
        # when the interval has passed, while this step lasts.
        await shown("thinking (turn 2/12)")
        return "done"

    llm = ScriptedLLM(first, second)
    async with connect(tmp_path, llm, mode=mode, server={"progress_interval": 0.05}) as client:
        with anyio.fail_after(10):
            await client.call_tool(
                "chat_with_agent",
                {"agent": "helper", "message": "go"},
                progress_handler=on_progress,
            )
    counts, messages = [p for p, _ in sent], [m for _, m in sent]
    assert counts == sorted(set(counts))  # increasing, as the specification requires
    # Not heartbeats, which a loaded machine may send before the first status (storing the
    # thread took longer than an interval) and after the last one (ending the run did).
    statuses = [m for m in messages if "still working, " not in m]
    assert statuses[0] == "thinking (turn 1/12)"
    assert statuses[-1] == "thinking (turn 2/12)"
    assert set(statuses) <= {"thinking (turn 1/12)", "calling notes__echo", "thinking (turn 2/12)"}


@pytest.mark.parametrize("mode", MODES)
async def test_slow_run_returns_running_then_get_thread_has_the_reply(
    tmp_path: Path, mode: str
) -> None:
    started, release = anyio.Event(), anyio.Event()
    llm = ScriptedLLM(blocking("finally", started, release))
    async with connect(tmp_path, llm, mode=mode) as client:
        first = await call(
            client, "chat_with_agent", agent="helper", message="slow", wait_seconds=0
        )
        tid = first["thread_id"]
        with anyio.fail_after(5):
            await started.wait()
        busy = await call(client, "get_thread", thread_id=tid)
        with pytest.raises(ToolError, match="is running; call get_thread"):
            await client.call_tool(
                "chat_with_agent", {"agent": "helper", "message": "more", "thread_id": tid}
            )
        release.set()
        done = await call(client, "get_thread", thread_id=tid, wait_seconds=10)
    assert (first["status"], first["reply"]) == ("running", None)
    assert busy["status"] == "running"
    assert (done["status"], done["reply"]) == ("completed", "finally")


@pytest.mark.parametrize("mode", MODES)
async def test_client_cancel_detaches_by_default(tmp_path: Path, mode: str) -> None:
    started, release = anyio.Event(), anyio.Event()
    llm = ScriptedLLM(Call("notes__echo", {"text": "kept"}), blocking("finished", started, release))
    async with connect(tmp_path, llm, mode=mode) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "chat_with_agent", {"agent": "helper", "message": "x"})
            with anyio.fail_after(5):
                await started.wait()
            tg.cancel_scope.cancel()
        listed = await call(client, "list_threads")
        tid = listed["threads"][0]["thread_id"]
        release.set()
        done = await call(client, "get_thread", thread_id=tid, wait_seconds=10)
    assert (done["status"], done["reply"]) == ("completed", "finished")
    assert done["usage"]["tool_calls"] == 1


@pytest.mark.parametrize("mode", MODES)
async def test_client_cancel_with_stop_ends_the_run_and_keeps_steps(
    tmp_path: Path, mode: str
) -> None:
    started, release = anyio.Event(), anyio.Event()
    llm = ScriptedLLM(
        Call("notes__echo", {"text": "kept"}), blocking("never", started, release), "after"
    )
    async with connect(tmp_path, llm, mode=mode, on_cancel="stop") as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "chat_with_agent", {"agent": "helper", "message": "x"})
            with anyio.fail_after(5):
                await started.wait()
            tg.cancel_scope.cancel()
        listed = await call(client, "list_threads")
        tid = listed["threads"][0]["thread_id"]
        stopped = await call(client, "get_thread", thread_id=tid, wait_seconds=5)
        page = await call(client, "get_thread", thread_id=tid, include_messages=True)
        again = await call(
            client, "chat_with_agent", agent="helper", message="go on", thread_id=tid
        )
    assert stopped["status"] == "cancelled"
    assert [(m["role"], m["content"]) for m in page["messages"]] == snapshot(
        [
            ("user", "x"),
            ("assistant", None),
            ("tool", "notes echo: kept"),
            ("event", "cancelled: the run was stopped (cancel_run)"),
        ]
    )
    assert again["reply"] == "after"


async def test_cancel_run_stops_a_running_thread(tmp_path: Path) -> None:
    started, release = anyio.Event(), anyio.Event()
    llm = ScriptedLLM(blocking("never", started, release), "fresh start")
    async with connect(tmp_path, llm) as client:
        first = await call(client, "chat_with_agent", agent="helper", message="x", wait_seconds=0)
        with anyio.fail_after(5):
            await started.wait()
        cancelled = await call(client, "cancel_run", thread_id=first["thread_id"])
        again = await call(
            client, "chat_with_agent", agent="helper", message="y", thread_id=first["thread_id"]
        )
        with pytest.raises(ToolError, match="not found"):
            await client.call_tool("cancel_run", {"thread_id": "th_nobody"})
    assert cancelled["status"] == "cancelled"
    assert again["reply"] == "fresh start"


async def test_cancel_run_drops_undecided_approvals(tmp_path: Path) -> None:
    llm = ScriptedLLM(Call("notes__write_note", {"title": "t", "body": "b"}, id="w"), "ok")
    async with connect(tmp_path, llm, require_approval="always") as client:
        paused = await call(client, "chat_with_agent", agent="helper", message="note")
        cancelled = await call(client, "cancel_run", thread_id=paused["thread_id"])
        again = await call(
            client, "chat_with_agent", agent="helper", message="n", thread_id=paused["thread_id"]
        )
    assert (paused["status"], cancelled["status"]) == ("needs_approval", "cancelled")
    assert cancelled["pending_approvals"] == []
    tool_results = [m.content for m in llm.requests[1].messages if m.role == "tool"]
    assert tool_results == [STOPPED_BEFORE]
    assert again["status"] == "completed"


async def test_restart_during_a_run_marks_it_interrupted(tmp_path: Path) -> None:
    started, release = anyio.Event(), anyio.Event()
    llm = ScriptedLLM(
        Call("notes__echo", {"text": "a"}), blocking("lost", started, release), "back"
    )
    async with connect(tmp_path, llm) as client:
        first = await call(client, "chat_with_agent", agent="helper", message="x", wait_seconds=0)
        with anyio.fail_after(5):
            await started.wait()
    async with connect(tmp_path, llm) as client:
        after = await call(client, "get_thread", thread_id=first["thread_id"])
        again = await call(
            client, "chat_with_agent", agent="helper", message="y", thread_id=first["thread_id"]
        )
    assert after["status"] == "failed"
    assert after["error"]["type"] == "interrupted"
    assert again["reply"] == "back"
    assert [m.role for m in llm.requests[2].messages] == ["user", "assistant", "tool", "user"]


@pytest.mark.parametrize("mode", MODES)
async def test_huge_reply_stays_under_budget_with_a_working_resource(
    tmp_path: Path, mode: str
) -> None:
    reply = "word " * 40_000  # 200 000 characters
    llm = ScriptedLLM(reply)
    async with connect(tmp_path, llm, mode=mode) as client:
        with anyio.fail_after(10):
            result = await client.call_tool(
                "chat_with_agent", {"agent": "helper", "message": "all"}
            )
        payload = result.structured_content
        assert payload is not None
        links = [c for c in result.content if isinstance(c, ResourceLink)]
        assert [str(link.uri) for link in links] == [f"agents-mcp://threads/{payload['thread_id']}"]
        newest = await read_text(client, str(links[0].uri))
        whole, _ = await read_parts(client, cut_messages(newest)[1])
    assert len(payload["reply"]) < 21_000
    assert "[reply truncated: 20000 of 200000 characters shown" in payload["reply"]
    assert result.meta is not None and result.meta["agents-mcp/reply_chars"] == 200_000
    assert whole == f"## Assistant\n\n{reply}"


async def test_large_tool_result_is_cut_for_the_model_and_kept_in_the_transcript(
    tmp_path: Path,
) -> None:
    llm = ScriptedLLM(Call("notes__big", {"size": 1_000_000}), "seen")
    async with connect(tmp_path, llm) as client:
        payload = await call(client, "chat_with_agent", agent="helper", message="big")
        newest = await read_text(client, f"agents-mcp://threads/{payload['thread_id']}")
        whole, _ = await read_parts(client, cut_messages(newest)[2])
    shown = next(m.content or "" for m in llm.requests[1].messages if m.role == "tool")
    assert len(shown) < 50_200
    assert shown.endswith(
        "[truncated: 50000 of 1000000 characters shown; the full result is kept in the thread transcript]"
    )
    assert "0123456789" * 100_000 in whole


async def test_transcript_pages_newest_last(tmp_path: Path) -> None:
    llm = ScriptedLLM("a1", "a2", "a3")
    async with connect(tmp_path, llm) as client:
        first = await call(client, "chat_with_agent", agent="helper", message="m1")
        tid = first["thread_id"]
        for m in ("m2", "m3"):
            await call(client, "chat_with_agent", agent="helper", message=m, thread_id=tid)
        last = await call(
            client, "get_thread", thread_id=tid, include_messages=True, messages_limit=4
        )
        earlier = await call(
            client,
            "get_thread",
            thread_id=tid,
            include_messages=True,
            messages_limit=4,
            messages_before=last["messages_before"],
        )
    assert [m["content"] for m in last["messages"]] == ["m2", "a2", "m3", "a3"]
    assert [m["content"] for m in earlier["messages"]] == ["m1", "a1"]
    assert earlier["messages_before"] is None


async def test_other_owners_cannot_read_the_transcript_resource(tmp_path: Path) -> None:
    async with connect(tmp_path, ScriptedLLM()) as client:
        with pytest.raises(Exception, match="not found"):
            await client.read_resource("agents-mcp://threads/th_missing")


def test_llm_tool_names_are_valid_unique_and_stable() -> None:
    long_server = "s" * 40
    pairs = [
        ("fs", "read_file"),
        ("fs", "read.file"),
        ("fs", "read file"),
        (long_server, "a_tool_with_a_rather_long_name"),
        ("web", "fetch"),
    ]
    names = llm_tool_names(pairs)
    assert names == snapshot(
        {
            ("fs", "read_file"): "fs__read_file",
            ("fs", "read.file"): "fs__read_file_a70c27",
            ("fs", "read file"): "fs__read_file_fe5680",
            (
                "ssssssssssssssssssssssssssssssssssssssss",
                "a_tool_with_a_rather_long_name",
            ): "ssssssssssssssssssssssssssssssssssssssss__a_tool_with_a_r_2607b5",
            ("web", "fetch"): "web__fetch",
        }
    )
    assert all(len(n) <= 64 for n in names.values())
    assert len(set(names.values())) == len(names)


async def test_a_thread_left_running_by_a_gone_process_is_settled_on_sight(tmp_path: Path) -> None:
    """An interrupted `agents-mcp chat` leaves its thread running; the live server settles
    it when asked instead of answering "running" forever."""
    from agents_mcp.store import Claim, open_store

    llm = ScriptedLLM("fresh start")
    async with connect(tmp_path, llm) as client:
        other = await open_store(tmp_path / "threads.db")
        orphan = await other.create_thread(
            agent="helper", owner="local", first_message="hi", claim=Claim.new(other.runner)
        )
        await other.close()  # that process is gone; its lease with it
        seen = await call(client, "get_thread", thread_id=orphan.id)
        again = await call(
            client, "chat_with_agent", agent="helper", message="retry", thread_id=orphan.id
        )
    assert (seen["status"], seen["error"]["type"]) == ("failed", "interrupted")
    assert again["reply"] == "fresh start"


async def test_kept_transcripts_notice_what_another_process_wrote(tmp_path: Path) -> None:
    """The server keeps a thread's transcript between turns; `agents-mcp chat` in another
    process may continue the same thread meanwhile, and the next turn must see it all."""
    from agents_mcp.messages import Message
    from agents_mcp.store import Claim, open_store

    llm = ScriptedLLM("one", "three", "four")
    async with connect(tmp_path, llm) as client:
        first = await call(client, "chat_with_agent", agent="helper", message="m1")
        tid = first["thread_id"]
        other = await open_store(tmp_path / "threads.db")
        claim = Claim.new(other.runner)
        await other.start_turn(tid, "m2", claim=claim)
        await other.append(tid, claim, Message(role="assistant", content="two"), complete=True)
        await call(client, "chat_with_agent", agent="helper", message="m3", thread_id=tid)
        # A turn the other process cancels before the model answers: rows change in place
        # as well as at the end.
        claim = Claim.new(other.runner)
        await other.start_turn(tid, "m3b", claim=claim)
        await other.settle(tid, claim=claim.token, cancel=True)
        await other.close()
        await call(client, "chat_with_agent", agent="helper", message="m4", thread_id=tid)
    assert [m.content for m in llm.requests[1].messages] == ["m1", "one", "m2", "two", "m3"]
    assert [m.content for m in llm.requests[2].messages] == [
        "m1",
        "one",
        "m2",
        "two",
        "m3",
        "three",
        "m3b",
        "m4",
    ]


@asynccontextmanager
async def in_process(tmp_path: Path, llm: ScriptedLLM) -> AsyncIterator[Threads]:
    """The helper agents' threads, without an MCP hop in front of them."""
    from agents_mcp.threads.runtime import open_threads

    async with open_threads(
        make_config(tmp_path, agents=agents()),
        db_path=tmp_path / "threads.db",
        llms={"main": llm},
        transports={"notes": make_server("notes")},
    ) as threads:
        yield threads


async def test_a_result_from_the_kept_transcript_is_the_stored_turns(tmp_path: Path) -> None:
    """A chat's result is built from the run's own copy of the turn while the thread is
    as that copy knows it; once another process changed it, from the database again."""
    from agents_mcp.engine.summary import summarize
    from agents_mcp.messages import Message
    from agents_mcp.store import LOCAL_OWNER, Claim, open_store

    llm = ScriptedLLM(Call("notes__echo", {"text": "a"}), "one")
    async with in_process(tmp_path, llm) as threads:
        done = await threads.chat(owner=LOCAL_OWNER, agent="helper", message="m1")
        tid = done.thread.id
        other = await open_store(tmp_path / "threads.db")
        try:
            stored = await summarize(other, *await other.thread_turn(tid, LOCAL_OWNER))
            assert done == stored
            assert (done.reply, done.tool_calls, done.llm_requests) == ("one", 1, 2)
            claim = Claim.new(other.runner)
            await other.start_turn(tid, "m2", claim=claim)
            await other.append(tid, claim, Message(role="assistant", content="two"), complete=True)
        finally:
            await other.close()
        again = await threads.get(owner=LOCAL_OWNER, thread_id=tid)
    assert (again.reply, again.tool_calls, again.llm_requests) == ("two", 0, 1)


async def test_cancel_in_the_same_tick_as_the_message_that_starts_the_run(
    tmp_path: Path,
) -> None:
    """cancel_run handled before the run's task has taken its first step (its first read
    waits until the stop is recorded): the run still records that it was stopped, the
    cancel answers at once, and the thread takes the next message (it used to hang 30 s
    and stay "running" until a restart)."""
    from agents_mcp.store import LOCAL_OWNER

    llm = ScriptedLLM("first", "second")
    async with in_process(tmp_path, llm) as threads:
        done = await threads.chat(owner=LOCAL_OWNER, agent="helper", message="m1")
        tid = done.thread.id
        answers: dict[str, Any] = {}

        async def message() -> None:
            answers["chat"] = await threads.chat(
                owner=LOCAL_OWNER, agent="helper", message="m2", thread_id=tid, wait=5
            )

        async def cancel() -> None:
            answers["cancel"] = await threads.cancel(owner=LOCAL_OWNER, thread_id=tid)

        stop_recorded = anyio.Event()

        async def recorded(point: str) -> None:
            stop_recorded.set()

        async def first_step(point: str) -> None:
            await stop_recorded.wait()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def turn_started(point: str) -> None:
                    # The message's write committed and its run is about to start: cancel now.
                    threads.store.points.clear(point)
                    tg.start_soon(cancel)

                threads.store.points.set("after:start_turn", turn_started)
                threads.store.points.set("before:transcript", first_step)
                threads.store.points.set("after:request_stop", recorded)
                tg.start_soon(message)
        again = await threads.chat(owner=LOCAL_OWNER, agent="helper", message="m3", thread_id=tid)
    assert answers["cancel"].thread.status == "cancelled"
    assert answers["chat"].thread.status == "cancelled"
    assert again.reply == "second"  # the cancelled turn never reached the model


@pytest.mark.parametrize("mode", MODES)
async def test_a_cancelled_get_thread_never_stops_the_run(tmp_path: Path, mode: str) -> None:
    """get_thread is read-only, also for an on_cancel = "stop" agent."""
    started, release = anyio.Event(), anyio.Event()
    llm = ScriptedLLM(blocking("finished", started, release))
    async with connect(tmp_path, llm, mode=mode, on_cancel="stop") as client:
        first = await call(client, "chat_with_agent", agent="helper", message="x", wait_seconds=0)
        with anyio.fail_after(5):
            await started.wait()
        async with anyio.create_task_group() as tg:
            args = {"thread_id": first["thread_id"], "wait_seconds": 30}
            tg.start_soon(client.call_tool, "get_thread", args)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()  # the client gives up waiting
        release.set()
        done = await call(client, "get_thread", thread_id=first["thread_id"], wait_seconds=10)
    assert (done["status"], done["reply"]) == ("completed", "finished")


async def test_a_fresh_claim_is_never_taken_for_an_orphan(tmp_path: Path, pg_cluster: str) -> None:
    """On PostgreSQL, the commit that claims a thread and the launch of its run are awaits
    apart; a sweep (or another request) looking in between must not settle the brand-new
    thread as the orphan of a dead run."""
    from agents_mcp.store import LOCAL_OWNER
    from agents_mcp.threads.runtime import open_threads
    from tests.postgres import fresh_database

    class Slow:
        async def complete(self, request: LLMRequest, *, on_text: Any = None) -> LLMResponse:
            await anyio.lowlevel.checkpoint()
            return LLMResponse(content="done")

    config = make_config(
        tmp_path, agents={"helper": {"description": "d", "model": "main"}}, servers={}
    )
    db = await fresh_database(pg_cluster)
    statuses: list[str] = []
    async with open_threads(config, db_path=db, llms={"main": Slow()}) as threads:
        finished = anyio.Event()

        async def sweeper() -> None:  # what the background sweep does, as often as it can
            while not finished.is_set():
                await threads.recover()

        async def one(i: int) -> None:
            s = await threads.chat(owner=LOCAL_OWNER, agent="helper", message=f"hi {i}", wait=10)
            statuses.append(s.thread.status)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sweeper)
                for batch in range(30):
                    async with anyio.create_task_group() as chats:
                        for i in range(4):
                            chats.start_soon(one, batch * 4 + i)
                finished.set()
    assert statuses == ["completed"] * 120
