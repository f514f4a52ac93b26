"""``agents-mcp serve``, through the real entry point."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import anyio
import pytest
from fastmcp import Client
from inline_snapshot import snapshot

from tests.cli.runner import Terminal, agents_mcp, helper_config, scrub
from tests.processes import free_port, write_config

pytestmark = pytest.mark.anyio


async def test_serve_keeps_stdout_for_the_protocol(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "agents.json", helper_config("http://127.0.0.1:9/v1"))
    db = tmp_path / "threads.db"
    ran = await agents_mcp(
        "serve", "--config", str(cfg), "--db", str(db), input="", tmp_path=tmp_path
    )
    assert (ran.code, ran.out) == (0, "")
    assert scrub(ran.err, (str(db), "<db>")) == snapshot(
        "agents-mcp 0.1.0: 1 agent(s) (helper) on stdio; threads in <db>\n"
    )


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "a terminal", "version": "0"},
    },
}


async def test_one_ctrl_c_stops_serve_over_stdio_in_a_terminal(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "agents.json", helper_config("http://127.0.0.1:9/v1"))
    term = Terminal("serve", "--config", str(cfg), tmp_path=tmp_path)
    try:
        # Serving for real: the server answers a request typed into its terminal.
        term.type(json.dumps(INITIALIZE).encode() + b"\n")
        await term.read_until('"serverInfo"')
        term.type(b"\x03")  # Ctrl-C, once
        code = await term.exit_code()
    finally:
        term.close()
    assert code == 130
    assert term.text().splitlines()[-1] == "agents-mcp: stopped (Ctrl-C)"


async def test_one_ctrl_c_stops_serve_over_http_in_a_terminal(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "agents.json", helper_config("http://127.0.0.1:9/v1"))
    port = free_port()
    term = Terminal(
        "serve", "--config", str(cfg), "--transport", "http", "--port", str(port),
        tmp_path=tmp_path,
    )  # fmt: skip
    try:
        await term.listening(port)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:  # serving for real
            with anyio.fail_after(30):
                assert await client.list_tools()
        term.type(b"\x03")
        code = await term.exit_code()
    finally:
        term.close()
    assert code == 130
    assert term.text().splitlines()[-1] == "agents-mcp: stopped (Ctrl-C)"


async def test_a_port_in_use_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "agents.json", helper_config("http://127.0.0.1:9/v1"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        ran = await agents_mcp(
            "serve", "--config", str(cfg), "--transport", "http", "--port", port,
            tmp_path=tmp_path,
        )  # fmt: skip
    assert (ran.code, ran.out) == (3, "")
    assert ran.err.replace(port, "<port>") == snapshot(
        "agents-mcp: cannot listen on 127.0.0.1:<port>: the address is already in use (another agents-mcp serve?); choose another --port\n"
    )
