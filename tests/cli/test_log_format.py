"""Every log line of ``agents-mcp serve`` in one format, its own and its libraries'
(fastmcp's, the SDK's, uvicorn's), over stdio and over HTTP: ``LOG_FORMAT``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import httpx2
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError

from agents_mcp import __version__
from tests.cli.runner import INITIALIZE
from tests.cli.served import served
from tests.conftest import DOWNSTREAM
from tests.processes import free_port, write_config

pytestmark = pytest.mark.anyio

TOKEN = "tok-alice-0123456789"
OURS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d agents-mcp (DEBUG|INFO|WARNING|ERROR) \S+: ")
"""The start of a line in ``LOG_FORMAT``."""


def config(tmp_path: Path) -> Path:
    data = {
        "server": {"tokens": {"alice": {"token": TOKEN}}},
        "mcpServers": {"notes": {"command": sys.executable, "args": [DOWNSTREAM]}},
        "models": {"demo": {"provider": "demo"}},
        "agents": {"helper": {"description": "Helps", "model": "demo", "servers": ["notes"]}},
    }
    return write_config(tmp_path / "agents.json", data)


def foreign(err: str) -> list[str]:
    """The lines that are neither in our format nor our own words (banner, last line)
    nor inside a traceback (which follows a line of ours)."""
    out, in_traceback = [], False
    for line in err.splitlines():
        if OURS.match(line) or line.startswith("agents-mcp"):
            in_traceback = False
        elif line.startswith("Traceback") or (in_traceback and (line[:1] in " \t" or ":" in line)):
            in_traceback = True
        else:
            out.append(line)
    return out


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "debug"])
async def test_over_http_a_refused_token_and_a_failing_tool_log_in_our_format(
    tmp_path: Path, debug: bool
) -> None:
    port = free_port()
    args = ["serve", "--config", str(config(tmp_path)), "--transport", "http"]
    args += ["--port", str(port), *(["--debug"] if debug else [])]
    url = f"http://127.0.0.1:{port}/mcp"
    async with served(*args, tmp_path=tmp_path) as server:
        await server.until(f"agents-mcp {__version__}: ")
        async with httpx2.AsyncClient() as http:
            refused = await http.post(url, json={}, headers={"Authorization": "Bearer wrong"})
        transport = StreamableHttpTransport(url, headers={"Authorization": f"Bearer {TOKEN}"})
        async with Client(transport) as client:
            with pytest.raises(ToolError):
                await client.call_tool("get_thread", {"thread_id": "th_nope"})
        server.interrupt()
        assert await server.ended() == 130
    assert refused.status_code == 401
    assert foreign(server.err) == []
    if debug:  # what fastmcp logs, through our handler
        assert re.search(r"agents-mcp INFO fastmcp\.server\.auth\.\S+: Auth error", server.err)
        assert "agents-mcp ERROR fastmcp.server.server: Error calling tool 'get_thread'" in (
            server.err
        )
    else:
        assert server.err.splitlines() == [
            f"agents-mcp {__version__}: 1 agent(s) (helper) on {url}; threads in"
            f" {tmp_path}/data/agents-mcp/threads.db",
            "agents-mcp: stopped (Ctrl-C)",
        ]


async def test_over_stdio_a_failing_tool_logs_in_our_format(tmp_path: Path) -> None:
    args = ["serve", "--config", str(config(tmp_path)), "--debug"]
    async with served(*args, tmp_path=tmp_path) as server:
        assert b'"serverInfo"' in await server.line(json.dumps(INITIALIZE).encode())
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert server.proc.stdin is not None
        await server.proc.stdin.send(json.dumps(initialized).encode() + b"\n")
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "get_thread", "arguments": {"thread_id": "th_nope"}},
        }
        answer = json.loads(await server.line(json.dumps(call).encode()))
        await server.proc.stdin.aclose()
        assert await server.ended() == 0
    assert answer["result"]["isError"] is True
    assert foreign(server.err) == []
    assert "agents-mcp ERROR fastmcp.server.server: Error calling tool 'get_thread'" in server.err
