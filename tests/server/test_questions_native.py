"""A downstream server's question asked the 2026-07-28 way: input-required results and
MCP tasks in ``input_required``.

agents-mcp over real HTTP in this process, its model scripted; the downstream server is
the real test server (``--extra``: its ``ask`` tool elicits) as a subprocess over stdio.
Real clients: ``fastmcp.Client`` pinned to 2026-07-28 with an elicitation handler, the
official TypeScript SDK v2 client, and the tasks client of ``tests/tasks_client.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.elicitation import ElicitResult
from mcp_types import InputRequiredResult

from agents_mcp.testing import ScriptedLLM
from tests import tasks_client as tc
from tests.processes import agents_mcp_in_process
from tests.server.test_mrtr import sdk2
from tests.server.test_questions import ASK, ERAS, helper, notes, results

pytestmark = pytest.mark.anyio

CHAT = {"agent": "helper", "message": "go"}
ASKED = "notes__ask asks: Which colour?"


@pytest.mark.parametrize("protocol", ERAS)
async def test_fastmcps_client_is_asked_and_its_one_call_completes(
    tmp_path: Path, protocol: str
) -> None:
    """``protocol`` is the downstream server's era: the question is relayed either way."""
    asked: list[tuple[str, Any]] = []

    async def handler(message: str, response_type: Any, params: Any, context: Any) -> Any:
        asked.append((message, params.requested_schema))
        return ElicitResult(action="accept", content={"value": "purple"})

    llm = ScriptedLLM(ASK, "done")
    with notes("stdio", protocol) as server:
        async with (
            agents_mcp_in_process(
                helper(tmp_path, server), tmp_path / "t.db", llms={"main": llm}
            ) as url,
            Client(url, mode="2026-07-28", elicitation_handler=handler) as client,
        ):
            with anyio.fail_after(60):
                result = await client.call_tool("chat_with_agent", CHAT)
    assert result.structured_content is not None
    assert (result.structured_content["status"], result.structured_content["reply"]) == (
        "completed",
        "done",
    )
    [(message, schema)] = asked
    assert message == ASKED
    assert schema["properties"]["value"]["type"] == "string"
    assert results(llm) == ["asked 'Which colour?': accept purple"]


@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_the_retry_carries_declines_and_cancels_to_the_tool(
    tmp_path: Path, action: str
) -> None:
    """By hand: the first leg is an input-required result naming the question; the retry
    with the answer finishes the call; a wrong answer is skipped (the question stays)."""

    async def unused(message: str, response_type: Any, params: Any, context: Any) -> Any:
        raise AssertionError("the test answers by hand")

    llm = ScriptedLLM(ASK, "done")
    with notes("stdio", "legacy") as server:
        async with (
            agents_mcp_in_process(
                helper(tmp_path, server), tmp_path / "t.db", llms={"main": llm}
            ) as url,
            Client(url, mode="2026-07-28", elicitation_handler=unused) as client,
        ):
            with anyio.fail_after(60):
                leg = await client.session.call_tool(
                    "chat_with_agent", CHAT, allow_input_required=True
                )
                assert isinstance(leg, InputRequiredResult)
                [(key, request)] = (leg.input_requests or {}).items()
                wrong = await client.session.call_tool(
                    "chat_with_agent",
                    CHAT,
                    input_responses={key: ElicitResult(action="accept", content={"value": 3})},
                    request_state=leg.request_state,
                )
                done = await client.session.call_tool(
                    "chat_with_agent",
                    CHAT,
                    input_responses={key: ElicitResult(action=action)},
                    request_state=leg.request_state,
                )
    assert key.startswith("question:th_")
    assert request.model_dump(by_alias=True)["params"]["message"] == ASKED
    assert wrong.structured_content is not None
    assert wrong.structured_content["status"] == "running"
    [still] = wrong.structured_content["pending_questions"]
    assert key.endswith(f":{still['question_id']}")
    assert done.structured_content is not None
    assert done.structured_content["status"] == "completed"
    assert results(llm) == [f"asked 'Which colour?': {action} None"]


async def test_another_agents_mcp_gets_the_structured_result(tmp_path: Path) -> None:
    """A caller that sends its delegation chain relays questions durably: not asked."""

    async def unused(message: str, response_type: Any, params: Any, context: Any) -> Any:
        raise AssertionError("asked")

    chain = {"agents-mcp/chain": [{"instance": "am_elsewhere", "agent": "planner"}]}
    llm = ScriptedLLM(ASK, "done")
    with notes("stdio", "legacy") as server:
        async with (
            agents_mcp_in_process(
                helper(tmp_path, server), tmp_path / "t.db", llms={"main": llm}
            ) as url,
            Client(url, mode="2026-07-28", elicitation_handler=unused) as client,
        ):
            with anyio.fail_after(60):
                first = await client.call_tool("chat_with_agent", CHAT, meta=chain)
                assert first.structured_content is not None
                [q] = first.structured_content["pending_questions"]
                tid = first.structured_content["thread_id"]
                await client.call_tool(
                    "answer_question",
                    {"thread_id": tid, "question_id": q["question_id"], "action": "decline"},
                )
    assert first.structured_content["status"] == "running"
    assert results(llm) == ["asked 'Which colour?': decline None"]


async def test_the_typescript_sdk_v2_is_asked_in_one_call(tmp_path: Path) -> None:
    answer = {"action": "accept", "content": {"value": "teal"}}
    llm = ScriptedLLM(ASK, "done")
    with notes("stdio", "2026-07-28") as server:
        async with agents_mcp_in_process(
            helper(tmp_path, server), tmp_path / "t.db", llms={"main": llm}
        ) as url:
            got = await sdk2(url, {"tool": "chat_with_agent", "arguments": CHAT, "elicit": answer})
    assert got["era"] == "modern"
    assert got["result"]["structuredContent"]["status"] == "completed"
    [asked] = got["asked"]
    assert asked["message"] == ASKED
    assert results(llm) == ["asked 'Which colour?': accept teal"]


@pytest.mark.parametrize("action", ["accept", "decline"])
async def test_a_task_asks_the_question_and_update_answers_it(tmp_path: Path, action: str) -> None:
    llm = ScriptedLLM(ASK, "done")
    answer: dict[str, Any] = {"action": action}
    if action == "accept":
        answer["content"] = {"value": "green"}
    with notes("stdio", "legacy") as server:
        cfg = helper(tmp_path, server, task_poll_interval=0.05)
        async with (
            agents_mcp_in_process(cfg, tmp_path / "t.db", llms={"main": llm}) as url,
            Client(url, mode="2026-07-28", extensions=[tc.TasksClient()]) as client,
        ):
            made = await tc.create(client, "chat_with_agent", **CHAT, wait_seconds=10)
            waiting = await until(client, made.task_id, "input_required")
            [(key, request)] = (waiting.input_requests or {}).items()
            wrong = {key: {"action": "accept", "content": {"value": 3}}}
            await tc.update(client, made.task_id, wrong)  # does not fit: skipped
            still = await tc.get(client, made.task_id)
            await tc.update(client, made.task_id, {key: answer})
            done = await until(client, made.task_id, "completed")
    assert key.startswith("question:th_")
    assert request["params"]["message"] == ASKED
    assert request["params"]["requestedSchema"]["properties"]["value"]["type"] == "string"
    assert waiting.status_message == f"waiting for an answer · {ASKED}"
    assert (still.status, still.input_requests) == ("input_required", waiting.input_requests)
    assert done.result is not None
    assert done.result["structuredContent"]["reply"] == "done"
    value = "green" if action == "accept" else "None"
    assert results(llm) == [f"asked 'Which colour?': {action} {value}"]


async def until(client: Client[Any], task_id: str, *statuses: str) -> tc.DetailedTask:
    """Poll the task (as clients do) until it is in one of ``statuses``."""
    with anyio.fail_after(60):
        while True:
            task = await tc.get(client, task_id)
            if task.status in statuses:
                return task
            await anyio.sleep(0.05)
