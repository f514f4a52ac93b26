"""Internal error text never reaches clients or models: a crash shows an error id and the
log has the traceback under it; downstream failures reach the model as short reasons.
Also the HTTP request size limit (413)."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError
from inline_snapshot import snapshot

from agents_mcp.config import Config
from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.threads.service import Threads
from tests.conftest import call, make_config
from tests.processes import agents_mcp_in_process
from tests.reading import text_of

pytestmark = pytest.mark.anyio

ERROR_ID = re.compile(r"err_[0-9a-f]{12}")
LEAKS = re.compile(r"Traceback|OperationalError|sqlite|SELECT|\w+(Error|Exception)\b")
"""What must never show: tracebacks, exception classes, SQL (the leading "Error:" is ours)."""


def leaks(text: str) -> list[str]:
    return [m[0] for m in LEAKS.finditer(text.replace("Error: ", ""))]


def config(tmp_path: Path, **servers: Any) -> Config:
    return make_config(
        tmp_path,
        servers=servers,
        agents={
            "helper": {
                "description": "d",
                "model": "main",
                "servers": list(servers),
                "require_approval": "never",
            }
        },
    )


@asynccontextmanager
async def connected(tmp_path: Path, cfg: Config, llm: ScriptedLLM) -> AsyncIterator[Client[Any]]:
    db = tmp_path / "threads.db"
    async with (
        agents_mcp_in_process(cfg, db, llms={"main": llm}) as url,
        Client(StreamableHttpTransport(url)) as client,
    ):
        yield client


def logged_under(caplog: pytest.LogCaptureFixture, error_id: str) -> str:
    """The log record naming ``error_id``, with its traceback."""
    (record,) = [r for r in caplog.records if error_id in r.getMessage()]
    return logging.Formatter().format(record)


async def test_a_crash_inside_a_run_shows_only_an_error_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crash = sqlite3.OperationalError("no such column: secret_col in SELECT secret_col FROM t")
    llm = ScriptedLLM(crash, "Recovered.")
    async with connected(tmp_path, config(tmp_path), llm) as client:
        failed = await call(client, "chat_with_agent", agent="helper", message="hi")
        again = await call(client, "get_thread", thread_id=failed["thread_id"])
        listed = await call(client, "list_threads")
        transcript = await client.read_resource(f"agents-mcp://threads/{failed['thread_id']}")
        after = await call(
            client,
            "chat_with_agent",
            agent="helper",
            message="retry",
            thread_id=failed["thread_id"],
        )
    error = failed["error"]
    (error_id,) = ERROR_ID.findall(error["message"])
    assert error == {
        "type": "internal_error",
        "message": f"internal error (id {error_id}); the server log has the details",
    }
    assert again["error"] == error
    assert listed["threads"][0]["status"] == "failed"
    shown = json.dumps([failed, again, listed]) + text_of(transcript[0])
    assert leaks(shown) == []
    logged = logged_under(caplog, error_id)
    assert logged.startswith(f"run of thread {failed['thread_id']} failed [{error_id}]")
    assert "Traceback" in logged and "OperationalError: no such column" in logged
    assert after["reply"] == "Recovered."


async def test_a_crash_in_a_tool_handler_shows_only_an_error_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Threads, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database disk image is malformed: SELECT * FROM threads")

    monkeypatch.setattr(Threads, "list_threads", broken)
    async with connected(tmp_path, config(tmp_path), ScriptedLLM()) as client:
        with anyio.fail_after(30), pytest.raises(ToolError) as info:
            await client.call_tool("list_threads", {})
    (error_id,) = ERROR_ID.findall(str(info.value))
    assert str(info.value) == f"internal error (id {error_id}); the server log has the details"
    logged = logged_under(caplog, error_id)
    assert logged.startswith(f"list_threads request failed [{error_id}]")
    assert "OperationalError: database disk image is malformed" in logged


async def test_downstream_failures_reach_the_model_as_short_reasons(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)  # the stdio notes server, which has a tool that kills it
    llm = ScriptedLLM(Call("notes__crash", {}, id="k1"), "It died.")
    async with connected(tmp_path, cfg, llm) as client:
        answer = await call(client, "chat_with_agent", agent="helper", message="crash it")
    (shown,) = [m.content for m in llm.requests[1].messages if m.role == "tool"]
    assert answer["reply"] == "It died."
    assert shown == snapshot(
        "Error: server 'notes' stopped during the call (Connection closed); it will be restarted on the next call"
    )
    assert shown is not None and leaks(shown) == []


async def test_a_request_body_over_the_limit_gets_413(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with agents_mcp_in_process(cfg, tmp_path / "threads.db") as url:
        big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "pad": "x" * 4 * 2**20})
        headers = {"Accept": "application/json, text/event-stream"}
        headers["Content-Type"] = "application/json"
        async with httpx2.AsyncClient() as http:
            with anyio.fail_after(30):
                answer = await http.post(url, content=big, headers=headers)
    assert (answer.status_code, answer.text) == snapshot((413, "Request body too large"))
