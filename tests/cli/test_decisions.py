"""Threads that wait or run, from the terminal: a new message to a waiting thread,
``chat --json``, deciding twice, ``cancel``, and the hints for a thread that is not there.
Through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from inline_snapshot import snapshot

from agents_mcp.messages import LLMRequest
from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.testing.chat_server import FakeChatServer
from tests.cli.runner import THREAD, Ran, agents_mcp, helper_config, scrub
from tests.processes import write_config

pytestmark = pytest.mark.anyio


def executed(log: Path) -> list[str]:
    """The titles of the notes the downstream server wrote, in order."""
    if not log.exists():
        return []
    return [json.loads(line)["arguments"]["title"] for line in log.read_text().splitlines()]


async def test_a_message_to_a_waiting_thread_is_refused_with_the_call_never_dropped(
    tmp_path: Path,
) -> None:
    llm = ScriptedLLM(Call("notes__write_note", {"title": "x", "body": "y"}, id="w1"), "Saved.")
    llm.add("Got your second message.")
    fake = FakeChatServer(llm)
    async with fake.serve() as base_url:
        cfg = write_config(tmp_path / "agents.json", helper_config(base_url))
        common = ["--config", str(cfg), "--db", str(tmp_path / "threads.db")]
        first = await agents_mcp("chat", "helper", "save x", *common, input="", tmp_path=tmp_path)
        thread = THREAD.findall(first.err)[-1]
        # stdin is closed: the question about w1 gets no answer.
        closed = await agents_mcp(
            "chat", "helper", "and a second thing", "--thread", thread, *common, input="",
            tmp_path=tmp_path,
        )  # fmt: skip
        as_json = await agents_mcp(
            "chat", "helper", "and a second thing", "--thread", thread, "--json", *common,
            input="y\n", tmp_path=tmp_path,
        )  # fmt: skip
        shown = await agents_mcp("show", thread, "--json", *common, tmp_path=tmp_path)
        # Once decided, the same message goes through.
        decided = await agents_mcp("approve", thread, "w1", *common, tmp_path=tmp_path)
        again = await agents_mcp(
            "chat", "helper", "and a second thing", "--thread", thread, *common, input="",
            tmp_path=tmp_path,
        )  # fmt: skip
    assert (closed.code, closed.out) == (1, "")
    assert scrub(closed.err).splitlines()[-1] == snapshot(
        "agents-mcp: your message was not sent: thread th_xxxxxxxxxxxxxxxxxxxxxxxx waits for a decision on w1 (notes__write_note); decide with `agents-mcp approve th_xxxxxxxxxxxxxxxxxxxxxxxx w1 --config <tmp>/agents.json --db <tmp>/threads.db` (or --deny REASON), or drop the waiting calls with `agents-mcp cancel th_xxxxxxxxxxxxxxxxxxxxxxxx --config <tmp>/agents.json --db <tmp>/threads.db`, then send the message again"
    )
    assert (as_json.code, as_json.out) == (1, "")
    assert "approve?" not in as_json.err and "your message was not sent" in as_json.err
    messages = json.loads(shown.out)["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["save x"]
    assert (decided.code, decided.out) == (0, "Saved.\n")
    assert (again.code, again.out) == (0, "Got your second message.\n")


async def test_chat_json_never_asks_and_says_how_to_decide(tmp_path: Path) -> None:
    log = tmp_path / "executed.jsonl"
    llm = ScriptedLLM(Call("notes__write_note", {"title": "t", "body": "b"}))
    llm.add(Call("notes__write_note", {"title": "u", "body": "b"}))
    fake = FakeChatServer(llm)
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["mcpServers"]["notes"]["env"] = {"DOWNSTREAM_LOG": str(log)}
        cfg = write_config(tmp_path / "agents.json", data)
        common = ["--config", str(cfg), "--db", str(tmp_path / "threads.db")]
        # A "y" waits on stdin: --json must not read it.
        ran = await agents_mcp(
            "chat", "helper", "save t", "--json", *common, input="y\n", tmp_path=tmp_path
        )
        # One message per line: the next line is not an answer, and is refused, not lost.
        lines = await agents_mcp(
            "chat", "helper", "--json", *common, input="save u\ny\n", tmp_path=tmp_path
        )
    assert (lines.code, json.loads(lines.out)["status"]) == (1, "needs_approval")
    assert "agents-mcp: your message was not sent: thread" in lines.err
    assert len(llm.requests) == 2
    assert ran.code == 1
    assert "approve?" not in ran.err and executed(log) == []
    result = json.loads(ran.out)
    (call,) = result["pending_approvals"]
    assert result["status"] == "needs_approval"
    assert scrub(result["next"]) == snapshot(
        "Not asked (--json): each call waits for a decision. Run its command from commands (add --deny REASON to refuse), or `agents-mcp cancel th_xxxxxxxxxxxxxxxxxxxxxxxx --config <tmp>/agents.json --db <tmp>/threads.db` to drop them."
    )
    assert result["commands"] == [
        f"agents-mcp approve {result['thread_id']} {call['call_id']} {' '.join(common)}"
    ]


async def test_approving_a_decided_call_again_says_so_and_changes_nothing(
    tmp_path: Path,
) -> None:
    log = tmp_path / "executed.jsonl"
    fake = FakeChatServer(
        ScriptedLLM(Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"), "Saved t.")
    )
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["mcpServers"]["notes"]["env"] = {"DOWNSTREAM_LOG": str(log)}
        cfg = write_config(tmp_path / "agents.json", data)
        common = ["--config", str(cfg), "--db", str(tmp_path / "threads.db")]
        started = await agents_mcp("chat", "helper", "save t", *common, input="", tmp_path=tmp_path)
        thread = THREAD.findall(started.err)[-1]
        first = await agents_mcp("approve", thread, "w1", *common, tmp_path=tmp_path)
        second = await agents_mcp("approve", thread, "w1", *common, tmp_path=tmp_path)
        other = await agents_mcp(
            "approve", thread, "w1", "--deny", "changed my mind", *common, tmp_path=tmp_path
        )
    assert (first.code, first.out, "already" in first.err) == (0, "Saved t.\n", False)
    assert (second.code, second.out) == (0, "Saved t.\n")
    assert scrub(second.err) == snapshot(
        "agents-mcp: call w1 was already approved at 0000-00-00 00:00:00Z; this changes nothing. The thread's current result follows.\n"
    )
    assert (other.code, other.err) == (
        1,
        "agents-mcp: call 'w1' was already approved; a decision cannot be changed\n",
    )
    assert executed(log) == ["t"]


async def test_cancel_drops_waiting_calls_and_stops_a_run_in_another_process(
    tmp_path: Path,
) -> None:
    asked, never = anyio.Event(), anyio.Event()

    async def slow(request: LLMRequest) -> str:
        asked.set()
        await never.wait()
        return "too late"

    llm = ScriptedLLM(Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"), slow)
    fake = FakeChatServer(llm)
    async with fake.serve() as base_url:
        cfg = write_config(tmp_path / "agents.json", helper_config(base_url))
        common = ["--config", str(cfg), "--db", str(tmp_path / "threads.db")]
        waiting = await agents_mcp("chat", "helper", "save t", *common, input="", tmp_path=tmp_path)
        thread = THREAD.findall(waiting.err)[-1]
        dropped = await agents_mcp("cancel", thread, *common, tmp_path=tmp_path)
        nothing = await agents_mcp("cancel", thread, "--json", *common, tmp_path=tmp_path)
        shown = await agents_mcp("show", thread, *common, tmp_path=tmp_path)

        chatting: list[Ran] = []

        async def chat() -> None:
            chatting.append(
                await agents_mcp("chat", "helper", "think", *common, input="", tmp_path=tmp_path)
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(chat)
            with anyio.fail_after(60):
                await asked.wait()
            listed = await agents_mcp("threads", "--json", *common, tmp_path=tmp_path)
            running = json.loads(listed.out)["threads"][0]
            assert running["status"] == "running"
            stopped = await agents_mcp("cancel", running["thread_id"], *common, tmp_path=tmp_path)
        never.set()
    assert (dropped.code, dropped.out) == (0, "")
    assert scrub(dropped.err) == snapshot("""\
thread th_xxxxxxxxxxxxxxxxxxxxxxxx is cancelled: its waiting calls were dropped
  notes__write_note (call w1): did not run
""")
    assert nothing.code == 0 and json.loads(nothing.out)["status"] == "cancelled"
    assert (
        scrub(nothing.err) == "thread th_xxxxxxxxxxxxxxxxxxxxxxxx is cancelled: nothing to cancel\n"
    )
    assert shown.out.splitlines()[0].endswith("· cancelled")
    assert stopped.code == 0, stopped.err
    assert scrub(stopped.err).startswith(
        "thread th_xxxxxxxxxxxxxxxxxxxxxxxx is cancelled: its run stopped"
    )
    (chatted,) = chatting
    assert chatted.code == 1 and "the run cancelled" in chatted.err


async def test_hints_name_only_threads_and_agents_that_exist(tmp_path: Path) -> None:
    fake = FakeChatServer(ScriptedLLM("hello from other"))
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["agents"]["other"] = {"description": "Another agent", "model": "main"}
        both = write_config(tmp_path / "both.json", data)
        del data["agents"]["other"]
        one = write_config(tmp_path / "one.json", data)
        db = ["--db", str(tmp_path / "threads.db")]
        started = await agents_mcp(
            "chat", "other", "hi", "--config", str(both), *db, tmp_path=tmp_path
        )
        thread = THREAD.findall(started.err)[-1]
        bogus = await agents_mcp(
            "chat", "helper", "hi", "--thread", "th_bogus", "--config", str(one), *db,
            tmp_path=tmp_path,
        )  # fmt: skip
        configured = await agents_mcp(
            "chat", "helper", "hi", "--thread", thread, "--config", str(both), *db,
            tmp_path=tmp_path,
        )  # fmt: skip
        unconfigured = await agents_mcp(
            "chat", "helper", "hi", "--thread", thread, "--config", str(one), *db,
            tmp_path=tmp_path,
        )  # fmt: skip
    assert (bogus.code, bogus.err) == (2, "agents-mcp: thread 'th_bogus' not found\n")
    assert configured.code == 2
    assert f"run `agents-mcp chat other --thread {thread} --config" in configured.err
    assert unconfigured.code == 2
    assert scrub(unconfigured.err) == snapshot(
        "agents-mcp: thread 'th_xxxxxxxxxxxxxxxxxxxxxxxx' belongs to agent 'other', not 'helper', and 'other' is not an agent of this config; use the config that defines it, or start a new thread with `agents-mcp chat helper MESSAGE --config <tmp>/one.json --db <tmp>/threads.db`\n"
    )
    assert "chat other" not in unconfigured.err
