"""What the calling model reads: each status's next step, failed runs as errors, schemas.

Through a real MCP client (fastmcp's, in memory) in both protocol eras.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from inline_snapshot import snapshot

from agents_mcp.errors import LLMError
from agents_mcp.messages import LLMRequest
from agents_mcp.server.app import create_server
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import make_config
from tests.downstream_server import make_server
from tests.processes import ROOT, agents_mcp_http, free_port, write_config

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]


@asynccontextmanager
async def connect(
    tmp_path: Path, llm: ScriptedLLM, *, mode: str = "legacy", policy: str = "never"
) -> AsyncIterator[Client[Any]]:
    agents = {
        "helper": {
            "description": "d",
            "model": "main",
            "servers": ["notes"],
            "require_approval": policy,
        }
    }
    cfg = make_config(tmp_path, agents=agents)
    mcp = create_server(
        cfg,
        db_path=tmp_path / "threads.db",
        llms={"main": llm},
        transports={"notes": make_server("notes")},
    )
    async with Client(mcp, mode=mode) as client:
        yield client


async def raw(client: Client[Any], tool: str, **args: Any) -> Any:
    """The whole result, error or not."""
    with anyio.fail_after(20):
        return await client.call_tool(tool, args, raise_on_error=False)


def footer(result: Any) -> str:
    text: str = result.content[0].text
    tid = result.structured_content["thread_id"]
    return text.splitlines()[-1].replace(tid, "<t>")


@pytest.mark.parametrize("mode", MODES)
async def test_each_status_ends_with_a_next_step_that_works(tmp_path: Path, mode: str) -> None:
    started, release = anyio.Event(), anyio.Event()

    async def slow(request: LLMRequest) -> str:
        started.set()
        await release.wait()
        return "late"

    llm = ScriptedLLM("hello", slow, Call("notes__write_note", {"title": "t", "body": "b"}))
    async with connect(tmp_path, llm, mode=mode, policy="always") as client:
        done = await raw(client, "chat_with_agent", agent="helper", message="hi")
        tid = done.structured_content["thread_id"]
        running = await raw(
            client, "chat_with_agent", agent="helper", message="x", thread_id=tid, wait_seconds=0
        )
        with anyio.fail_after(5):
            await started.wait()
        # What the footer says of a running thread is what works: a new message is refused.
        with pytest.raises(ToolError, match="is running; call get_thread"):
            await client.call_tool(
                "chat_with_agent", {"agent": "helper", "message": "y", "thread_id": tid}
            )
        release.set()
        await raw(client, "get_thread", thread_id=tid, wait_seconds=10)
        paused = await raw(client, "chat_with_agent", agent="helper", message="z", thread_id=tid)
        cancelled = await raw(client, "cancel_run", thread_id=tid)
    statuses = [r.structured_content["status"] for r in (done, running, paused, cancelled)]
    assert statuses == ["completed", "running", "needs_approval", "cancelled"]
    assert [footer(r) for r in (done, running, paused, cancelled)] == snapshot(
        [
            "[thread_id: <t> · agent: helper · status: completed] To continue this conversation, call chat_with_agent with thread_id='<t>'.",
            "[thread_id: <t> · agent: helper · status: running] Next: get_thread(thread_id='<t>', wait_seconds=30). A new message is refused while the run goes on; cancel_run stops it.",
            "[thread_id: <t> · agent: helper · status: needs_approval] Next: approve_call for each pending call. A new message is refused until they are decided; cancel_run drops them.",
            "[thread_id: <t> · agent: helper · status: cancelled] To continue this conversation, call chat_with_agent with thread_id='<t>'.",
        ]
    )
    # A cancelled result says what the cancel stopped.
    call_id = paused.structured_content["pending_approvals"][0]["call_id"]
    assert cancelled.content[0].text.replace(call_id, "<call>").splitlines()[:2] == snapshot(
        [
            "The run was cancelled (cancel_run); the steps it finished are kept.",
            "- notes__write_note (call <call>): did not run",
        ]
    )
    assert not any(r.is_error for r in (done, running, paused, cancelled))


@pytest.mark.parametrize("mode", MODES)
async def test_a_failed_run_is_an_error_result_that_keeps_its_thread(
    tmp_path: Path, mode: str
) -> None:
    llm = ScriptedLLM(LLMError("LLM request failed: HTTP 401: bad key", status=401), "ok now")
    async with connect(tmp_path, llm, mode=mode) as client:
        failed = await raw(client, "chat_with_agent", agent="helper", message="hi")
        tid = failed.structured_content["thread_id"]
        looked = await raw(client, "get_thread", thread_id=tid)
        again = await raw(client, "chat_with_agent", agent="helper", message="again", thread_id=tid)
    assert (failed.is_error, looked.is_error, again.is_error) == (True, True, False)
    assert failed.meta["agents-mcp/thread_id"] == tid
    assert failed.structured_content["error"] == {
        "type": "llm_error",
        "message": "LLM request failed: HTTP 401: bad key",
    }
    assert failed.content[0].text.replace(tid, "<t>") == snapshot(
        """\
The run failed (llm_error): LLM request failed: HTTP 401: bad key
[thread_id: <t> · agent: helper · status: failed] To retry or go on, call chat_with_agent with thread_id='<t>'.\
"""
    )
    assert again.structured_content["reply"] == "ok now"


@pytest.mark.parametrize("mode", MODES)
async def test_every_argument_default_passes_its_own_schema(tmp_path: Path, mode: str) -> None:
    async with connect(tmp_path, ScriptedLLM(), mode=mode) as client:
        tools = await client.list_tools()
        listed = await raw(client, "list_threads", agent=None)
        refused = await raw(client, "list_threads", agent="nobody")
    checked = 0
    for tool in tools:
        for prop in tool.input_schema["properties"].values():
            if "default" in prop:
                jsonschema.validate(prop["default"], prop)  # raises when it does not
                checked += 1
    assert checked >= 10
    agent = next(t for t in tools if t.name == "list_threads").input_schema["properties"]["agent"]
    assert agent["anyOf"] == [{"enum": ["helper"], "type": "string"}, {"type": "null"}]
    assert listed.structured_content == {"threads": [], "next_cursor": None}
    assert refused.is_error


@pytest.mark.parametrize("mode", MODES)
async def test_approving_a_call_that_cancel_run_dropped_says_it_was_cancelled(
    tmp_path: Path, mode: str
) -> None:
    llm = ScriptedLLM(Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"))
    async with connect(tmp_path, llm, mode=mode, policy="always") as client:
        paused = await raw(client, "chat_with_agent", agent="helper", message="write")
        tid = paused.structured_content["thread_id"]
        await raw(client, "cancel_run", thread_id=tid)
        late = await raw(client, "approve_call", thread_id=tid, call_id="w1", approve=True)
    assert late.is_error
    assert late.structured_content is None
    assert late.content[0].text == snapshot(
        "call 'w1' was cancelled by cancel_run, so it will never run; send the thread a new message to continue"
    )


# -- the official TypeScript SDK client ------------------------------------------------------

SDK_CLIENT = ROOT / "tests" / "browser" / "sdk_client.mjs"


def sdk_missing() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs)")
    if not (ROOT / "tests" / "browser" / "node_modules" / "@modelcontextprotocol").is_dir():
        missing.append("the npm packages (npm ci --prefix tests/browser)")
    return missing


async def test_the_typescript_sdk_accepts_every_result(tmp_path: Path) -> None:
    """The SDK validates structuredContent against outputSchema and throws if it does not
    match; the script checks each argument default against its schema with Ajv too."""
    if missing := sdk_missing():
        if os.environ.get("AGENTS_MCP_SKIP_BROWSER") == "1" and not os.environ.get("CI"):
            pytest.skip(f"AGENTS_MCP_SKIP_BROWSER=1 and missing: {', '.join(missing)}")
        pytest.fail(f"this test needs {', '.join(missing)}; .ci/run installs them")
    config = write_config(
        tmp_path / "agents.json",
        {
            "mcpServers": {
                "ghost": {"command": "no-such-program-agents-mcp"},
                "clock": {"command": "no-such-program-agents-mcp", "required": True},
            },
            "models": {"demo": {"provider": "demo"}},
            "agents": {
                name: {"description": "d", "model": "demo", "servers": servers}
                for name, servers in (("demo", []), ("loose", ["ghost"]), ("strict", ["clock"]))
            },
        },
    )
    async with agents_mcp_http(config, tmp_path / "t.db", port=free_port()) as url:
        with anyio.fail_after(60):
            done = await anyio.run_process(["node", str(SDK_CLIENT), url], check=False)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["badDefaults"] == []
    calls = report["calls"]
    assert {k: (v["isError"], v["structured"].get("status")) for k, v in calls.items()} == {
        "completed": (False, "completed"),
        "get_thread": (False, "completed"),
        "unavailable": (False, "completed"),
        "failed": (True, "failed"),
        "list_threads": (False, None),
        "list_threads_null": (False, None),
        "cancel_run": (False, "completed"),
    }
    assert [u["server"] for u in calls["unavailable"]["structured"]["unavailable"]] == ["ghost"]
    assert calls["failed"]["structured"]["error"]["type"] == "downstream_unavailable"
