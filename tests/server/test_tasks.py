"""MCP tasks from Python: raw ``tasks/*`` requests through ``fastmcp.Client`` (see
``tests/tasks_client.py``), against agents-mcp over real HTTP with a scripted model and
a real downstream server. The official Node client runs the same flows in
``test_tasks_node.py``; these add what it does not show: the exact result, the errors,
partial answers, the tasks of ``approve_call``, a turn superseded before it was read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError

from agents_mcp.config import Config
from agents_mcp.messages import LLMRequest
from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.threads.runtime import open_threads
from tests import tasks_client as tc
from tests.conftest import make_config
from tests.downstream_server import make_server
from tests.processes import agents_mcp_in_process

pytestmark = pytest.mark.anyio

WRITE = Call("notes__write_note", {"title": "t", "body": "b"}, id="w1")
WRITE_2 = Call("notes__write_note", {"title": "u", "body": "c"}, id="w2")
APPROVE = {"action": "accept", "content": {"decision": "approve"}}


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "downstream.jsonl"
    monkeypatch.setenv("DOWNSTREAM_LOG", str(path))
    return path


def executed(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def config(tmp_path: Path, **server: Any) -> Config:
    agents = {"helper": {"description": "d", "model": "main", "servers": ["notes"]}}
    return make_config(tmp_path, agents=agents, server={"task_poll_interval": 0.05, **server})


@asynccontextmanager
async def serving(
    cfg: Config, db: Path | str, llm: ScriptedLLM, *, notes: bool = True
) -> AsyncIterator[str]:
    transports = {"notes": make_server("notes")} if notes else None
    async with agents_mcp_in_process(
        cfg,
        db,
        llms={"main": llm},
        transports=transports,
    ) as url:
        yield url


def tasks_client(url: str, token: str | None = None) -> Client[Any]:
    return Client(url, mode="2026-07-28", extensions=[tc.TasksClient()], auth=token)


async def until(client: Client[Any], task_id: str, *statuses: str) -> tc.DetailedTask:
    """Poll the task (as clients do) until it is in one of ``statuses``."""
    with anyio.fail_after(30):
        while True:
            task = await tc.get(client, task_id)
            if task.status in statuses:
                return task
            await anyio.sleep(0.02)


def gated(answer: str) -> tuple[anyio.Event, Any]:
    """A model step that answers once the event is set."""
    gate = anyio.Event()

    async def step(request: LLMRequest) -> str:
        await gate.wait()
        return answer

    return gate, step


async def test_without_the_extension_a_call_answers_as_today(tmp_path: Path) -> None:
    _gate, step = gated("never")
    async with serving(config(tmp_path), tmp_path / "t.db", ScriptedLLM(step, step)) as url:
        for mode in ("2026-07-28", "legacy"):
            async with Client(url, mode=mode) as client:
                result = await client.session.call_tool(
                    "chat_with_agent", {"agent": "helper", "message": "hi", "wait_seconds": 0}
                )
                assert result.structured_content is not None
                assert result.structured_content["status"] == "running"
                tid = result.structured_content["thread_id"]
                await client.call_tool("cancel_run", {"thread_id": tid})


async def test_a_tasks_result_is_the_tools_result_exactly(tmp_path: Path) -> None:
    """The same turn, once as a task and once as a plain call: the same wire result."""
    direct_llm = ScriptedLLM("the answer")
    task_gate, task_step = gated("the answer")
    async with (
        serving(config(tmp_path), tmp_path / "t.db", ScriptedLLM(task_step)) as url,
        tasks_client(url) as client,
    ):
        made = await tc.create(
            client, "chat_with_agent", agent="helper", message="hi", wait_seconds=0
        )
        assert isinstance(made, tc.CreatedTask)
        assert (made.status, made.ttl_ms, made.poll_interval_ms) == ("working", 86_400_000, 50)
        task_gate.set()
        done = await until(client, made.task_id, "completed")
    async with (
        serving(config(tmp_path), tmp_path / "u.db", direct_llm) as url,
        Client(url, mode="2026-07-28") as client,
    ):
        plain = await client.session.call_tool(
            "chat_with_agent", {"agent": "helper", "message": "hi"}
        )
    wire = plain.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert done.result is not None
    tid = done.result["structuredContent"]["thread_id"]
    other = wire["structuredContent"]["thread_id"]
    expected = json.loads(json.dumps(wire).replace(other, tid))
    del expected["_meta"]["io.modelcontextprotocol/serverInfo"]
    assert done.result == expected


async def test_tasks_methods_need_the_extension_and_the_right_header(tmp_path: Path) -> None:
    async with (
        serving(config(tmp_path), tmp_path / "t.db", ScriptedLLM(WRITE)) as url,
        tasks_client(url) as client,
    ):
        made = await tc.create(
            client, "chat_with_agent", agent="helper", message="n", wait_seconds=10
        )
        async with Client(url, mode="2026-07-28") as plain:
            with pytest.raises(MCPError) as refused:
                await tc.get(plain, made.task_id)
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tasks/get",
            "params": {
                "taskId": made.task_id,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
                    "io.modelcontextprotocol/clientCapabilities": {"extensions": {tc.TASKS: {}}},
                },
            },
        }
        headers = {
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2026-07-28",
            "mcp-method": "tasks/get",
        }
        async with httpx2.AsyncClient() as http:
            wrong = await http.post(url, json=body, headers={**headers, "mcp-name": "task_other"})
            right = await http.post(url, json=body, headers={**headers, "mcp-name": made.task_id})
    assert refused.value.error.code == -32021
    assert refused.value.error.data == {"requiredCapabilities": {"extensions": {tc.TASKS: {}}}}
    assert _rpc(wrong)["error"]["code"] == -32020
    assert _rpc(right)["result"]["status"] == "input_required"


def _rpc(response: httpx2.Response) -> dict[str, Any]:
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    message: dict[str, Any] = json.loads(text)
    return message


async def test_answers_apply_to_outstanding_keys_only(tmp_path: Path, log: Path) -> None:
    """Two calls wait: answering one leaves the other asked (under its own key); keys
    never asked and keys already answered are ignored; the stored call runs, once."""
    llm = ScriptedLLM([WRITE, WRITE_2], "both done")
    async with (
        serving(config(tmp_path), tmp_path / "t.db", llm) as url,
        tasks_client(url) as client,
    ):
        made = await tc.create(
            client, "chat_with_agent", agent="helper", message="n", wait_seconds=10
        )
        first = await until(client, made.task_id, "input_required")
        assert first.input_requests is not None
        one, two = first.input_requests
        await tc.update(client, made.task_id, {one: APPROVE, "approve:th_x:w9": APPROVE})
        second = await until(client, made.task_id, "input_required")
        assert second.input_requests is not None
        assert list(second.input_requests) == [two]
        deny = {"action": "decline"}
        await tc.update(client, made.task_id, {one: deny, two: deny})
        done = await until(client, made.task_id, "completed")
    assert done.result is not None
    assert done.result["structuredContent"]["reply"] == "both done"
    assert [e["arguments"]["title"] for e in executed(log)] == ["t"]


async def test_approve_call_resuming_a_run_answers_a_task(tmp_path: Path, log: Path) -> None:
    llm = ScriptedLLM([WRITE, WRITE_2], "both done")
    async with (
        serving(config(tmp_path), tmp_path / "t.db", llm) as url,
        Client(url, mode="2026-07-28") as plain,
    ):
        paused = await plain.call_tool(
            "chat_with_agent", {"agent": "helper", "message": "n", "wait_seconds": 10}
        )
        assert paused.structured_content is not None
        tid = paused.structured_content["thread_id"]
        async with tasks_client(url) as client:
            made = await tc.create(
                client, "approve_call", thread_id=tid, call_id="w1", approve=True, wait_seconds=10
            )
            assert isinstance(made, tc.CreatedTask)
            assert made.status == "input_required"
            waiting = await tc.get(client, made.task_id)
            assert waiting.input_requests is not None
            [key] = waiting.input_requests
            assert key == f"approve:{tid}:w2"
            await tc.update(client, made.task_id, {key: APPROVE})
            done = await until(client, made.task_id, "completed")
            # a finished task's cancel is acknowledged and changes nothing
            await tc.cancel(client, made.task_id)
            again = await tc.get(client, made.task_id)
    assert again.status == "completed"
    assert again.result == done.result
    assert len(executed(log)) == 2


async def test_a_dismissed_question_refuses_the_call(tmp_path: Path, log: Path) -> None:
    """A task has nobody else to ask: a dismissal (cancel) is a refusal the model reads."""
    llm = ScriptedLLM(WRITE, "not saved")
    async with (
        serving(config(tmp_path), tmp_path / "t.db", llm) as url,
        tasks_client(url) as client,
    ):
        made = await tc.create(
            client, "chat_with_agent", agent="helper", message="n", wait_seconds=10
        )
        [key] = (await tc.get(client, made.task_id)).input_requests or {}
        await tc.update(client, made.task_id, {key: {"action": "cancel"}})
        done = await until(client, made.task_id, "completed")
    assert done.result is not None
    assert executed(log) == []
    assert [m.content for m in llm.requests[1].messages if m.role == "tool"] == [
        "The user refused this call: dismissed in the client without a decision. Do not"
        " retry it without asking the user."
    ]


async def test_cancel_stops_the_run(tmp_path: Path) -> None:
    _gate, step = gated("never")
    async with (
        serving(config(tmp_path), tmp_path / "t.db", ScriptedLLM(step)) as url,
        tasks_client(url) as client,
    ):
        made = await tc.create(
            client, "chat_with_agent", agent="helper", message="n", wait_seconds=0
        )
        working = await tc.get(client, made.task_id)
        await tc.cancel(client, made.task_id)
        done = await until(client, made.task_id, "cancelled")
        async with Client(url) as plain:
            thread = await plain.call_tool("list_threads", {})
    assert working.status == "working"
    assert working.status_message == (
        "agent 'helper': thinking (0 model request(s), 0 tool call(s) so far)"
    )
    assert done.result is None
    assert thread.structured_content is not None
    assert thread.structured_content["threads"][0]["status"] == "cancelled"


async def test_a_kept_result_stays_after_the_thread_goes_on(tmp_path: Path) -> None:
    """A task nobody read yet, and its thread goes on: chat_with_agent keeps the task's
    end first; a turn started outside MCP (the CLI, on the same database) makes the task
    say what happened instead."""
    cfg, db = config(tmp_path), tmp_path / "t.db"
    first_gate, first = gated("first answer")
    second_gate, second = gated("second answer")
    llm = ScriptedLLM(first, "more, over MCP", second)
    async with serving(cfg, db, llm) as url, tasks_client(url) as client, Client(url) as plain:
        over_mcp = await tc.create(
            client, "chat_with_agent", agent="helper", message="a", wait_seconds=0
        )
        tid = await _only_thread(plain)
        first_gate.set()
        await plain.call_tool("get_thread", {"thread_id": tid, "wait_seconds": 10})
        await plain.call_tool(
            "chat_with_agent", {"agent": "helper", "message": "more", "thread_id": tid}
        )
        kept = await tc.get(client, over_mcp.task_id)

        outside = await tc.create(
            client, "chat_with_agent", agent="helper", message="b", wait_seconds=0
        )
        other = next(t for t in await _threads(plain) if t != tid)
        second_gate.set()
        await plain.call_tool("get_thread", {"thread_id": other, "wait_seconds": 10})
        cli = ScriptedLLM("from the command line")
        async with open_threads(cfg, db_path=db, llms={"main": cli}, recover=False) as threads:
            await threads.chat(owner="local", agent="helper", message="c", thread_id=other, wait=10)
        superseded = await tc.get(client, outside.task_id)
    assert kept.status == "completed"
    assert kept.result is not None
    assert kept.result["structuredContent"]["reply"] == "first answer"
    assert superseded.status == "completed"
    assert superseded.result == {
        "content": [
            {
                "type": "text",
                "text": f"thread {other!r} went on with a new message before this task's"
                f" result was read; get_thread(thread_id={other!r}) shows the thread, and"
                f" the resource agents-mcp://threads/{other} its whole transcript, this"
                " turn included",
            }
        ],
        "isError": True,
        "resultType": "complete",
    }


async def _threads(client: Client[Any]) -> list[str]:
    listed = await client.call_tool("list_threads", {})
    assert listed.structured_content is not None
    return [t["thread_id"] for t in listed.structured_content["threads"]]


async def _only_thread(client: Client[Any]) -> str:
    [tid] = await _threads(client)
    return tid


async def test_a_task_from_python_outlives_a_restart(tmp_path: Path, log: Path) -> None:
    cfg, db = config(tmp_path), tmp_path / "t.db"
    async with serving(cfg, db, ScriptedLLM(WRITE)) as url, tasks_client(url) as client:
        made = await tc.create(
            client, "chat_with_agent", agent="helper", message="n", wait_seconds=10
        )
    async with serving(cfg, db, ScriptedLLM("saved")) as url, tasks_client(url) as client:
        [key] = (await tc.get(client, made.task_id)).input_requests or {}
        await tc.update(client, made.task_id, {key: APPROVE})
        done = await until(client, made.task_id, "completed")
    assert done.result is not None
    assert done.result["structuredContent"]["reply"] == "saved"
    assert len(executed(log)) == 1


async def test_a_task_from_python_on_two_replicas(
    tmp_path: Path, log: Path, pg_cluster: str
) -> None:
    from tests.postgres import fresh_database

    cfg, db = config(tmp_path), await fresh_database(pg_cluster)
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(serving(cfg, db, ScriptedLLM(WRITE)))
        two = await stack.enter_async_context(serving(cfg, db, ScriptedLLM("saved")))
        first = await stack.enter_async_context(tasks_client(one))
        second = await stack.enter_async_context(tasks_client(two))
        made = await tc.create(
            first, "chat_with_agent", agent="helper", message="n", wait_seconds=10
        )
        [key] = (await tc.get(second, made.task_id)).input_requests or {}
        await tc.update(second, made.task_id, {key: APPROVE})
        done = await until(first, made.task_id, "completed")
    assert done.result is not None
    assert done.result["structuredContent"]["reply"] == "saved"
    assert len(executed(log)) == 1


async def test_another_owners_task_is_unknown(tmp_path: Path) -> None:
    tokens = {"alice": {"token": "alice-token"}, "bob": {"token": "bob-token"}}
    cfg = config(tmp_path, tokens=tokens)
    async with (
        serving(cfg, tmp_path / "t.db", ScriptedLLM(WRITE)) as url,
        tasks_client(url, "alice-token") as alice,
        tasks_client(url, "bob-token") as bob,
    ):
        made = await tc.create(
            alice, "chat_with_agent", agent="helper", message="n", wait_seconds=10
        )
        refused = []
        for attempt in (
            tc.get(bob, made.task_id),
            tc.update(bob, made.task_id, {}),
            tc.cancel(bob, made.task_id),
            tc.get(alice, "task_unknown"),
        ):
            with pytest.raises(MCPError) as error:
                await attempt
            refused.append((error.value.error.code, error.value.error.message))
        mine = await tc.get(alice, made.task_id)
    assert refused == [(-32602, "Failed to retrieve task: Task not found")] * 4
    assert mine.status == "input_required"
