"""``agents-mcp serve`` over stdio, as clients start it: real processes driven by real
clients (fastmcp's in both protocol eras, the TypeScript SDK's), and how serving ends:
the client closes stdin (exit 0), Ctrl-C (SIGINT: exit 130 and one line), SIGTERM (exit 0).
Every way ends the same: threads saved, downstream servers stopped, nothing on stdout but
the protocol."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketListener
from anyio.streams.buffered import BufferedByteReceiveStream
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from tests.cli.runner import INITIALIZE, scratch_env
from tests.conftest import TESTS, stdio_downstream
from tests.processes import ROOT, write_config

pytestmark = pytest.mark.anyio

WAIT = 60.0
REPORTER = str(TESTS / "exit_reporter.py")
STOPPED = "agents-mcp: stopped (Ctrl-C)"
WRITE = 'call notes__write_note {"title": "t", "body": "kept"}'
"""Asks the demo model for a tool call that waits for approval: a thread left in flight."""
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def _serve(tmp_path: Path, *extra: str) -> list[str]:
    config = {
        "models": {"demo": {"provider": "demo"}},
        "mcpServers": {"notes": stdio_downstream()},
        "agents": {
            "demo": {
                "description": "d",
                "model": "demo",
                "servers": ["notes"],
                "require_approval": "read_only",
            }
        },
    }
    cfg = write_config(tmp_path / "agents.json", config)
    return [sys.executable, "-m", "agents_mcp", *extra, "serve", "--config", str(cfg),
            "--db", str(tmp_path / "threads.db")]  # fmt: skip


class Reported:
    """What tests/exit_reporter.py says about the server it runs."""

    def __init__(self, listener: SocketListener) -> None:
        self._listener = listener
        self._lines: BufferedByteReceiveStream | None = None
        self.pid: int | None = None
        self.code: int | None = None

    async def _number(self) -> int:
        with anyio.fail_after(WAIT):
            if self._lines is None:  # the reporter connects before it starts the server
                self._lines = BufferedByteReceiveStream(await self._listener.accept())
            return int(await self._lines.receive_until(b"\n", 64))

    async def server(self) -> int:
        """The server's pid, once it started."""
        if self.pid is None:
            self.pid = await self._number()
        return self.pid

    async def exit_code(self) -> int:
        """The server's exit code, once it ended (bounded)."""
        await self.server()
        self.code = await self._number()
        return self.code


@asynccontextmanager
async def reported(argv: list[str]) -> AsyncIterator[tuple[list[str], Reported]]:
    """``argv`` run through the reporter: the command to start, and what it reports. A
    server still running at the end (the test failed) is killed."""
    with tempfile.TemporaryDirectory(prefix="am-") as where:  # Unix socket paths are short
        path = Path(where) / "report"
        async with await anyio.create_unix_listener(path) as listener:
            report = Reported(listener)
            try:
                yield [sys.executable, REPORTER, str(path), *argv], report
            finally:
                if report.code is None:
                    with anyio.move_on_after(WAIT, shield=True):
                        pid = await report.server()
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)


async def _chat(client: Client[Any], message: str) -> dict[str, Any]:
    with anyio.fail_after(WAIT):
        result = await client.call_tool("chat_with_agent", {"agent": "demo", "message": message})
    assert result.structured_content is not None
    return result.structured_content


async def _use(client: Client[Any]) -> tuple[str, int]:
    """List the tools, have the downstream server started (its pid), leave a thread
    waiting for approval; that thread's id and the downstream server's pid."""
    with anyio.fail_after(WAIT):
        names = {tool.name for tool in await client.list_tools()}
    assert {"chat_with_agent", "list_threads", "approve_call"} <= names
    ran = await _chat(client, "call notes__pid")
    pid = int(ran["reply"].split("Tool results:\n", 1)[1].split()[0])
    waiting = await _chat(client, WRITE)
    assert waiting["status"] == "needs_approval"
    return waiting["thread_id"], pid


def _client(
    argv: list[str], env: dict[str, str], *, mode: str = "auto", log: Path | None = None
) -> Client[Any]:
    """fastmcp's client, starting ``argv`` as its stdio server; ``mode``: the protocol era
    ("legacy": the handshake; "auto": 2026-07-28 when the server speaks it)."""
    transport = StdioTransport(
        argv[0], argv[1:], env=env, cwd=str(ROOT), keep_alive=False, log_file=log
    )
    return Client(transport, mode=mode, init_timeout=WAIT)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("ending", ["stdin closed", "SIGINT", "SIGTERM"])
async def test_every_way_serving_ends_is_clean(tmp_path: Path, mode: str, ending: str) -> None:
    log = tmp_path / "serve.log"
    env = scratch_env(tmp_path)
    async with reported(_serve(tmp_path)) as (command, report):
        async with _client(command, env, mode=mode, log=log) as client:
            server = await report.server()
            assert client.protocol_version != "2026-07-28" or mode == "auto"
            assert client.protocol_version == "2026-07-28" or mode == "legacy"
            thread, downstream = await _use(client)
            if ending != "stdin closed":
                os.kill(server, getattr(signal, ending))
                code = await report.exit_code()
        if ending == "stdin closed":  # leaving the block closed it; no signal was needed
            code = await report.exit_code()
    assert code == (130 if ending == "SIGINT" else 0)
    assert _gone(downstream)  # stopped (and waited for) by the server
    err = log.read_text()
    assert "Traceback" not in err
    assert (err.splitlines()[-1] == STOPPED) == (ending == "SIGINT")
    # The thread left waiting was saved: a new server has it, still waiting.
    async with _client(_serve(tmp_path), env) as client:
        with anyio.fail_after(WAIT):
            got = await client.call_tool("get_thread", {"thread_id": thread})
    assert got.structured_content is not None
    assert got.structured_content["status"] == "needs_approval"


def test_stdout_carries_the_protocol_only(tmp_path: Path) -> None:
    """Everything written to stdout is a JSON-RPC message, even with --debug logging,
    a downstream server started, and a tool run."""
    requests = [
        INITIALIZE,
        INITIALIZED,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "chat_with_agent",
                    "arguments": {"agent": "demo", "message": "call notes__pid"}}},
    ]  # fmt: skip
    served = subprocess.run(
        _serve(tmp_path, "--debug"),
        input="".join(json.dumps(r) + "\n" for r in requests).encode(),
        capture_output=True,
        env=scratch_env(tmp_path),
        cwd=ROOT,
        timeout=WAIT,
        check=False,
    )
    assert served.returncode == 0, served.stderr.decode()
    lines = served.stdout.decode().splitlines()
    assert [json.loads(line)["jsonrpc"] for line in lines] == ["2.0"] * len(lines)
    assert {json.loads(line).get("id") for line in lines} >= {1, 2}
    assert "DEBUG" in served.stderr.decode()  # the logs went to stderr


def test_a_client_that_dies_with_a_request_in_flight(tmp_path: Path) -> None:
    """Both of its pipes close while a chat (starting a downstream server) is running:
    the answer finds nobody, and the server ends as when a client closes stdin."""
    served = subprocess.Popen(
        _serve(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=scratch_env(tmp_path), cwd=ROOT,
    )  # fmt: skip
    assert served.stdin is not None and served.stdout is not None
    try:
        served.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
        served.stdin.flush()
        assert json.loads(served.stdout.readline())["id"] == 1
        chat = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "chat_with_agent",
                           "arguments": {"agent": "demo", "message": "call notes__pid"}}}  # fmt: skip
        served.stdin.write((json.dumps(INITIALIZED) + "\n" + json.dumps(chat) + "\n").encode())
        served.stdin.flush()
        served.stdout.close()
        served.stdin.close()
        served.wait(timeout=WAIT)  # stderr says little without --debug: no pipe fills
        assert served.stderr is not None
        err = served.stderr.read()
    finally:
        if served.poll() is None:
            served.kill()
            served.wait(timeout=WAIT)
    assert served.returncode == 0, err.decode()
    assert b"error" not in err


async def test_the_typescript_sdks_stdio_client(tmp_path: Path) -> None:
    """Node starts a server with sockets for its stdio: the official SDK's client, end to
    end; closing it closes stdin, and the server exits 0."""
    from tests.server.test_results import sdk_missing

    if missing := sdk_missing():
        pytest.fail(f"this test needs {', '.join(missing)}; .ci/run installs them")
    script = ROOT / "tests" / "browser" / "sdk_stdio.mjs"
    async with reported(_serve(tmp_path)) as (command, report):
        with anyio.fail_after(WAIT):
            done = await anyio.run_process(
                ["node", str(script), *command], env=scratch_env(tmp_path), check=False
            )
        code = await report.exit_code()
    err = done.stderr.decode()
    assert done.returncode == 0, err
    out = json.loads(done.stdout)
    assert {"chat_with_agent", "list_threads", "approve_call"} <= set(out["tools"])
    assert out["listed"]["threads"] == []
    assert code == 0
    assert "Traceback" not in err
