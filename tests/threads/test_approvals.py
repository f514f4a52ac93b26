"""Approvals through a real MCP client: policies, decisions, durability, tampering."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from inline_snapshot import snapshot

from agents_mcp.server.app import create_server
from agents_mcp.store import Claim, open_store
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config
from tests.downstream_server import make_server
from tests.reading import text_of

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]


def agent(policy: Any) -> dict[str, Any]:
    return {
        "helper": {
            "description": "Takes notes",
            "model": "main",
            "servers": ["notes"],
            "require_approval": policy,
        }
    }


@asynccontextmanager
async def connect(
    tmp_path: Path, llm: ScriptedLLM, policy: Any = "always", *, mode: str = "legacy"
) -> AsyncIterator[Client[Any]]:
    cfg = make_config(tmp_path, agents=agent(policy))
    mcp = create_server(
        cfg,
        db_path=tmp_path / "threads.db",
        llms={"main": llm},
        transports={"notes": make_server("notes")},
    )
    async with Client(mcp, mode=mode) as client:
        yield client


def notes_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "downstream.jsonl"
    monkeypatch.setenv("DOWNSTREAM_LOG", str(path))
    return path


def executed(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def pending_view(payload: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return [(p["call_id"], p["tool"], p["arguments"]) for p in payload["pending_approvals"]]


WRITE = Call("notes__write_note", {"title": "t", "body": "b"}, id="w1")
ECHO = Call("notes__echo", {"text": "x"}, id="e1")


@pytest.mark.parametrize(
    ("policy", "needs"),
    [
        ("always", ["w1", "e1"]),
        ("never", []),
        ("read_only", ["w1"]),
        ({"always": ["notes__echo"], "never": ["notes__write_note"]}, ["e1"]),
        ({"never": ["notes__*"], "default": "always"}, []),
        ({"always": ["notes__*"], "never": ["notes__echo"], "default": "never"}, ["w1"]),
        ({"default": "read_only"}, ["w1"]),
    ],
)
async def test_each_policy_form(tmp_path: Path, policy: Any, needs: list[str]) -> None:
    llm = ScriptedLLM([WRITE, ECHO], "done")
    async with connect(tmp_path, llm, policy) as client:
        payload = await call(client, "chat_with_agent", agent="helper", message="note")
    assert [p["call_id"] for p in payload["pending_approvals"]] == needs
    assert payload["status"] == ("needs_approval" if needs else "completed")


@pytest.mark.parametrize("mode", MODES)
async def test_mixed_turn_then_approve_and_deny(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = notes_log(monkeypatch, tmp_path)
    llm = ScriptedLLM(
        [
            ECHO,
            Call("notes__write_note", {"title": "a", "body": "1"}, id="w1"),
            Call("notes__write_note", {"title": "b", "body": "2"}, id="w2"),
        ],
        "one saved, one refused",
    )
    async with connect(tmp_path, llm, "read_only", mode=mode) as client:
        with anyio.fail_after(10):
            first = await client.call_tool(
                "chat_with_agent", {"agent": "helper", "message": "save two notes"}
            )
        paused = first.structured_content
        assert paused is not None
        tid = paused["thread_id"]
        assert paused["status"] == "needs_approval"
        assert first.meta is not None and first.meta["agents-mcp/status"] == "needs_approval"
        assert pending_view(paused) == snapshot(
            [
                ("w1", "write_note", {"title": "a", "body": "1"}),
                ("w2", "write_note", {"title": "b", "body": "2"}),
            ]
        )
        text = text_of(first.content[0]).replace(tid, "<t>")
        assert text == snapshot(
            """\
The agent wants to run 2 tool call(s) that need approval:
- notes__write_note {"title": "a", "body": "1"} (call_id: w1)
- notes__write_note {"title": "b", "body": "2"} (call_id: w2)
Ask the user, then answer each with approve_call(thread_id='<t>', call_id=…, approve=true|false).
[thread_id: <t> · agent: helper · status: needs_approval] Next: approve_call for each pending call. A new message is refused until they are decided; cancel_run drops them.\
"""
        )
        assert executed(log) == []  # the free echo ran, nothing that writes did

        # Partial decision: still waiting for w2, nothing resumes yet.
        partial = await call(client, "approve_call", thread_id=tid, call_id="w1", approve=True)
        assert partial["status"] == "needs_approval"
        assert pending_view(partial) == [("w2", "write_note", {"title": "b", "body": "2"})]
        assert len(llm.requests) == 1

        final = await call(
            client, "approve_call", thread_id=tid, call_id="w2", approve=False, reason="not b"
        )
    assert final["status"] == "completed"
    assert final["reply"] == "one saved, one refused"
    assert executed(log) == [
        {"server": "notes", "tool": "write_note", "arguments": {"title": "a", "body": "1"}}
    ]
    results = [(m.tool_call_id, m.content) for m in llm.requests[1].messages if m.role == "tool"]
    assert results == snapshot(
        [
            ("e1", "notes echo: x"),
            ("w1", "saved note 'a' (1 chars)"),
            ("w2", "The user refused this call: not b. Do not retry it without asking the user."),
        ]
    )


@pytest.mark.parametrize("mode", MODES)
async def test_decisions_are_idempotent_and_final(tmp_path: Path, mode: str) -> None:
    llm = ScriptedLLM(WRITE, "saved")
    async with connect(tmp_path, llm, mode=mode) as client:
        paused = await call(client, "chat_with_agent", agent="helper", message="note")
        tid = paused["thread_id"]
        done = await call(client, "approve_call", thread_id=tid, call_id="w1", approve=True)
        again = await call(client, "approve_call", thread_id=tid, call_id="w1", approve=True)
        errors = []
        for args in (
            {"thread_id": tid, "call_id": "w1", "approve": False},
            {"thread_id": tid, "call_id": "nope", "approve": True},
            {"thread_id": "th_unknown", "call_id": "w1", "approve": True},
        ):
            with pytest.raises(ToolError) as info:
                await client.call_tool("approve_call", args)
            errors.append(str(info.value).replace(tid, "<t>"))
    assert done == again
    assert done["status"] == "completed"
    assert errors == snapshot(
        [
            "call 'w1' was already approved; a decision cannot be changed",
            "call 'nope' not found in thread '<t>'; nothing is pending",
            "thread 'th_unknown' not found",
        ]
    )
    llm.assert_complete()


async def test_new_message_while_calls_are_pending_is_refused(tmp_path: Path) -> None:
    llm = ScriptedLLM(WRITE)
    async with connect(tmp_path, llm) as client:
        paused = await call(client, "chat_with_agent", agent="helper", message="note")
        tid = paused["thread_id"]
        with pytest.raises(ToolError) as info:
            await client.call_tool(
                "chat_with_agent", {"agent": "helper", "message": "also this", "thread_id": tid}
            )
        still = await call(client, "get_thread", thread_id=tid)
    assert str(info.value).replace(tid, "<t>") == snapshot(
        'thread \'<t>\' has undecided tool calls: w1 (notes__write_note {"title": "t", "body": "b"}). Decide each with approve_call(thread_id, call_id, approve=true|false) before sending a new message, or cancel_run to drop them'
    )
    assert still["status"] == "needs_approval"
    assert len(llm.requests) == 1


async def test_scope_thread_allows_the_tool_for_the_rest_of_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = notes_log(monkeypatch, tmp_path)
    llm = ScriptedLLM(
        WRITE,
        Call("notes__write_note", {"title": "t2", "body": "b2"}, id="w2"),
        "both saved",
        Call("notes__write_note", {"title": "t3", "body": "b3"}, id="w3"),
        "third saved",
        Call("notes__write_note", {"title": "t4", "body": "b4"}, id="w4"),
    )
    async with connect(tmp_path, llm) as client:
        paused = await call(client, "chat_with_agent", agent="helper", message="notes")
        tid = paused["thread_id"]
        done = await call(
            client, "approve_call", thread_id=tid, call_id="w1", approve=True, scope="thread"
        )
        later = await call(
            client, "chat_with_agent", agent="helper", message="one more", thread_id=tid
        )
        other = await call(client, "chat_with_agent", agent="helper", message="new thread")
    assert (done["status"], later["status"]) == ("completed", "completed")
    assert [e["arguments"]["title"] for e in executed(log)] == ["t", "t2", "t3"]
    # The grant is per thread: another thread still asks.
    assert other["status"] == "needs_approval"


async def test_executed_arguments_are_the_stored_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """approve_call takes no arguments, so a caller cannot swap them; the stored call runs
    byte for byte, and a stored call whose digest no longer matches does not run at all."""
    log = notes_log(monkeypatch, tmp_path)
    body = 'exact "bytes" ✓ \\n'
    llm = ScriptedLLM(
        Call("notes__write_note", {"title": "keep", "body": body}, id="w1"), "ok", WRITE, "ok"
    )
    async with connect(tmp_path, llm) as client:
        paused = await call(client, "chat_with_agent", agent="helper", message="note")
        tid = paused["thread_id"]
        with pytest.raises(ToolError, match="arguments"):
            await client.call_tool(
                "approve_call",
                {
                    "thread_id": tid,
                    "call_id": "w1",
                    "approve": True,
                    "arguments": {"title": "evil"},
                },
            )
        await call(client, "approve_call", thread_id=tid, call_id="w1", approve=True)
        second = await call(
            client, "chat_with_agent", agent="helper", message="again", thread_id=tid
        )
    assert executed(log) == [
        {"server": "notes", "tool": "write_note", "arguments": {"title": "keep", "body": body}}
    ]
    # Tampering with the database after the request is refused at execution time.
    with contextlib.closing(sqlite3.connect(tmp_path / "threads.db")) as db, db:
        db.execute(  # an attacker with file access
            "UPDATE approvals SET arguments=? WHERE call_id='w1~2'",
            ('{"title": "evil", "body": "x"}',),
        )
    async with connect(tmp_path, llm) as client:
        done = await call(client, "approve_call", thread_id=tid, call_id="w1~2", approve=True)
    assert done["status"] == "completed"
    assert len(executed(log)) == 1
    assert second["pending_approvals"][0]["call_id"] == "w1~2"


async def test_pending_approval_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = notes_log(monkeypatch, tmp_path)
    llm = ScriptedLLM(WRITE, "saved after restart")
    async with connect(tmp_path, llm) as client:
        paused = await call(client, "chat_with_agent", agent="helper", message="note")
    tid = paused["thread_id"]
    async with connect(tmp_path, llm) as client:
        inbox = await call(client, "list_threads", status="needs_approval")
        done = await call(client, "approve_call", thread_id=tid, call_id="w1", approve=True)
    assert [t["thread_id"] for t in inbox["threads"]] == [tid]
    preview = inbox["threads"][0]["pending_approvals"][0]
    assert {k: v for k, v in preview.items() if k != "age_seconds"} == snapshot(
        {
            "call_id": "w1",
            "server": "notes",
            "tool": "write_note",
            "arguments_preview": '{"title": "t", "body": "b"}',
        }
    )
    assert done["status"] == "completed"
    assert len(executed(log)) == 1


async def test_decision_recorded_before_a_crash_runs_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process died after recording the decision and before executing the call."""
    log = notes_log(monkeypatch, tmp_path)
    llm = ScriptedLLM(WRITE, "saved")
    async with connect(tmp_path, llm) as client:
        paused = await call(client, "chat_with_agent", agent="helper", message="note")
    tid = paused["thread_id"]
    # Exactly what approve_call writes before it resumes the run, and nothing more: the
    # decision, and the thread claimed by a run of that (now gone) process.
    store = await open_store(tmp_path / "threads.db")
    decision = await store.decide(
        tid, tid, "w1", approve=True, reason=None, claim=Claim.new(store.runner)
    )
    await store.close()
    assert decision.outcome == "resumed"

    async with connect(tmp_path, llm) as client:
        # Recovery on start resumes the thread in the background; get_thread waits for it.
        result = await call(client, "get_thread", thread_id=tid, wait_seconds=10)
        repeat = await call(client, "approve_call", thread_id=tid, call_id="w1", approve=True)
    assert result["status"] == "completed"
    assert repeat["status"] == "completed"
    assert len(executed(log)) == 1
    llm.assert_complete()


# -- the optional elicitation fast path -------------------------------------------------


@asynccontextmanager
async def connect_eliciting(
    tmp_path: Path, llm: ScriptedLLM, handler: Any, *, mode: str = "legacy", deadline: float = 20
) -> AsyncIterator[Client[Any]]:
    cfg = make_config(
        tmp_path,
        agents=agent("always"),
        server={"approval_prompt": "auto", "elicitation_timeout": deadline},
    )
    mcp = create_server(
        cfg, db_path=tmp_path / "t.db", llms={"main": llm}, transports={"notes": make_server()}
    )
    async with Client(mcp, mode=mode, elicitation_handler=handler) as client:
        yield client


async def test_inline_accept_runs_the_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = notes_log(monkeypatch, tmp_path)
    asked: list[str] = []

    async def accept(message: str, response_type: Any, params: Any, context: Any) -> Any:
        asked.append(message)
        return True

    llm = ScriptedLLM(WRITE, "saved")
    async with connect_eliciting(tmp_path, llm, accept) as client:
        done = await call(client, "chat_with_agent", agent="helper", message="note")
    assert done["status"] == "completed"
    assert len(executed(log)) == 1
    assert asked == snapshot(
        [
            """Agent 'helper' wants to call write_note on server 'notes' with {"title": "t", "body": "b"}. Allow it?"""
        ]
    )


async def test_inline_decline_refuses_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = notes_log(monkeypatch, tmp_path)

    async def decline(message: str, response_type: Any, params: Any, context: Any) -> Any:
        from fastmcp.client.elicitation import ElicitResult

        return ElicitResult(action="decline")

    llm = ScriptedLLM(WRITE, "ok, not saved")
    async with connect_eliciting(tmp_path, llm, decline) as client:
        done = await call(client, "chat_with_agent", agent="helper", message="note")
    assert done["reply"] == "ok, not saved"
    assert executed(log) == []
    assert [m.content for m in llm.requests[1].messages if m.role == "tool"] == [
        "The user refused this call: declined in the client. Do not retry it without asking the user."
    ]


async def test_inline_without_an_answer_falls_back_to_structured(tmp_path: Path) -> None:
    never = anyio.Event()

    async def silent(message: str, response_type: Any, params: Any, context: Any) -> Any:
        await never.wait()  # the user never answers: the server's deadline must end this

    llm = ScriptedLLM(WRITE, "saved")
    async with connect_eliciting(tmp_path, llm, silent, deadline=0.2) as client:
        paused = await call(client, "chat_with_agent", agent="helper", message="note")
        done = await call(
            client, "approve_call", thread_id=paused["thread_id"], call_id="w1", approve=True
        )
    assert paused["status"] == "needs_approval"
    assert [p["call_id"] for p in paused["pending_approvals"]] == ["w1"]
    assert done["status"] == "completed"


async def test_inline_needs_the_capability(tmp_path: Path) -> None:
    llm = ScriptedLLM(WRITE)
    async with connect_eliciting(tmp_path, llm, None) as client:
        paused = await call(client, "chat_with_agent", agent="helper", message="note")
    assert paused["status"] == "needs_approval"


async def test_a_2026_connection_is_asked_with_an_input_required_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No back-channel in the 2026-07-28 era: the question comes back as the call's
    input-required result, and fastmcp's client answers it and calls again (see
    ``tests/server/test_mrtr.py``)."""
    log = notes_log(monkeypatch, tmp_path)

    async def accept(message: str, response_type: Any, params: Any, context: Any) -> Any:
        return {"decision": "approve"}

    llm = ScriptedLLM(WRITE, "saved")
    async with connect_eliciting(tmp_path, llm, accept, mode="auto") as client:
        done = await call(client, "chat_with_agent", agent="helper", message="note")
    assert done["status"] == "completed"
    assert len(executed(log)) == 1


async def test_an_inline_answer_leaves_the_call_within_its_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question answered late, then a long tool: the call answers at its wait, the tool
    goes on in the background. Scaled down from a person answering after 18 s, a 50 s
    tool, a 45 s wait, a 20 s elicitation_timeout and a client that gives up after 60 s
    (2.5 s, 4 s, 3 s and 5.5 s here; the tool never ends by itself). Waiting a whole wait
    again after the answer, as before, took 2.5 + 4 s: past the client's 5.5 s."""
    cfg = make_config(
        tmp_path,
        agents=agent("always"),
        server={"approval_prompt": "auto", "elicitation_timeout": 3},
    )
    llm = ScriptedLLM(Call("notes__sleep", {"seconds": 600}, id="s1"))
    mcp = create_server(
        cfg,
        db_path=tmp_path / "t.db",
        llms={"main": llm},
        transports={"notes": make_server("notes", extra=True)},
    )

    async def late(message: str, response_type: Any, params: Any, context: Any) -> Any:
        await anyio.sleep(2.5)  # the person takes their time
        return True

    async with Client(mcp, mode="legacy", elicitation_handler=late) as client:
        result = await client.call_tool(
            "chat_with_agent",
            {"agent": "helper", "message": "sleep", "wait_seconds": 4},
            timeout=5.5,
        )
        assert result.structured_content is not None
        tid = result.structured_content["thread_id"]
        await client.call_tool("cancel_run", {"thread_id": tid})
    assert result.structured_content["status"] == "running"
