"""``agents-mcp pending``, ``approve`` and ``chat --continue``, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inline_snapshot import snapshot

from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.testing.chat_server import FakeChatServer
from tests.cli.runner import THREAD, agents_mcp, all_of, helper_config, scrub
from tests.processes import write_config

pytestmark = pytest.mark.anyio


async def test_pending_lists_the_waiting_calls_and_approve_decides_them(tmp_path: Path) -> None:
    log = tmp_path / "executed.jsonl"
    llm = ScriptedLLM(
        [
            Call("notes__write_note", {"title": "a", "body": "first"}, id="w1"),
            Call("notes__write_note", {"title": "b", "body": "second"}, id="w2"),
        ],
        "Saved a, not b.",
    )
    fake = FakeChatServer(llm)
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["mcpServers"]["notes"]["env"] = {"DOWNSTREAM_LOG": str(log)}
        cfg = write_config(tmp_path / "agents.json", data)
        common = ["--config", str(cfg), "--db", str(tmp_path / "threads.db")]
        # No answer on stdin: the run stays waiting; --json prints the result object.
        started = await agents_mcp(
            "chat", "helper", "save two notes", "--json", *common, input="", tmp_path=tmp_path
        )
        thread = THREAD.findall(started.err)[-1]
        inbox = await all_of(
            {
                "text": agents_mcp("pending", *common, tmp_path=tmp_path),
                "json": agents_mcp("pending", "--json", *common, tmp_path=tmp_path),
            }
        )
        first = await agents_mcp("approve", thread, "w1", *common, tmp_path=tmp_path)
        second = await agents_mcp(
            "approve", thread, "w2", "--deny", "not b", *common, tmp_path=tmp_path
        )
        empty = await agents_mcp("pending", *common, tmp_path=tmp_path)
    result = json.loads(started.out)
    assert (started.code, result["status"], result["thread_id"]) == (1, "needs_approval", thread)
    assert [(p["call_id"], p["arguments"]) for p in result["pending_approvals"]] == [
        ("w1", {"title": "a", "body": "first"}),
        ("w2", {"title": "b", "body": "second"}),
    ]
    assert inbox["text"].code == 0
    assert scrub(inbox["text"].out) == snapshot("""\
th_xxxxxxxxxxxxxxxxxxxxxxxx · agent helper · save two notes
  notes__write_note {"title": "a", "body": "first"}
    `agents-mcp approve th_xxxxxxxxxxxxxxxxxxxxxxxx w1 --config <tmp>/agents.json --db <tmp>/threads.db` (or --deny REASON)
  notes__write_note {"title": "b", "body": "second"}
    `agents-mcp approve th_xxxxxxxxxxxxxxxxxxxxxxxx w2 --config <tmp>/agents.json --db <tmp>/threads.db` (or --deny REASON)
""")
    (waiting,) = json.loads(inbox["json"].out)["threads"]
    assert waiting["thread_id"] == thread
    assert [p["call_id"] for p in waiting["pending_approvals"]] == ["w1", "w2"]
    # One decision of two: the run waits for the other, and says how to give it.
    assert (first.code, first.out) == (1, "")
    assert scrub(first.err) == snapshot("""\
agents-mcp: the run waits for approval:
  notes__write_note {"title": "b", "body": "second"}
    `agents-mcp approve th_xxxxxxxxxxxxxxxxxxxxxxxx w2 --config <tmp>/agents.json --db <tmp>/threads.db` (or --deny REASON)
""")
    assert (second.code, second.out) == (0, "Saved a, not b.\n")
    assert second.err == "→ calling notes__write_note\n"  # w1 runs; w2 is refused
    assert [json.loads(line)["arguments"]["title"] for line in log.read_text().splitlines()] == [
        "a"
    ]
    refusal = [m for m in fake.requests[-1]["messages"] if m["role"] == "tool"][-1]
    assert "not b" in refusal["content"]
    assert (empty.code, empty.out, empty.err) == (
        0,
        "",
        "Nothing waits for approval or for an answer.\n",
    )


async def test_chat_continue_picks_up_the_agents_last_thread(tmp_path: Path) -> None:
    fake = FakeChatServer(ScriptedLLM("one", "two"))
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["agents"]["other"] = {"description": "Unused", "model": "main"}
        cfg = write_config(tmp_path / "agents.json", data)
        common = ["--config", str(cfg), "--db", str(tmp_path / "threads.db")]
        first = await agents_mcp("chat", "helper", "hello", *common, tmp_path=tmp_path)
        again = await agents_mcp("chat", "helper", "-c", "and then?", *common, tmp_path=tmp_path)
        nothing = await agents_mcp("chat", "other", "--continue", "hi", *common, tmp_path=tmp_path)
        both = await agents_mcp(
            "chat", "helper", "-c", "--thread", "th_x", "hi", *common, tmp_path=tmp_path
        )
    assert (first.code, first.out, again.code, again.out) == (0, "one\n", 0, "two\n")
    assert THREAD.findall(first.err) == THREAD.findall(again.err)
    assert [m["content"] for m in fake.requests[-1]["messages"]] == [
        "hello",
        "one",
        "and then?",
    ]
    assert nothing.code == 2 and scrub(nothing.err) == snapshot(
        "agents-mcp: agent 'other' has no thread to continue; start one with `agents-mcp chat other MESSAGE --config <tmp>/agents.json --db <tmp>/threads.db`\n"
    )
    assert (both.code, both.err) == (2, "agents-mcp: give --thread or --continue, not both\n")
