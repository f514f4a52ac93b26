"""The dashboard as people meet it: Chromium (tests/browser/dashboard.mjs) opens the link
from a stdio server's ``needs_approval`` result, sees the inbox across threads and
agents, and approves with the keyboard; the call runs once. ``agents-mcp ui`` next to a
stdio server on the same database (SQLite, and PostgreSQL: two replicas) does the same
from another process. Under ``serve --transport http`` the dashboard has the access rules
of ``/mcp``."""

from __future__ import annotations

import json
import os
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
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport

from tests.cli.runner import scratch_env
from tests.conftest import DOWNSTREAM
from tests.processes import ROOT, agents_mcp_http, free_port, write_config
from tests.server.test_ui_browser import BROWSER, CHROMIUM, OUT, browser_tools  # noqa: F401

pytestmark = pytest.mark.anyio

LINK = re.compile(r"http://127\.0\.0\.1:\d+/threads/th_[A-Za-z0-9_-]+#token=[A-Za-z0-9_-]+")


def note(title: str) -> str:
    return "call notes__write_note " + json.dumps({"title": title, "body": "buy some"})


def config(tmp_path: Path, log: Path, **server: Any) -> Path:
    agent = {"model": "demo", "servers": ["notes"], "require_approval": "read_only"}
    data = {
        "mcpServers": {
            "notes": {
                "command": sys.executable,
                "args": [DOWNSTREAM],
                "env": {"DOWNSTREAM_LOG": str(log)},
            }
        },
        "models": {"demo": {"provider": "demo"}},
        "agents": {
            "helper": {"description": "Writes notes", **agent},
            "scribe": {"description": "Keeps the diary", **agent},
        },
        "server": server,
    }
    return write_config(tmp_path / "agents.json", data)


@asynccontextmanager
async def stdio_server(cfg: Path, db: str, tmp_path: Path) -> AsyncIterator[Client[Any]]:
    """agents-mcp as Claude Desktop starts it: a subprocess speaking over its pipes."""
    args = ["-m", "agents_mcp", "serve", "--config", str(cfg), "--db", db]
    env = scratch_env(tmp_path)
    transport = StdioTransport(sys.executable, args, cwd=str(ROOT), env=env, keep_alive=False)
    async with Client(transport, mode="legacy", init_timeout=60) as client:
        yield client


async def chat(client: Client[Any], agent: str, message: str) -> tuple[dict[str, Any], str]:
    with anyio.fail_after(60):
        result = await client.call_tool("chat_with_agent", {"agent": agent, "message": message})
    text = "\n".join(c.text for c in result.content if hasattr(c, "text"))
    assert result.structured_content is not None
    return result.structured_content, text


async def browser(link: str, *, inbox: int, approve: str, shot: str) -> dict[str, Any]:
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LINK": link, "INBOX": str(inbox), "APPROVE": approve, "SHOT": shot}
    env |= {"OUT_DIR": str(OUT), "CHROMIUM": CHROMIUM}
    with anyio.fail_after(120):
        ran = await anyio.run_process(
            ["node", str(BROWSER / "dashboard.mjs")], env=env, cwd=str(BROWSER), check=False
        )
    lines = [json.loads(line) for line in ran.stdout.decode().splitlines() if line.startswith("{")]
    assert lines and "done" in lines[-1], (lines, ran.stderr.decode()[-3000:])
    report: dict[str, Any] = lines[-1]["done"]
    return report


def calls(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [json.loads(line)["arguments"]["title"] for line in log.read_text().splitlines()]


@pytest.mark.usefixtures("browser_tools")
async def test_the_link_in_a_stdio_result_opens_the_dashboard_and_a_decision_runs_once(
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.jsonl"
    cfg = config(tmp_path, log)
    async with stdio_server(cfg, str(tmp_path / "t.db"), tmp_path) as client:
        helper, text = await chat(client, "helper", note("milk"))
        scribe, _ = await chat(client, "scribe", note("diary"))
        assert helper["status"] == scribe["status"] == "needs_approval"
        [link] = LINK.findall(text)
        assert f"/threads/{helper['thread_id']}#token=" in link
        [call] = helper["pending_approvals"]
        report = await browser(link, inbox=2, approve=call["call_id"], shot="dashboard")
        with anyio.fail_after(60):
            done = await client.call_tool(
                "get_thread", {"thread_id": helper["thread_id"], "wait_seconds": 30}
            )
            other = await client.call_tool("get_thread", {"thread_id": scribe["thread_id"]})
    assert report["refused"] == [
        {"fragment": "", "cards": 0},
        {"fragment": "#token=wrong-key", "cards": 0},
    ]
    assert report["violations"] == []
    assert len(report["inbox"]) == 2
    assert any("helper" in card and "milk" in card for card in report["inbox"])
    assert any("scribe" in card and "diary" in card for card in report["inbox"])
    assert report["threads"] == 2 and report["left"] == 1
    assert all(" tokens" in row for row in report["rows"])  # each row's usage
    assert done.structured_content is not None and other.structured_content is not None
    assert done.structured_content["status"] == "completed"
    assert other.structured_content["status"] == "needs_approval"
    assert calls(log) == ["milk"]


@asynccontextmanager
async def ui_process(cfg: Path, db: str, tmp_path: Path) -> AsyncIterator[str]:
    """``agents-mcp ui --no-open`` on the same database; yields the link it prints."""
    command = [sys.executable, "-m", "agents_mcp", "ui", "--no-open", "--config", str(cfg)]
    env = scratch_env(tmp_path)
    async with await anyio.open_process(
        [*command, "--db", db], env=env, cwd=str(ROOT), stderr=None
    ) as proc:
        try:
            assert proc.stdout is not None
            with anyio.fail_after(60):
                line = b""
                while not line.endswith(b"\n"):
                    line += await proc.stdout.receive(1)
            yield line.decode().strip()
        finally:
            proc.terminate()
            with anyio.move_on_after(20):
                await proc.wait()


@pytest.mark.usefixtures("browser_tools")
async def test_agents_mcp_ui_next_to_a_stdio_server_decides_once(
    tmp_path: Path, db_url: str
) -> None:
    log = tmp_path / "calls.jsonl"
    cfg = config(tmp_path, log)
    async with stdio_server(cfg, db_url, tmp_path) as client:
        helper, _ = await chat(client, "helper", note("bread"))
        [call] = helper["pending_approvals"]
        async with ui_process(cfg, db_url, tmp_path) as link:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/#token=[A-Za-z0-9_-]{40,}", link)
            report = await browser(link, inbox=1, approve=call["call_id"], shot="dashboard-ui")
            with anyio.fail_after(60):
                done = await client.call_tool(
                    "get_thread", {"thread_id": helper["thread_id"], "wait_seconds": 30}
                )
    assert report["left"] == 0
    assert done.structured_content is not None
    assert done.structured_content["status"] == "completed"
    assert calls(log) == ["bread"]


async def test_over_http_the_dashboard_has_the_access_rules_of_mcp(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    cfg = config(tmp_path, log, auth_tokens=["${TOKEN_A}", "${TOKEN_B}"])
    env = {"TOKEN_A": "alice-secret", "TOKEN_B": "bob-secret"}
    port = free_port()
    async with agents_mcp_http(cfg, tmp_path / "t.db", port=port, env=env, host="0.0.0.0") as url:
        async with Client(StreamableHttpTransport(url, auth="alice-secret")) as alice:
            with anyio.fail_after(60):
                started = await alice.call_tool(
                    "chat_with_agent", {"agent": "helper", "message": note("tea")}
                )
        content = started.structured_content
        assert content is not None
        tid, call_id = content["thread_id"], content["pending_approvals"][0]["call_id"]
        listing = {"name": "list_threads", "arguments": {}}
        decide = {"name": "approve_call", "arguments": {"thread_id": tid, "call_id": call_id,
                                                         "approve": True, "wait_seconds": 20}}  # fmt: skip

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            index = await http.get("/")
            threads = await http.get("/threads")
            anonymous = await http.post("/call", json=listing)
            bobs_list = await http.post("/call", json=listing, headers=bearer("bob-secret"))
            bobs_page = await http.get(f"/threads/{tid}", headers=bearer("bob-secret"))
            bobs_call = await http.post("/call", json=decide, headers=bearer("bob-secret"))
            alices = await http.post("/call", json=listing, headers=bearer("alice-secret"))
            decided = await http.post("/call", json=decide, headers=bearer("alice-secret"))
            other = await http.post(
                "/call",
                json={"name": "chat_with_agent", "arguments": {}},
                headers=bearer("alice-secret"),
            )
    assert index.status_code == threads.status_code == 401
    assert "Content-Security-Policy" in index.headers and "<main>" in index.text
    assert anonymous.status_code == 401
    assert bobs_list.json()["structuredContent"]["threads"] == []
    assert bobs_page.status_code == 404
    assert bobs_call.json()["isError"] is True and "not found" in bobs_call.text
    assert [t["thread_id"] for t in alices.json()["structuredContent"]["threads"]] == [tid]
    assert decided.json()["structuredContent"]["status"] == "completed"
    assert other.status_code == 400
    assert calls(log) == ["tea"]
