"""U+0000 in any text that reaches the store, through a real MCP client, on SQLite and on
PostgreSQL (whose ``text`` cannot hold it): nothing fails, and every NUL comes back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from agents_mcp.messages import LLMResponse, Usage
from agents_mcp.server.app import create_server
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config
from tests.downstream_server import make_server

pytestmark = pytest.mark.anyio

NUL = "a\x00b"
AGENTS: dict[str, Any] = {
    "helper": {
        "description": "Helps",
        "model": "main",
        "servers": ["notes"],
        "require_approval": "never",
    },
    "careful": {
        "description": "Asks first",
        "model": "main",
        "servers": ["notes"],
        "require_approval": "always",
    },
}


async def test_nul_in_messages_replies_results_arguments_and_tool_names(
    tmp_path: Path, db_url: str
) -> None:
    llm = ScriptedLLM(
        [
            Call("notes__echo", {"text": f"say {NUL}"}, id="e1"),
            Call(f"notes__ec{NUL}ho", {}, id="bad"),  # a tool name the model made up
        ],
        LLMResponse(
            content=f"Reply {NUL}",
            reasoning=f"thinking {NUL}",
            usage=Usage(input_tokens=1, output_tokens=1),
            finish_reason="stop",
        ),
        Call("notes__echo", {"text": f"write {NUL}"}, id="w1"),
        "Done.",
    )
    cfg = make_config(tmp_path, agents=AGENTS, server={"db": db_url})
    mcp = create_server(cfg, llms={"main": llm}, transports={"notes": make_server("notes")})
    async with Client(mcp, mode="auto") as client:
        first = await call(client, "chat_with_agent", agent="helper", message=f"Hello {NUL}")
        assert (first["status"], first["reply"]) == ("completed", f"Reply {NUL}")
        page = await call(client, "get_thread", thread_id=first["thread_id"], include_messages=True)
        texts = json.dumps(page["messages"])
        for stored in (f"Hello {NUL}", f"notes echo: say {NUL}", f"Reply {NUL}", f"ec{NUL}ho"):
            assert json.dumps(stored)[1:-1] in texts, stored
        with anyio.fail_after(30):
            transcript = await client.read_resource(f"agents-mcp://threads/{first['thread_id']}")
        assert f"notes echo: say {NUL}" in transcript[0].text

        # An approved call whose arguments and result hold a NUL: its result is kept.
        paused = await call(client, "chat_with_agent", agent="careful", message="write")
        (pending,) = paused["pending_approvals"]
        assert pending["arguments"] == {"text": f"write {NUL}"}
        done = await call(
            client, "approve_call", thread_id=paused["thread_id"], call_id="w1", approve=True
        )
        assert (done["status"], done["reply"]) == ("completed", "Done.")
        page = await call(
            client, "get_thread", thread_id=paused["thread_id"], include_messages=True
        )
    (result,) = [m for m in page["messages"] if m["role"] == "tool"]
    assert result["content"] == f"notes echo: write {NUL}"
    assert "may have run" not in json.dumps(page)
