"""The thread view outside a chat: ``/threads/<id>`` and its JSON endpoint, with the owner
checks of ``/mcp`` (in process on loopback, and a real server with tokens off loopback)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from agents_mcp.server.app import create_server
from agents_mcp.server.ui import thread_html
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import DOWNSTREAM, make_config
from tests.downstream_server import make_server
from tests.processes import agents_mcp_http, free_port, write_config
from tests.reading import structured

pytestmark = pytest.mark.anyio


def helper() -> dict[str, Any]:
    return {
        "agents": {
            "helper": {
                "description": "Writes notes",
                "model": "main",
                "servers": ["notes"],
                "require_approval": "read_only",
            }
        }
    }


@asynccontextmanager
async def local_server(
    tmp_path: Path, llm: ScriptedLLM
) -> AsyncIterator[tuple[Any, httpx2.AsyncClient]]:
    """The HTTP app in process (loopback, no tokens: the local owner) and a client for it."""
    cfg = make_config(tmp_path, **helper())
    mcp = create_server(
        cfg, db_path=tmp_path / "t.db", llms={"main": llm}, transports={"notes": make_server()}
    )
    app = mcp.http_app()
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield mcp, http


def csp_hash(html: str, tag: str) -> str:
    (body,) = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


async def tool(http: httpx2.AsyncClient, tid: str, name: str, **arguments: Any) -> httpx2.Response:
    body = {"name": name, "arguments": {"thread_id": tid, **arguments}}
    with anyio.fail_after(30):
        return await http.post(f"/threads/{tid}/call", json=body)


async def test_the_page_and_its_endpoint_for_the_local_owner(tmp_path: Path) -> None:
    llm = ScriptedLLM(Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"), "saved it")
    async with local_server(tmp_path, llm) as (mcp, http):
        with anyio.fail_after(30):
            started = await mcp.call_tool("chat_with_agent", {"agent": "helper", "message": "go"})
        tid = started.structured_content["thread_id"]
        page = await http.get(f"/threads/{tid}")
        missing = await http.get("/threads/th_missing")
        shown = await tool(http, tid, "watch_thread")
        approved = await tool(
            http, tid, "approve_call", call_id="w1", approve=True, wait_seconds=10
        )
        again = await tool(http, tid, "approve_call", call_id="w1", approve=False)
        unknown = await tool(http, tid, "list_threads")
        other = await tool(http, "th_other", "get_thread")
        wrong_thread = await http.post(
            f"/threads/{tid}/call", json={"name": "get_thread", "arguments": {"thread_id": "x"}}
        )
        as_text = await http.post(
            f"/threads/{tid}/call",
            content=json.dumps({"name": "get_thread", "arguments": {"thread_id": tid}}),
        )
        bad_arguments = await tool(http, tid, "approve_call", call_id="w1", approve="maybe")
    html = thread_html()
    assert (page.status_code, page.text) == (200, html)
    policy = page.headers["content-security-policy"]
    assert f"script-src {csp_hash(html, 'script')};" in policy
    assert f"style-src {csp_hash(html, 'style')};" in policy
    assert "connect-src 'self'" in policy and "default-src 'none'" in policy
    assert missing.status_code == 404 and "thread not found" in missing.text
    view = shown.json()["structuredContent"]
    assert (view["status"], view["pending_approvals"][0]["call_id"]) == ("needs_approval", "w1")
    assert approved.json()["structuredContent"]["status"] == "completed"
    assert approved.json()["isError"] is False
    assert again.json()["isError"] is True
    assert "was already approved" in again.json()["content"][0]["text"]
    assert unknown.status_code == 400 and "name is one of" in unknown.json()["error"]
    assert other.status_code == 404
    assert wrong_thread.status_code == 400 and "the page's thread" in wrong_thread.json()["error"]
    assert as_text.status_code == 415
    assert bad_arguments.json()["isError"] is True


async def test_the_endpoint_reads_no_big_body_and_nothing_for_unknown_threads(
    tmp_path: Path,
) -> None:
    """Like /mcp, a body over 4 MiB is refused with 413; and for a thread the caller does
    not have, nothing of the body is read at all."""
    llm = ScriptedLLM("hello")
    json_type = {"content-type": "application/json"}
    async with local_server(tmp_path, llm) as (mcp, http):
        with anyio.fail_after(30):
            started = await mcp.call_tool("chat_with_agent", {"agent": "helper", "message": "hi"})
        tid = started.structured_content["thread_id"]
        big = b'{"name": "get_thread", "arguments": {"pad": "' + b"x" * (5 * 2**20) + b'"}}'
        too_big = await http.post(f"/threads/{tid}/call", content=big, headers=json_type)

        async def endless() -> AsyncIterator[bytes]:  # a body that never ends, undeclared
            while True:
                yield b"x" * 65536

        streamed = await http.post(f"/threads/{tid}/call", content=endless(), headers=json_type)
        unknown = await http.post("/threads/th_other/call", content=big, headers=json_type)
    assert too_big.status_code == 413 and "4194304 bytes" in too_big.json()["error"]
    assert streamed.status_code == 413
    assert unknown.status_code == 404


def token_config(downstream_log: Path) -> dict[str, Any]:
    return {
        "mcpServers": {
            "notes": {
                "command": sys.executable,
                "args": [DOWNSTREAM],
                "env": {"DOWNSTREAM_LOG": str(downstream_log)},
            }
        },
        "models": {"demo": {"provider": "demo"}},
        "agents": {
            "helper": {
                "description": "Writes notes",
                "model": "demo",
                "servers": ["notes"],
                "require_approval": "read_only",
            }
        },
        "server": {"auth_tokens": ["${TOKEN_A}", "${TOKEN_B}"]},
    }


async def test_the_page_checks_tokens_like_mcp_off_loopback(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    config = write_config(tmp_path / "agents.json", token_config(log))
    env = {"TOKEN_A": "alice-secret", "TOKEN_B": "bob-secret", "DOWNSTREAM_LOG": str(log)}
    port = free_port()
    message = 'call notes__write_note {"title": "milk", "body": "buy some"}'
    async with agents_mcp_http(
        config, tmp_path / "t.db", port=port, env=env, host="0.0.0.0"
    ) as url:
        alice = Client(StreamableHttpTransport(url, auth="alice-secret"))
        async with alice:
            with anyio.fail_after(60):
                started = await alice.call_tool(
                    "chat_with_agent", {"agent": "helper", "message": message}
                )
        tid = structured(started)["thread_id"]
        base = f"http://127.0.0.1:{port}"
        async with httpx2.AsyncClient(base_url=base, timeout=30) as http:
            anonymous = await http.get(f"/threads/{tid}")
            bobs = await http.get(f"/threads/{tid}", headers={"Authorization": "Bearer bob-secret"})
            forged = await http.get(f"/threads/{tid}", headers={"Authorization": "Bearer forged"})
            alices = await http.get(
                f"/threads/{tid}", headers={"Authorization": "Bearer alice-secret"}
            )
            arguments: dict[str, object] = {"thread_id": tid, "call_id": "x"}
            body = {"name": "approve_call", "arguments": arguments}
            call_anonymous = await http.post(f"/threads/{tid}/call", json=body)
            call_bob = await http.post(
                f"/threads/{tid}/call", json=body, headers={"Authorization": "Bearer bob-secret"}
            )
            (pending,) = structured(started)["pending_approvals"]
            arguments |= {
                "call_id": pending["call_id"],
                "approve": True,
                "wait_seconds": 20,
            }
            call_alice = await http.post(
                f"/threads/{tid}/call", json=body, headers={"Authorization": "Bearer alice-secret"}
            )
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.text == thread_html()  # the page, which asks for the token; no data
    assert (bobs.status_code, forged.status_code, alices.status_code) == (404, 401, 200)
    assert (call_anonymous.status_code, call_bob.status_code) == (401, 404)
    result = call_alice.json()["structuredContent"]
    assert (result["status"], result["reply"]) == (
        "completed",
        "Tool results:\nsaved note 'milk' (8 chars)",
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls == [
        {
            "server": "notes",
            "tool": "write_note",
            "arguments": {"title": "milk", "body": "buy some"},
        }
    ]
