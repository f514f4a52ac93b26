"""The official TypeScript SDK client meets a downstream server's question.

``agents-mcp serve --transport http`` in its own process, the model behind the Chat
Completions fake, and a real downstream FastMCP server (stdio or streamable HTTP, in
either protocol era) whose tool asks during the call. A client that declares
elicitation is asked inline, with the server's own form, and its one chat_with_agent
call completes; one that does not gets the question in the result (checked against the
outputSchema by the SDK) and answers it with answer_question.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.testing.chat_server import FakeChatServer
from tests.conftest import stdio_downstream
from tests.processes import ROOT, agents_mcp_http, free_port, http_downstream, write_config
from tests.server.test_results import sdk_missing

pytestmark = pytest.mark.anyio

SCRIPT = ROOT / "tests" / "browser" / "sdk_questions.mjs"


@contextmanager
def notes(how: str, protocol: str) -> Iterator[dict[str, Any]]:
    if how == "stdio":
        yield stdio_downstream("--extra", protocol=protocol)
    else:
        with http_downstream("notes", extra=True) as url:
            yield {"url": url, "protocol": protocol}


async def sdk(tmp_path: Path, server: dict[str, Any], mode: str, answer: dict[str, Any]) -> Any:
    """Run the script against a fresh agents-mcp; returns the model and the report."""
    if missing := sdk_missing():
        if os.environ.get("AGENTS_MCP_SKIP_BROWSER") == "1" and not os.environ.get("CI"):
            pytest.skip(f"AGENTS_MCP_SKIP_BROWSER=1 and missing: {', '.join(missing)}")
        pytest.fail(f"this test needs {', '.join(missing)}; .ci/run installs them")
    llm = ScriptedLLM(Call("notes__ask", {"question": "Which colour?"}, id="c1"), "done")
    fake = FakeChatServer(llm)
    async with fake.serve() as model_url:
        config = write_config(
            tmp_path / "agents.json",
            {
                "mcpServers": {"notes": server},
                "models": {"main": {"base_url": model_url, "model": "m"}},
                "agents": {
                    "helper": {
                        "description": "d",
                        "model": "main",
                        "servers": ["notes"],
                        "require_approval": "never",
                    }
                },
            },
        )
        env = {"XDG_STATE_HOME": str(tmp_path / "state")}
        async with agents_mcp_http(config, tmp_path / "t.db", port=free_port(), env=env) as url:
            with anyio.fail_after(90):
                done = await anyio.run_process(
                    ["node", str(SCRIPT), url, mode, json.dumps(answer)], check=False
                )
    assert done.returncode == 0, done.stderr.decode()
    return fake, json.loads(done.stdout)


def tool_results(fake: FakeChatServer) -> list[str]:
    return [m["content"] for m in fake.requests[-1]["messages"] if m["role"] == "tool"]


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("how", ["stdio", "http"])
async def test_the_typescript_sdk_is_asked_inline_and_its_one_call_completes(
    tmp_path: Path, how: str, protocol: str
) -> None:
    answer = {"action": "accept", "content": {"value": "purple"}}
    with notes(how, protocol) as server:
        fake, report = await sdk(tmp_path, server, "inline", answer)
    ((message, schema),) = [(a["message"], a["schema"]) for a in report["asked"]]
    assert message == "notes__ask asks: Which colour?"
    assert schema["properties"]["value"]["type"] == "string"
    (chat,) = report["calls"]
    assert (chat["isError"], chat["structured"]["status"]) == (False, "completed")
    assert tool_results(fake) == ["asked 'Which colour?': accept purple"]


@pytest.mark.parametrize("action", ["accept", "decline"])
async def test_the_typescript_sdk_without_elicitation_answers_with_the_tool(
    tmp_path: Path, action: str
) -> None:
    answer: dict[str, Any] = {"action": action}
    if action == "accept":
        answer["content"] = {"value": "orange"}
    with notes("stdio", "legacy") as server:
        fake, report = await sdk(tmp_path, server, "tool", answer)
    assert report["asked"] == []
    chat, answered = report["calls"]
    (question,) = chat["structured"]["pending_questions"]  # valid against the outputSchema
    assert (chat["structured"]["status"], question["message"]) == ("running", "Which colour?")
    assert answered["structured"]["status"] == "completed"
    value = "orange" if action == "accept" else "None"
    assert tool_results(fake) == [f"asked 'Which colour?': {action} {value}"]
