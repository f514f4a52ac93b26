"""MCP tasks as the official client drives them: ``@modelcontextprotocol/ext-tasks`` on the
TypeScript SDK v2 client (``tests/browser/tasks_client.mjs``), against agents-mcp over
real HTTP with a scripted model and a real downstream server.

The script prints one JSON line per thing it sees (the task, each status it polls, each
question it is asked) and a last ``{"done": ...}`` line; a test that must act at a point
(release the model once the task is seen working) reads the lines as they come.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

from agents_mcp.config import Config
from agents_mcp.messages import LLMRequest
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import make_config
from tests.downstream_server import make_server
from tests.processes import ROOT, agents_mcp_in_process
from tests.server.test_results import sdk_missing

pytestmark = pytest.mark.anyio

SCRIPT = ROOT / "tests" / "browser" / "tasks_client.mjs"
WRITE = Call("notes__write_note", {"title": "t", "body": "b"}, id="w1")
APPROVE = {"action": "accept", "content": {"decision": "approve"}}


@pytest.fixture(autouse=True)
def _node() -> None:
    if missing := sdk_missing():
        if os.environ.get("AGENTS_MCP_SKIP_BROWSER") == "1" and not os.environ.get("CI"):
            pytest.skip(f"AGENTS_MCP_SKIP_BROWSER=1 and missing: {', '.join(missing)}")
        pytest.fail(f"this test needs {', '.join(missing)}; bash tests/browser/setup.sh")


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the in-process notes server records each write_note it runs."""
    path = tmp_path / "downstream.jsonl"
    monkeypatch.setenv("DOWNSTREAM_LOG", str(path))
    return path


def executed(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def config(tmp_path: Path, **server: Any) -> Config:
    agents = {
        "helper": {"description": "d", "model": "main", "servers": ["notes"]},
    }
    return make_config(tmp_path, agents=agents, server={"task_poll_interval": 0.05, **server})


async def drive(
    url: str,
    command: str,
    options: dict[str, Any],
    *,
    token: str | None = None,
    on_line: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the script; returns its ``done`` line and every line before it."""
    env = {**os.environ, **({"AGENTS_MCP_TOKEN": token} if token else {})}
    lines: list[dict[str, Any]] = []
    command_line = ["node", str(SCRIPT), url, command, json.dumps(options)]
    with anyio.fail_after(60):
        async with await anyio.open_process(command_line, env=env, stderr=None) as proc:
            assert proc.stdout is not None
            buffered = ""
            async for chunk in TextReceiveStream(proc.stdout):
                buffered += chunk
                while "\n" in buffered:
                    raw, buffered = buffered.split("\n", 1)
                    line = json.loads(raw)
                    lines.append(line)
                    if on_line is not None:
                        on_line(line)
            await proc.wait()
    assert proc.returncode == 0, lines
    assert "done" in lines[-1], lines
    return lines[-1], lines[:-1]


def chat(**arguments: Any) -> dict[str, Any]:
    return {"tool": "chat_with_agent", "arguments": {"agent": "helper", **arguments}}


async def test_a_long_chat_is_a_task_polled_to_its_answer(tmp_path: Path) -> None:
    gate = anyio.Event()

    async def slow(request: LLMRequest) -> str:
        await gate.wait()  # until the client has seen the task working
        return "the answer"

    def release(line: dict[str, Any]) -> None:
        if line.get("event") == "working":
            gate.set()

    llm = ScriptedLLM(slow)
    async with agents_mcp_in_process(
        config(tmp_path), tmp_path / "t.db", llms={"main": llm}
    ) as url:
        done, lines = await drive(url, "call", chat(message="hi", wait_seconds=0), on_line=release)
    assert lines[0]["kind"] == "task"
    assert lines[0]["taskId"].startswith("task_")
    working = [line for line in lines if line.get("event") == "working"]
    assert working[0]["statusMessage"] == (
        "agent 'helper': thinking (0 model request(s), 0 tool call(s) so far)"
    )
    assert done["done"]["status"] == "completed"
    result = done["done"]["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["reply"] == "the answer"
    assert result["structuredContent"]["status"] == "completed"
    tid = result["structuredContent"]["thread_id"]
    assert result["_meta"] == {
        "agents-mcp/thread_id": tid,
        "agents-mcp/status": "completed",
        "agents-mcp/usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "llm_requests": 1,
            "tool_calls": 0,
        },
    }
    assert done["capabilities"]["execution"] is True


async def test_an_approval_is_asked_and_the_call_runs_once(tmp_path: Path, log: Path) -> None:
    llm = ScriptedLLM(WRITE, "saved")
    notes = {"notes": make_server("notes")}
    async with agents_mcp_in_process(
        config(tmp_path), tmp_path / "t.db", llms={"main": llm}, transports=notes
    ) as url:
        done, lines = await drive(
            url, "call", {**chat(message="note", wait_seconds=0), "answer": APPROVE}
        )
    statuses = [line["event"] for line in lines if "event" in line and line["event"] != "input"]
    assert "input_required" in statuses
    assert statuses[-1] == "completed"
    assert done["done"]["status"] == "completed"
    assert done["done"]["result"]["structuredContent"]["reply"] == "saved"
    [asked] = done["asked"]
    assert asked["kind"] == "elicitation"
    assert asked["inputId"].startswith("approve:th_")
    assert asked["params"]["message"] == (
        """Agent 'helper' wants to call write_note on server 'notes' with"""
        """ {"title": "t", "body": "b"}. Allow it?"""
    )
    choices = asked["params"]["requestedSchema"]["properties"]["decision"]["oneOf"]
    assert [c["const"] for c in choices] == ["approve", "deny", "allow_thread"]
    assert executed(log) == [
        {"server": "notes", "tool": "write_note", "arguments": {"title": "t", "body": "b"}}
    ]


async def test_a_denial_reaches_the_model_with_its_reason(tmp_path: Path, log: Path) -> None:
    llm = ScriptedLLM(WRITE, "not saved, then")
    deny = {"action": "accept", "content": {"decision": "deny", "reason": "not today"}}
    async with agents_mcp_in_process(
        config(tmp_path), tmp_path / "t.db", llms={"main": llm}, transports={"notes": make_server()}
    ) as url:
        done, _ = await drive(url, "call", {**chat(message="note", wait_seconds=0), "answer": deny})
    assert done["done"]["result"]["structuredContent"]["reply"] == "not saved, then"
    assert executed(log) == []
    refusal = [m.content for m in llm.requests[1].messages if m.role == "tool"]
    assert refusal == [
        "The user refused this call: not today. Do not retry it without asking the user."
    ]


async def test_a_task_is_cancelled(tmp_path: Path) -> None:
    async def never(request: LLMRequest) -> str:
        await anyio.sleep_forever()
        raise AssertionError

    llm = ScriptedLLM(never)
    options = {**chat(message="hi", wait_seconds=0), "cancel_when": "working"}
    async with agents_mcp_in_process(
        config(tmp_path), tmp_path / "t.db", llms={"main": llm}
    ) as url:
        done, _ = await drive(url, "call", options)
    assert done["done"]["status"] == "cancelled"


async def test_a_task_outlives_a_restart(tmp_path: Path, log: Path) -> None:
    """Made on one server, which stops; polled, answered and finished on the next."""
    cfg, db = config(tmp_path), tmp_path / "t.db"
    notes = {"notes": make_server("notes")}
    async with agents_mcp_in_process(cfg, db, llms={"main": ScriptedLLM(WRITE)}) as url:
        made, _ = await drive(url, "create", chat(message="note", wait_seconds=10))
    reference = made["done"]["reference"]
    assert made["done"]["kind"] == "task"
    after = ScriptedLLM("saved")
    async with agents_mcp_in_process(cfg, db, llms={"main": after}, transports=notes) as url:
        done, _ = await drive(url, "result", {"reference": reference, "answer": APPROVE})
    assert done["done"]["status"] == "completed"
    assert done["done"]["result"]["structuredContent"]["reply"] == "saved"
    assert len(executed(log)) == 1


async def test_any_replica_serves_a_task(tmp_path: Path, log: Path, pg_cluster: str) -> None:
    """Two servers on one PostgreSQL database: made on the first, finished on the second
    (which runs the approved call, once), while the first keeps serving."""
    from tests.postgres import fresh_database

    cfg, db = config(tmp_path), await fresh_database(pg_cluster)
    notes = {"notes": make_server("notes")}
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(
            agents_mcp_in_process(cfg, db, llms={"main": ScriptedLLM(WRITE)})
        )
        two = await stack.enter_async_context(
            agents_mcp_in_process(cfg, db, llms={"main": ScriptedLLM("saved")}, transports=notes)
        )
        made, _ = await drive(one, "create", chat(message="note", wait_seconds=10))
        reference = made["done"]["reference"]
        done, _ = await drive(two, "result", {"reference": reference, "answer": APPROVE})
        seen, _ = await drive(one, "get", {"taskId": made["done"]["taskId"]})
    assert done["done"]["status"] == "completed"
    assert len(executed(log)) == 1
    assert seen["done"]["result"]["status"] == "completed"


async def test_another_owners_task_is_not_found(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, tokens={"alice": {"token": "alice-token"}, "bob": {"token": "bob-token"}}
    )
    async with agents_mcp_in_process(
        cfg, tmp_path / "t.db", llms={"main": ScriptedLLM(WRITE)}
    ) as url:
        made, _ = await drive(
            url, "create", chat(message="note", wait_seconds=10), token="alice-token"
        )
        task_id = made["done"]["taskId"]
        theirs, _ = await drive(url, "get", {"taskId": task_id}, token="bob-token")
        unknown, _ = await drive(url, "get", {"taskId": "task_nope"}, token="alice-token")
        mine, _ = await drive(url, "get", {"taskId": task_id}, token="alice-token")
    assert theirs["done"] == {
        "kind": "error",
        "error": {"code": -32602, "message": "Failed to retrieve task: Task not found"},
    }
    assert unknown["done"] == theirs["done"]
    assert mine["done"]["result"]["status"] == "input_required"
