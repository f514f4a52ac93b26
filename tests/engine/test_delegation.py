"""Agents that call agents, in process: child threads, guards, approvals, cancellation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from inline_snapshot import snapshot

from agents_mcp.messages import LLMRequest
from agents_mcp.server.app import create_server
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config
from tests.downstream_server import make_server
from tests.reading import structured

pytestmark = pytest.mark.anyio


def team(**server: Any) -> dict[str, Any]:
    def agent(model: str, delegates: list[str], policy: str = "never") -> dict[str, Any]:
        return {
            "description": f"The {model} agent",
            "model": model,
            "servers": ["notes"],
            "require_approval": policy,
            "agents": delegates,
        }

    return {
        "agents": {
            "orchestrator": agent("orchestrator", ["researcher", "writer"]),
            "researcher": agent("researcher", ["writer", "orchestrator"]),
            "writer": agent("writer", ["orchestrator"], policy="read_only"),
        },
        "models": {
            name: {"base_url": "http://127.0.0.1:9/v1", "model": name}
            for name in ("orchestrator", "researcher", "writer")
        },
        "server": server or None,
    }


@asynccontextmanager
async def connect(
    tmp_path: Path, scripts: dict[str, ScriptedLLM], **server: Any
) -> AsyncIterator[Client[Any]]:
    cfg = make_config(tmp_path, **team(**server))
    mcp = create_server(
        cfg, db_path=tmp_path / "t.db", llms=scripts, transports={"notes": make_server("notes")}
    )
    async with Client(mcp, mode="legacy") as client:
        yield client


def tool_results(llm: ScriptedLLM, request: int) -> list[str]:
    return [m.content or "" for m in llm.requests[request].messages if m.role == "tool"]


def child_id(text: str) -> str:
    return text.split("thread_id: ")[1].split(" ")[0]


async def test_delegation_runs_a_child_thread_and_continues_it(tmp_path: Path) -> None:
    orchestrator = ScriptedLLM(
        Call("agent__researcher", {"message": "look"}, id="d0"),
        "warmed up",
        Call("agent__researcher", {"message": "find the answer"}, id="d1"),
        "The researcher found 42.",
        lambda request: Call(
            "agent__researcher",
            {"message": "and double it?", "thread_id": child_id(tool_results(orchestrator, 3)[0])},
            id="d2",
        ),
        "84 it is.",
    )
    researcher = ScriptedLLM(
        Call("notes__echo", {"text": "hm"}),
        "looked",
        Call("notes__echo", {"text": "42"}),
        "It is 42.",
        "Doubled: 84.",
    )
    scripts = {"orchestrator": orchestrator, "researcher": researcher, "writer": ScriptedLLM()}
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with connect(tmp_path, scripts, progress_interval=0) as client:
        with anyio.fail_after(15):
            await client.call_tool(
                "chat_with_agent",
                {"agent": "orchestrator", "message": "warm-up"},
                progress_handler=on_progress,
            )
        first = await call(client, "chat_with_agent", agent="orchestrator", message="question")
        tid = first["thread_id"]
        second = await call(
            client, "chat_with_agent", agent="orchestrator", message="more", thread_id=tid
        )
        top = await call(client, "list_threads")
        everything = await call(client, "list_threads", include_children=True)
        detail = await call(client, "get_thread", thread_id=tid)
    child = child_id(tool_results(orchestrator, 3)[0])
    assert (first["reply"], second["reply"]) == ("The researcher found 42.", "84 it is.")
    assert seen == snapshot(
        [
            "thinking (turn 1/12)",
            "researcher › thinking (turn 1/12)",
            "researcher › calling notes__echo",
            "researcher › thinking (turn 2/12)",
            "thinking (turn 2/12)",
        ]
    )
    assert tool_results(orchestrator, 3)[0].replace(child, "<child>") == snapshot(
        """\
It is 42.

[agent researcher · thread_id: <child> · pass this thread_id to continue the conversation with this agent]\
"""
    )
    # The child thread was continued, not replaced: it saw its own history.
    assert [(m.role, m.content) for m in researcher.requests[4].messages] == snapshot(
        [
            ("user", "find the answer"),
            ("assistant", None),
            ("tool", "notes echo: 42"),
            ("assistant", "It is 42."),
            ("user", "and double it?"),
        ]
    )
    assert top["threads"][0]["thread_id"] == tid
    assert len(top["threads"]) == 2  # the two top-level threads, not their children
    assert {t["agent"] for t in everything["threads"]} == {"orchestrator", "researcher"}
    assert detail["children"] == [
        {"thread_id": child, "agent": "researcher", "status": "completed", "parent_call_id": "d2"}
    ]
    # The model sees delegation tools with the sub-agents' descriptions.
    specs = {t.name: t.description for t in orchestrator.requests[0].tools}
    assert len(everything["threads"]) == 4  # two top-level threads and their children
    assert specs["agent__researcher"] == "Delegate to the agent 'researcher': The researcher agent"


async def test_a_cycle_is_refused_and_the_run_goes_on(tmp_path: Path) -> None:
    orchestrator = ScriptedLLM(Call("agent__researcher", {"message": "ask back"}), "gave up")
    researcher = ScriptedLLM(Call("agent__orchestrator", {"message": "loop?"}), "could not")
    scripts = {"orchestrator": orchestrator, "researcher": researcher, "writer": ScriptedLLM()}
    async with connect(tmp_path, scripts) as client:
        done = await call(client, "chat_with_agent", agent="orchestrator", message="go")
    assert done["status"] == "completed"
    assert tool_results(researcher, 1) == snapshot(
        [
            "Error: delegation refused: agent 'orchestrator' is already on the chain orchestrator › researcher; calling it again would loop. Answer with what you have."
        ]
    )


async def test_depth_limit(tmp_path: Path) -> None:
    orchestrator = ScriptedLLM(Call("agent__researcher", {"message": "deep"}), "ok")
    researcher = ScriptedLLM(Call("agent__writer", {"message": "deeper"}), "stopped here")
    scripts = {"orchestrator": orchestrator, "researcher": researcher, "writer": ScriptedLLM()}
    async with connect(tmp_path, scripts, max_depth=1) as client:
        done = await call(client, "chat_with_agent", agent="orchestrator", message="go")
    assert done["status"] == "completed"
    assert tool_results(researcher, 1) == snapshot(
        [
            "Error: delegation refused: the chain orchestrator › researcher is already 1 delegations deep (max_depth 1). Do this part yourself."
        ]
    )


async def test_a_turn_resumed_after_approval_keeps_its_callers_chain(tmp_path: Path) -> None:
    # Asked by an agent of another agents-mcp (one hop deep already), the writer may not
    # delegate further with max_depth 1: after the approval as well as before it.
    writer = ScriptedLLM(
        Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"),
        Call("agent__orchestrator", {"message": "deeper"}),
        "stopped here",
    )
    scripts = {"orchestrator": ScriptedLLM("never asked"), "researcher": ScriptedLLM(),
               "writer": writer}  # fmt: skip
    remote = {"agents-mcp/chain": [{"instance": "am_elsewhere", "agent": "planner"}]}
    async with connect(tmp_path, scripts, max_depth=1) as client:
        with anyio.fail_after(60):
            paused = await client.call_tool(
                "chat_with_agent", {"agent": "writer", "message": "go"}, meta=remote
            )
        top = structured(paused)["thread_id"]
        done = await call(client, "approve_call", thread_id=top, call_id="w1", approve=True)
    assert done["status"] == "completed"
    assert scripts["orchestrator"].requests == []
    assert tool_results(writer, 2)[-1] == snapshot(
        "Error: delegation refused: the chain planner › writer is already 1 delegations deep (max_depth 1). Do this part yourself."
    )


async def test_total_budget_stops_the_whole_tree(tmp_path: Path) -> None:
    orchestrator = ScriptedLLM(Call("agent__researcher", {"message": "spend"}), "never")
    researcher = ScriptedLLM(*[Call("notes__echo", {"text": str(i)}) for i in range(5)])
    scripts = {"orchestrator": orchestrator, "researcher": researcher, "writer": ScriptedLLM()}
    async with connect(tmp_path, scripts, max_total_llm_requests=3) as client:
        done = await call(client, "chat_with_agent", agent="orchestrator", message="go")
    assert (len(orchestrator.requests), len(researcher.requests)) == (1, 2)
    assert done["status"] == "failed"
    assert done["error"] == snapshot(
        {
            "type": "budget_exceeded",
            "message": "this run used its budget of 3 LLM requests (max_total_llm_requests), delegations included; send a message to continue",
        }
    )


async def test_approval_two_levels_down_is_decided_from_the_top(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("DOWNSTREAM_LOG", str(log))
    orchestrator = ScriptedLLM(
        Call("agent__researcher", {"message": "get it written"}), "All done."
    )
    researcher = ScriptedLLM(Call("agent__writer", {"message": "write it"}), "Written.")
    writer = ScriptedLLM(
        Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"),
        "Saved.",
        Call("notes__write_note", {"title": "x", "body": "y"}, id="w2"),
        "Refused, fine.",
    )
    scripts = {"orchestrator": orchestrator, "researcher": researcher, "writer": writer}
    async with connect(tmp_path, scripts) as client:
        paused = await call(client, "chat_with_agent", agent="orchestrator", message="write")
        top = paused["thread_id"]
        inbox = await call(client, "list_threads", status="needs_approval")
        done = await call(client, "approve_call", thread_id=top, call_id="w1", approve=True)
        again = await call(client, "approve_call", thread_id=top, call_id="w1", approve=True)
    assert paused["status"] == "needs_approval"
    assert [(p["call_id"], p["tool"], p["via"]) for p in paused["pending_approvals"]] == [
        ("w1", "write_note", ["orchestrator", "researcher", "writer"])
    ]
    assert [t["thread_id"] for t in inbox["threads"]] == [top]
    assert inbox["threads"][0]["pending_approvals"][0]["call_id"] == "w1"
    assert (done["status"], done["reply"]) == ("completed", "All done.")
    assert again == done
    assert [json.loads(line)["arguments"] for line in log.read_text().splitlines()] == [
        {"title": "t", "body": "b"}
    ]
    assert tool_results(writer, 1) == ["saved note 't' (1 chars)"]


async def test_denial_reaches_the_child_model(tmp_path: Path) -> None:
    orchestrator = ScriptedLLM(Call("agent__writer", {"message": "write"}), "Told it no.")
    writer = ScriptedLLM(
        Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"), "ok, I won't"
    )
    scripts = {"orchestrator": orchestrator, "researcher": ScriptedLLM(), "writer": writer}
    async with connect(tmp_path, scripts) as client:
        paused = await call(client, "chat_with_agent", agent="orchestrator", message="go")
        done = await call(
            client,
            "approve_call",
            thread_id=paused["thread_id"],
            call_id="w1",
            approve=False,
            reason="not now",
        )
    assert done["status"] == "completed"
    assert tool_results(writer, 1) == [
        "The user refused this call: not now. Do not retry it without asking the user."
    ]
    assert tool_results(orchestrator, 1)[0].startswith("ok, I won't")


async def test_cancelling_a_parent_stops_its_children(tmp_path: Path) -> None:
    started, release = anyio.Event(), anyio.Event()

    async def blocked(request: LLMRequest) -> str:
        started.set()
        await release.wait()
        return "never"

    orchestrator = ScriptedLLM(Call("agent__researcher", {"message": "slow"}))
    researcher = ScriptedLLM(blocked)
    scripts = {"orchestrator": orchestrator, "researcher": researcher, "writer": ScriptedLLM()}
    async with connect(tmp_path, scripts) as client:
        first = await call(
            client, "chat_with_agent", agent="orchestrator", message="go", wait_seconds=0
        )
        with anyio.fail_after(5):
            await started.wait()
        stopped = await call(client, "cancel_run", thread_id=first["thread_id"])
        tree = await call(client, "list_threads", include_children=True)
    assert stopped["status"] == "cancelled"
    assert sorted((t["agent"], t["status"]) for t in tree["threads"]) == [
        ("orchestrator", "cancelled"),
        ("researcher", "cancelled"),
    ]


async def test_looking_at_a_child_never_runs_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("DOWNSTREAM_LOG", str(log))
    orchestrator = ScriptedLLM(Call("agent__writer", {"message": "write"}), "done")
    writer = ScriptedLLM(Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"), "saved")
    scripts = {"orchestrator": orchestrator, "researcher": ScriptedLLM(), "writer": writer}
    async with connect(tmp_path, scripts) as client:
        paused = await call(client, "chat_with_agent", agent="orchestrator", message="go")
        child = paused["pending_approvals"][0]["thread_id"]
        await call(
            client, "approve_call", thread_id=child, call_id="w1", approve=True, wait_seconds=0
        )
        seen = await call(client, "get_thread", thread_id=child, wait_seconds=10)
        top = await call(client, "get_thread", thread_id=paused["thread_id"], wait_seconds=10)
        with pytest.raises(ToolError, match="is a delegation inside thread"):
            await client.call_tool(
                "chat_with_agent", {"agent": "writer", "message": "x", "thread_id": child}
            )
    assert child != paused["thread_id"]
    assert (seen["status"], top["status"], top["reply"]) == ("completed", "completed", "done")
    assert len(log.read_text().splitlines()) == 1


async def test_the_same_call_id_in_two_delegations_is_decided_by_thread(tmp_path: Path) -> None:
    orchestrator = ScriptedLLM(
        [Call("agent__researcher", {"message": "a"}), Call("agent__writer", {"message": "b"})],
        "both done",
    )
    researcher = ScriptedLLM(
        Call("notes__write_note", {"title": "r", "body": "1"}, id="call_0"), "r ok"
    )
    writer = ScriptedLLM(
        Call("notes__write_note", {"title": "w", "body": "2"}, id="call_0"), "w ok"
    )
    agents = team()["agents"]
    agents["researcher"]["require_approval"] = "always"
    scripts = {"orchestrator": orchestrator, "researcher": researcher, "writer": writer}
    cfg = make_config(tmp_path, agents=agents, models=team()["models"])
    mcp = create_server(
        cfg, db_path=tmp_path / "t.db", llms=scripts, transports={"notes": make_server("notes")}
    )
    async with Client(mcp) as client:
        paused = await call(client, "chat_with_agent", agent="orchestrator", message="go")
        top = paused["thread_id"]
        with pytest.raises(ToolError, match="exists in several delegated threads"):
            await client.call_tool(
                "approve_call", {"thread_id": top, "call_id": "call_0", "approve": True}
            )
        for p in paused["pending_approvals"]:
            done = await call(
                client, "approve_call", thread_id=p["thread_id"], call_id="call_0", approve=True
            )
    assert len(paused["pending_approvals"]) == 2
    assert (done["status"], done["reply"]) in {("completed", "r ok"), ("completed", "w ok")}
    final = [m for m in orchestrator.requests[-1].messages if m.role == "tool"]
    assert len(final) == 2


async def test_cancelling_a_child_cancels_its_whole_tree(tmp_path: Path) -> None:
    orchestrator = ScriptedLLM(Call("agent__writer", {"message": "write"}))
    writer = ScriptedLLM(Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"))
    scripts = {"orchestrator": orchestrator, "researcher": ScriptedLLM(), "writer": writer}
    async with connect(tmp_path, scripts) as client:
        paused = await call(client, "chat_with_agent", agent="orchestrator", message="go")
        child = paused["pending_approvals"][0]["thread_id"]
        await call(client, "cancel_run", thread_id=child)
        top = await call(client, "get_thread", thread_id=paused["thread_id"])
        tree = await call(client, "list_threads", include_children=True)
    assert top["status"] == "cancelled"
    assert {t["status"] for t in tree["threads"]} == {"cancelled"}
