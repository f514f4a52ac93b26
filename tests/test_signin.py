"""Sub-agents acting as the person who asked: sign-ins to an OAuth-protected downstream
server, per owner, end to end with real processes.

agents-mcp runs as ``agents-mcp serve --transport http`` (each owner with a bearer
token of their own); the downstream server is ``tests/oauth_server.py``, fastmcp behind
its in-memory OAuth authorization server, recording whose token each call carried; the
model is scripted behind a Chat Completions fake. The "browser" follows the sign-in
link the way a browser would: the authorization server redirects to agents-mcp's
``/oauth/callback`` with a code.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from cryptography.fernet import Fernet, InvalidToken
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse, ToolCall, Usage
from agents_mcp.testing.chat_server import FakeChatServer
from tests.oauth_helpers import Protected, consent, protected_server
from tests.processes import agents_mcp_http_process, free_port, write_config

pytestmark = pytest.mark.anyio

BOUND = 120.0
TOKENS = {"alice": "alice-" + "a" * 32, "bob": "bob-" + "b" * 32}


class Model:
    """Sends the caller's message with ``prot__send``, then reports what it got."""

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        last = request.messages[-1]
        if last.role == "user":
            args = json.dumps({"text": last.content})
            call = ToolCall(id="s1", name="prot__send", arguments=args)
            return LLMResponse(content=None, tool_calls=(call,), usage=Usage())
        return LLMResponse(content=f"done: {last.content}", usage=Usage())


@dataclass
class Setup:
    protected: Protected
    config: Path
    db: str
    env: dict[str, str]
    stack: AsyncExitStack

    async def serve(self, port: int | None = None, *, extra: dict[str, str] | None = None) -> str:
        """One more agents-mcp process on the setup's database; returns its MCP URL."""
        port = port or free_port()
        env = {**self.env, **(extra or {})}
        await self.stack.enter_async_context(
            agents_mcp_http_process(self.config, port=port, db=self.db, env=env)
        )
        return f"http://127.0.0.1:{port}/mcp"


@asynccontextmanager
async def setup(
    tmp_path: Path, db: str, *, public_url: str | None = None, protocol: str = "legacy"
) -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        protected = stack.enter_context(protected_server(tmp_path))
        model_url = await stack.enter_async_context(FakeChatServer(Model()).serve())
        server: dict[str, Any] = {
            "tokens": {owner: {"token": token} for owner, token in TOKENS.items()}
        }
        if public_url is not None:
            server["public_url"] = public_url
        config = write_config(
            tmp_path / "agents.json",
            {
                "mcpServers": {
                    "prot": {"url": protected.url, "auth": "oauth", "protocol": protocol}
                },
                "models": {"main": {"base_url": model_url, "model": "m"}},
                "agents": {
                    "messenger": {
                        "description": "Sends messages as you",
                        "model": "main",
                        "servers": ["prot"],
                        "require_approval": "never",
                    }
                },
                "server": server,
            },
        )
        env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
        env["AGENTS_MCP_SECRET_KEY"] = KEY
        yield Setup(protected, config, db, env, stack)


KEY = Fernet.generate_key().decode()


def client(url: str, owner: str) -> Client[Any]:
    transport = StreamableHttpTransport(url, auth=TOKENS[owner])
    return Client(transport, timeout=BOUND)


async def tool(c: Client[Any], name: str, **args: Any) -> dict[str, Any]:
    with anyio.fail_after(BOUND):
        result = await c.call_tool(name, args, raise_on_error=False)
    assert result.structured_content is not None, result.content
    return result.structured_content


async def sign_in(s: Setup, result: dict[str, Any], owner: str) -> str:
    """The owner opens the link of ``result``'s sign-in: returns the page agents-mcp shows."""
    [item] = result["pending_authorizations"]
    location = await consent(s.protected, item["url"], owner)
    async with httpx2.AsyncClient() as http:
        page = await http.get(location)
    assert page.status_code == 200, page.text
    return page.text


async def test_alice_and_bob_each_sign_in_and_act_as_themselves(tmp_path: Path) -> None:
    async with setup(tmp_path, str(tmp_path / "threads.db")) as s:
        url = await s.serve()
        async with client(url, "alice") as alice, client(url, "bob") as bob:
            # Alice first: nobody signed in, so even the tool list waits for her.
            paused_a = await tool(alice, "chat_with_agent", agent="messenger", message="hi from A")
            assert s.protected.calls() == []
            shown = await sign_in(s, paused_a, "alice")
            done_a = await tool(alice, "get_thread", thread_id=paused_a["thread_id"], wait_seconds=60)
            # Bob: the tools are known, his call itself waits for his sign-in.
            paused_b = await tool(bob, "chat_with_agent", agent="messenger", message="hi from B")
            listed = await tool(bob, "list_threads", status="needs_approval")
            await sign_in(s, paused_b, "bob")
            done_b = await tool(bob, "get_thread", thread_id=paused_b["thread_id"], wait_seconds=60)
            # Each goes on with their own token, without asking again.
            again_a = await tool(
                alice, "chat_with_agent", agent="messenger", message="again A",
                thread_id=paused_a["thread_id"],
            )  # fmt: skip
            refused = await bob.call_tool(
                "get_thread", {"thread_id": paused_a["thread_id"]}, raise_on_error=False
            )
    assert paused_a["status"] == "needs_approval" and paused_a["pending_approvals"] == []
    [item_a] = paused_a["pending_authorizations"]
    assert (item_a["server"], item_a["tool"]) == ("prot", None)
    assert item_a["url"].startswith(s.protected.base + "/authorize?")
    assert "Signed in to prot" in shown
    assert (done_a["status"], done_a["reply"]) == ("completed", "done: sent 'hi from A' as alice")
    [item_b] = paused_b["pending_authorizations"]
    assert (item_b["server"], item_b["tool"]) == ("prot", "send")
    [waiting] = listed["threads"]
    assert waiting["pending_authorizations"][0]["url"] == item_b["url"]
    assert (done_b["status"], done_b["reply"]) == ("completed", "done: sent 'hi from B' as bob")
    assert again_a["status"] == "completed"
    assert refused.is_error and "not found" in str(refused.content)
    assert [(c["tool"], c["subject"]) for c in s.protected.calls()] == [
        ("send", "alice"),
        ("send", "bob"),
        ("send", "alice"),
    ]
