"""Approvals asked inline on 2026-07-28 connections (input-required results): the official
TypeScript SDK v2 client and fastmcp's client answer them inside one tool call; clients
without elicitation get today's structured result; the sealed state resumes on any
replica and nowhere else."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.elicitation import ElicitResult
from mcp.shared.exceptions import MCPError
from mcp_types import InputRequiredResult

from agents_mcp.config import Config
from agents_mcp.testing import Call, ScriptedLLM
from tests import tasks_client as tc
from tests.conftest import make_config
from tests.downstream_server import make_server
from tests.processes import ROOT, agents_mcp_in_process
from tests.server.test_results import sdk_missing

pytestmark = pytest.mark.anyio

SDK2 = ROOT / "tests" / "browser" / "sdk2_client.mjs"
WRITE = Call("notes__write_note", {"title": "t", "body": "b"}, id="w1")
APPROVE = {"action": "accept", "content": {"decision": "approve"}}
QUESTION = (
    """Agent 'helper' wants to call write_note on server 'notes' with"""
    """ {"title": "t", "body": "b"}. Allow it?"""
)
CHAT = {"agent": "helper", "message": "note"}


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "downstream.jsonl"
    monkeypatch.setenv("DOWNSTREAM_LOG", str(path))
    return path


def executed(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def config(tmp_path: Path, prompt: str = "auto", **server: Any) -> Config:
    agents = {"helper": {"description": "d", "model": "main", "servers": ["notes"]}}
    return make_config(tmp_path, agents=agents, server={"approval_prompt": prompt, **server})


@asynccontextmanager
async def serving(cfg: Config, db: Path | str, llm: ScriptedLLM) -> AsyncIterator[str]:
    async with agents_mcp_in_process(
        cfg,
        db,
        llms={"main": llm},
        transports={"notes": make_server("notes")},
    ) as url:
        yield url


async def sdk2(url: str, options: dict[str, Any]) -> dict[str, Any]:
    if missing := sdk_missing():
        if os.environ.get("AGENTS_MCP_SKIP_BROWSER") == "1" and not os.environ.get("CI"):
            pytest.skip(f"AGENTS_MCP_SKIP_BROWSER=1 and missing: {', '.join(missing)}")
        pytest.fail(f"this test needs {', '.join(missing)}; bash tests/browser/setup.sh")
    with anyio.fail_after(60):
        done = await anyio.run_process(["node", str(SDK2), url, json.dumps(options)], check=False)
    assert done.returncode == 0, done.stderr.decode()
    line: dict[str, Any] = json.loads(done.stdout)
    return line


async def test_the_typescript_sdk_answers_an_approval_in_one_call(
    tmp_path: Path, log: Path
) -> None:
    llm = ScriptedLLM(WRITE, "saved")
    async with serving(config(tmp_path), tmp_path / "t.db", llm) as url:
        got = await sdk2(url, {"tool": "chat_with_agent", "arguments": CHAT, "elicit": APPROVE})
    assert got["era"] == "modern"
    assert got["result"]["structuredContent"]["status"] == "completed"
    assert got["result"]["structuredContent"]["reply"] == "saved"
    [asked] = got["asked"]
    assert asked["message"] == QUESTION
    assert len(executed(log)) == 1


async def test_a_client_without_elicitation_gets_todays_result(tmp_path: Path, log: Path) -> None:
    llm = ScriptedLLM(WRITE, WRITE)
    async with serving(config(tmp_path), tmp_path / "t.db", llm) as url:
        node = await sdk2(url, {"tool": "chat_with_agent", "arguments": CHAT})
        async with Client(url, mode="2026-07-28") as client:
            python = await client.call_tool("chat_with_agent", CHAT)
    assert node["result"]["structuredContent"]["status"] == "needs_approval"
    assert node["asked"] == []
    assert python.structured_content is not None
    assert python.structured_content["status"] == "needs_approval"
    assert executed(log) == []


@pytest.mark.parametrize(
    ("answer", "status", "runs", "refusal"),
    [
        (APPROVE, "completed", 1, None),
        (
            {"action": "accept", "content": {"decision": "deny", "reason": "no"}},
            "completed",
            0,
            "The user refused this call: no. Do not retry it without asking the user.",
        ),
        (
            {"action": "decline"},
            "completed",
            0,
            "The user refused this call: declined in the client. Do not retry it without"
            " asking the user.",
        ),
        ({"action": "cancel"}, "needs_approval", 0, None),
    ],
)
async def test_fastmcps_client_answers_inline(
    tmp_path: Path,
    log: Path,
    answer: dict[str, Any],
    status: str,
    runs: int,
    refusal: str | None,
) -> None:
    """A dismissed question (cancel) leaves the call pending and is not asked again: the
    caller gets the structured result, as on handshake connections."""
    asked: list[str] = []

    async def handler(message: str, response_type: Any, params: Any, context: Any) -> Any:
        asked.append(message)
        return ElicitResult(**answer)

    llm = ScriptedLLM(WRITE, "done")
    async with (
        serving(config(tmp_path), tmp_path / "t.db", llm) as url,
        Client(url, mode="2026-07-28", elicitation_handler=handler) as client,
    ):
        result = await client.call_tool("chat_with_agent", CHAT)
    assert result.structured_content is not None
    assert result.structured_content["status"] == status
    assert asked == [QUESTION]
    assert len(executed(log)) == runs
    if refusal is not None:
        assert [m.content for m in llm.requests[1].messages if m.role == "tool"] == [refusal]


async def test_structured_approvals_are_not_asked_inline(tmp_path: Path) -> None:
    async def handler(message: str, response_type: Any, params: Any, context: Any) -> Any:
        raise AssertionError("asked")

    async with (
        serving(config(tmp_path, "structured"), tmp_path / "t.db", ScriptedLLM(WRITE)) as url,
        Client(url, mode="2026-07-28", elicitation_handler=handler) as client,
    ):
        result = await client.call_tool("chat_with_agent", CHAT)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "needs_approval"


async def test_another_agents_mcp_is_not_asked(tmp_path: Path, log: Path) -> None:
    """A caller that sends its delegation chain (another agents-mcp) relays approvals with
    their exact arguments: it gets the structured result, not an input-required one."""

    async def handler(message: str, response_type: Any, params: Any, context: Any) -> Any:
        raise AssertionError("asked")

    chain = {"agents-mcp/chain": [{"instance": "am_elsewhere", "agent": "planner"}]}
    async with (
        serving(config(tmp_path), tmp_path / "t.db", ScriptedLLM(WRITE)) as url,
        Client(url, mode="2026-07-28", elicitation_handler=handler) as client,
    ):
        result = await client.call_tool("chat_with_agent", CHAT, meta=chain)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "needs_approval"
    assert executed(log) == []


async def test_a_client_of_tasks_gets_a_task_not_a_question(tmp_path: Path) -> None:
    async def handler(message: str, response_type: Any, params: Any, context: Any) -> Any:
        raise AssertionError("asked")

    async with (
        serving(config(tmp_path), tmp_path / "t.db", ScriptedLLM(WRITE)) as url,
        Client(
            url, mode="2026-07-28", elicitation_handler=handler, extensions=[tc.TasksClient()]
        ) as client,
    ):
        made = await tc.create(client, "chat_with_agent", **CHAT)
    assert isinstance(made, tc.CreatedTask)
    assert made.status == "input_required"


async def unused(message: str, response_type: Any, params: Any, context: Any) -> Any:
    raise AssertionError("the test answers by hand")


def manual(url: str, token: str | None = None) -> Client[Any]:
    """A client that declares elicitation and answers by hand (``session.call_tool``)."""
    return Client(url, mode="2026-07-28", elicitation_handler=unused, auth=token)


async def first_leg(client: Client[Any]) -> InputRequiredResult:
    leg = await client.session.call_tool("chat_with_agent", CHAT, allow_input_required=True)
    assert isinstance(leg, InputRequiredResult)
    return leg


async def test_any_replica_resumes_the_state(tmp_path: Path, log: Path, pg_cluster: str) -> None:
    """Asked by one replica, answered on the other: the key is the database's."""
    from tests.postgres import fresh_database

    cfg, db = config(tmp_path), await fresh_database(pg_cluster)
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(serving(cfg, db, ScriptedLLM(WRITE)))
        two = await stack.enter_async_context(serving(cfg, db, ScriptedLLM("saved")))
        first = await stack.enter_async_context(manual(one))
        second = await stack.enter_async_context(manual(two))
        leg = await first_leg(first)
        assert leg.input_requests is not None
        [key] = leg.input_requests
        done = await second.session.call_tool(
            "chat_with_agent",
            CHAT,
            input_responses={key: ElicitResult(**APPROVE)},
            request_state=leg.request_state,
        )
    assert done.structured_content is not None
    assert done.structured_content["status"] == "completed"
    assert len(executed(log)) == 1


async def test_the_state_is_the_callers_and_sealed(tmp_path: Path, log: Path) -> None:
    tokens = {"alice": {"token": "alice-token"}, "bob": {"token": "bob-token"}}
    cfg = config(tmp_path, tokens=tokens)
    async with (
        serving(cfg, tmp_path / "t.db", ScriptedLLM(WRITE)) as url,
        manual(url, "alice-token") as alice,
        manual(url, "bob-token") as bob,
    ):
        leg = await first_leg(alice)
        assert leg.input_requests is not None and leg.request_state is not None
        [key] = leg.input_requests
        answers = {key: ElicitResult(**APPROVE)}
        refused = []
        for who, state in ((bob, leg.request_state), (alice, leg.request_state[:-2] + "xx")):
            with pytest.raises(MCPError) as error:
                await who.session.call_tool(
                    "chat_with_agent",
                    CHAT,
                    input_responses=answers,
                    request_state=state,
                )
            refused.append((error.value.error.code, error.value.error.message))
    assert refused == [(-32602, "Invalid or expired requestState")] * 2
    assert executed(log) == []
