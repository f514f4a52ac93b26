"""``agents-mcp serve``, through the real entry point."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import anyio
import pytest
from fastmcp import Client
from inline_snapshot import snapshot

from tests.cli.runner import INITIALIZE, Terminal, agents_mcp, helper_config, scrub
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


GC_PROBE = """
import gc, sys
import anyio
from agents_mcp.cli import serving
from agents_mcp.cli.invocation import Invocation

def probe(main):  # instead of serving: report how the collector was set up
    print(gc.get_threshold()[0], gc.get_freeze_count())

anyio.run = probe
sys.exit(serving.run(Invocation(config=sys.argv[1], db=sys.argv[2]), transport="http",
                     host="127.0.0.1", port=int(sys.argv[3])))
"""


async def test_serve_sets_up_garbage_collection_for_a_long_running_server(
    tmp_path: Path,
) -> None:
    """What the server loaded at start is frozen out of collections, and the young
    generation is collected less often than CPython's default (700)."""
    import sys

    from agents_mcp.cli.serving import GC_THRESHOLD

    cfg = write_config(tmp_path / "agents.json", helper_config("http://127.0.0.1:9/v1"))
    args = [str(cfg), str(tmp_path / "threads.db"), str(free_port())]
    done = await anyio.run_process([sys.executable, "-c", GC_PROBE, *args], check=False)
    assert done.returncode == 0, done.stderr.decode()
    threshold, frozen = map(int, done.stdout.split())
    assert threshold == GC_THRESHOLD > 700
    assert frozen > 10_000  # fastmcp, pydantic and the rest of what serving imports
