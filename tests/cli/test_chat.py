"""``agents-mcp chat``, ``threads`` and ``show``, through the real entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import pytest
from inline_snapshot import snapshot

from agents_mcp.messages import LLMRequest
from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.testing.chat_server import FakeChatServer, Fault
from tests.cli.runner import Terminal, agents_mcp, all_of, helper_config, scrub
from tests.processes import write_config

pytestmark = pytest.mark.anyio


async def test_chat_streams_asks_for_approval_and_shares_the_thread_database(
    tmp_path: Path,
) -> None:
    log, db = tmp_path / "executed.jsonl", tmp_path / "threads.db"
    llm = ScriptedLLM(
        Call("notes__echo", {"text": "hi"}, id="e1"),
        Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"),
        "Echoed and saved.",
    )
    fake = FakeChatServer(llm)
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["mcpServers"]["notes"]["env"] = {"DOWNSTREAM_LOG": str(log)}
        cfg = write_config(tmp_path / "agents.json", data)
        ran = await agents_mcp(
            "chat", "helper", "Echo hi, then save a note", "--config", str(cfg), "--db", str(db),
            input="y\n", tmp_path=tmp_path,
        )  # fmt: skip
    assert (ran.code, ran.out) == (0, "Echoed and saved.\n")
    # stream = "auto": a person reads the answer as it comes, so it was asked as a stream.
    assert [r["stream"] for r in fake.requests] == [True, True, True]
    assert scrub(ran.err) == snapshot(
        """\
→ calling notes__echo
? notes__write_note needs your approval to run with:
    {
      "title": "t",
      "body": "b"
    }
  approve? [y]es, [n]o (or: n <reason>), [a]lways for this tool in this thread: y
→ calling notes__write_note
thread: th_xxxxxxxxxxxxxxxxxxxxxxxx (continue with `agents-mcp chat helper --thread th_xxxxxxxxxxxxxxxxxxxxxxxx --config <tmp>/agents.json --db <tmp>/threads.db`)
"""
    )
    executed = [json.loads(line) for line in log.read_text().splitlines()]
    assert executed == [
        {"server": "notes", "tool": "write_note", "arguments": {"title": "t", "body": "b"}}
    ]
    thread_id = re.findall(r"th_[A-Za-z0-9_-]{24}", ran.err)[0]

    runs = await all_of(
        {
            "threads": agents_mcp("threads", "--db", str(db), tmp_path=tmp_path),
            "show": agents_mcp("show", thread_id, "--db", str(db), tmp_path=tmp_path),
            "json": agents_mcp("show", thread_id, "--db", str(db), "--json", tmp_path=tmp_path),
        }
    )
    listed, shown, as_json = runs["threads"], runs["show"], runs["json"]
    assert scrub(listed.out) == snapshot(
        """\
THREAD                       AGENT   STATUS     UPDATED               TITLE
th_xxxxxxxxxxxxxxxxxxxxxxxx  helper  completed  0000-00-00 00:00:00Z  Echo hi, then save a note
"""
    )
    assert scrub(shown.out) == snapshot(
        """\
thread th_xxxxxxxxxxxxxxxxxxxxxxxx · agent helper · completed
started 0000-00-00 00:00:00Z · updated 0000-00-00 00:00:00Z

you:
  Echo hi, then save a note

helper:
  → notes__echo {"text": "hi"}
    ← notes echo: hi

helper:
  → notes__write_note {"title": "t", "body": "b"}
    [approved]
    ← saved note 't' (1 chars)

helper:
  Echoed and saved.

usage: 30 input + 15 output tokens · 3 model request(s) · 2 tool call(s)
"""
    )
    data = json.loads(as_json.out)
    assert [(m["role"], m["status"]) for m in data["messages"]] == snapshot(
        [
            ("user", "complete"),
            ("assistant", "complete"),
            ("tool", "complete"),
            ("assistant", "complete"),
            ("tool", "complete"),
            ("assistant", "complete"),
        ]
    )
    assert [(a["call_id"], a["status"], a["arguments"]) for a in data["approvals"]] == [
        ("w1", "approved", {"title": "t", "body": "b"})
    ]


async def test_interactive_chat_an_undecided_call_and_continuing_the_thread(
    tmp_path: Path,
) -> None:
    llm = ScriptedLLM(
        "one",
        Call("notes__write_note", {"title": "x", "body": "y"}, id="w1"),
        "Not saved, as you wish.",
        "three",
    )
    fake = FakeChatServer(llm)
    async with fake.serve() as base_url:
        data = helper_config(base_url, personalities={"pirate": "Talk like a pirate."})
        cfg = write_config(tmp_path / "agents.json", data)
        common = ["--config", str(cfg), "--db", str(tmp_path / "threads.db")]
        # One message per line; input ends while the approval question is open.
        first = await agents_mcp(
            "chat", "helper", "--personality", "pirate", *common, input="first\n\nsave x\n",
            tmp_path=tmp_path,
        )  # fmt: skip
        thread_id = re.findall(r"th_[A-Za-z0-9_-]{24}", first.err)[0]
        waiting = await agents_mcp(
            "threads", "--status", "needs_approval", *common, tmp_path=tmp_path
        )
        # Continuing asks about the pending call first, then sends the new message.
        again = await agents_mcp(
            "chat", "helper", "third", "--thread", thread_id, *common, input="n not now\n",
            tmp_path=tmp_path,
        )  # fmt: skip
    assert (first.code, first.out) == (1, "one\n")
    assert scrub(first.err).splitlines()[-2:] == snapshot(
        [
            "    `agents-mcp approve th_xxxxxxxxxxxxxxxxxxxxxxxx w1 --config <tmp>/agents.json --db <tmp>/threads.db` (or --deny REASON)",
            "thread: th_xxxxxxxxxxxxxxxxxxxxxxxx (continue with `agents-mcp chat helper --thread th_xxxxxxxxxxxxxxxxxxxxxxxx --config <tmp>/agents.json --db <tmp>/threads.db`)",
        ]
    )
    assert scrub(waiting.out) == snapshot("""\
THREAD                       AGENT   STATUS          UPDATED               TITLE
th_xxxxxxxxxxxxxxxxxxxxxxxx  helper  needs_approval  0000-00-00 00:00:00Z  first
    waiting: notes__write_note {"title": "x", "body": "y"} (call w1)
""")
    assert (again.code, again.out) == (0, "Not saved, as you wish.\nthree\n")
    assert "n not now" in again.err
    # One thread throughout: the last request carries the whole conversation, the refusal
    # with its reason included. A personality holds for the messages it was sent with.
    assert [(m["role"], m.get("content")) for m in fake.requests[-1]["messages"]] == snapshot(
        [
            ("user", "first"),
            ("assistant", "one"),
            ("user", "save x"),
            ("assistant", None),
            (
                "tool",
                "The user refused this call: not now. Do not retry it without asking the user.",
            ),
            ("assistant", "Not saved, as you wish."),
            ("user", "third"),
        ]
    )
    systems = [
        [m["content"] for m in r["messages"] if m["role"] == "system"] for r in fake.requests
    ]
    assert systems == snapshot(
        [["Talk like a pirate."], ["Talk like a pirate."], ["Talk like a pirate."], []]
    )


async def test_chat_asks_about_the_calls_of_delegated_agents(tmp_path: Path) -> None:
    llm = ScriptedLLM(  # one script for both agents: their requests come one after another
        Call("agent__helper", {"message": "save a note"}, id="d1"),  # boss
        Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"),  # helper
        "Saved it.",  # helper
        "The helper saved it.",  # boss
    )
    fake = FakeChatServer(llm)
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["agents"]["boss"] = {
            "description": "Delegates",
            "model": "main",
            "agents": ["helper"],
            "require_approval": "never",
        }
        cfg = write_config(tmp_path / "agents.json", data)
        common = ["--config", str(cfg), "--db", str(tmp_path / "threads.db")]
        ran = await agents_mcp(
            "chat", "boss", "get a note saved", *common, input="y\n", tmp_path=tmp_path
        )
    assert (ran.code, ran.out) == (0, "The helper saved it.\n")
    assert scrub(ran.err) == snapshot("""\
? notes__write_note (asked by boss › helper) needs your approval to run with:
    {
      "title": "t",
      "body": "b"
    }
  approve? [y]es, [n]o (or: n <reason>), [a]lways for this tool in this thread: y
→ helper › calling notes__write_note
thread: th_xxxxxxxxxxxxxxxxxxxxxxxx (continue with `agents-mcp chat boss --thread th_xxxxxxxxxxxxxxxxxxxxxxxx --config <tmp>/agents.json --db <tmp>/threads.db`)
""")
    boss = re.findall(r"th_[A-Za-z0-9_-]{24}", ran.err)[-1]
    runs = await all_of(
        {
            "top": agents_mcp("threads", *common, tmp_path=tmp_path),
            "all": agents_mcp("threads", "--all", "--json", *common, tmp_path=tmp_path),
            "show": agents_mcp("show", boss, *common, tmp_path=tmp_path),
            "json": agents_mcp("show", boss, "--json", *common, tmp_path=tmp_path),
        }
    )
    assert len(runs["top"].out.splitlines()) == 2  # the header and the boss's thread
    assert [t["agent"] for t in json.loads(runs["all"].out)["threads"]] == ["boss", "helper"]
    shown = json.loads(runs["json"].out)["delegations"]
    assert [(d["agent"], d["status"], d["call_id"]) for d in shown] == [
        ("helper", "completed", "d1")
    ]
    assert scrub(runs["show"].out) == snapshot("""\
thread th_xxxxxxxxxxxxxxxxxxxxxxxx · agent boss · completed
started 0000-00-00 00:00:00Z · updated 0000-00-00 00:00:00Z

you:
  get a note saved

boss:
  → agent__helper {"message": "save a note"}
    ← Saved it.

    [agent helper · thread_id: th_xxxxxxxxxxxxxxxxxxxxxxxx · pass this thread_id to continue the conversation with this agent]

boss:
  The helper saved it.

usage: 20 input + 10 output tokens · 2 model request(s) · 1 tool call(s)
""")


async def test_a_failed_run_exits_1_with_the_reason(tmp_path: Path) -> None:
    fake = FakeChatServer(ScriptedLLM())
    fake.faults.append(Fault(status=401, body={"error": {"message": "Incorrect API key"}}))
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["agents"]["helper"]["servers"] = []
        cfg = write_config(tmp_path / "agents.json", data)
        ran = await agents_mcp(
            "chat", "helper", "hi", "--config", str(cfg), "--db", str(tmp_path / "t.db"),
            tmp_path=tmp_path,
        )  # fmt: skip
    assert (ran.code, ran.out) == (1, "")
    assert scrub(ran.err) == snapshot(
        """\
agents-mcp: the run failed (llm_error): LLM request failed: HTTP 401 from http://127.0.0.1:<port>/v1/chat/completions: Incorrect API key
thread: th_xxxxxxxxxxxxxxxxxxxxxxxx (continue with `agents-mcp chat helper --thread th_xxxxxxxxxxxxxxxxxxxxxxxx --config <tmp>/agents.json --db <tmp>/t.db`)
"""
    )


async def test_in_a_terminal_the_spinner_shows_and_servers_stderr_stays_in_their_log(
    tmp_path: Path,
) -> None:
    seen = anyio.Event()

    async def answer_once_the_spinner_showed(request: LLMRequest) -> str:
        await seen.wait()
        return "All quiet."

    fake = FakeChatServer(ScriptedLLM(answer_once_the_spinner_showed))
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["mcpServers"]["notes"]["args"] += ["--say", "Notes Server running on stdio"]
        cfg = write_config(tmp_path / "agents.json", data)
        term = Terminal(
            "chat", "helper", "anything new?", "--config", str(cfg),
            "--db", str(tmp_path / "t.db"), tmp_path=tmp_path,
        )  # fmt: skip
        try:
            await term.read_until("thinking (turn 1/12)")  # drawn while the model works
            seen.set()
            code = await term.exit_code()
        finally:
            term.close()
    assert code == 0
    shown = term.text()
    assert "All quiet.\n" in shown
    assert "Notes Server" not in shown
    log = tmp_path / "state" / "agents-mcp" / "log" / "notes.log"
    assert "Notes Server running on stdio" in log.read_text()


async def test_ctrl_c_during_a_chat_leaves_the_thread_interrupted_not_running(
    tmp_path: Path,
) -> None:
    """Ctrl-C while the model works: the process records that its run was interrupted
    before it exits, and `show` says so where it happened."""
    db = tmp_path / "threads.db"
    asked, never = anyio.Event(), anyio.Event()

    async def slow(request: LLMRequest) -> str:
        asked.set()
        await never.wait()
        return "too late"

    fake = FakeChatServer(ScriptedLLM(slow))
    async with fake.serve() as base_url:
        cfg = write_config(tmp_path / "agents.json", helper_config(base_url))
        term = Terminal(
            "chat", "helper", "think hard", "--config", str(cfg), "--db", str(db),
            tmp_path=tmp_path,
        )  # fmt: skip
        try:
            with anyio.fail_after(60):
                await asked.wait()
            term.type(b"\x03")  # Ctrl-C
            code = await term.exit_code()
        finally:
            never.set()
            term.close()
        listed = await agents_mcp("threads", "--db", str(db), "--json", tmp_path=tmp_path)
        thread = json.loads(listed.out)["threads"][0]
        shown = await agents_mcp("show", thread["thread_id"], "--db", str(db), tmp_path=tmp_path)
    assert code == 130
    assert thread["status"] == "failed"
    assert "— interrupted: the server stopped during this run —" in shown.out
    assert "error (interrupted)" in shown.out
