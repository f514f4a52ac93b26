"""``serve --transport http`` from its first moment to its last: it says it listens once
it does, and Ctrl-C at any moment stops it with one line and exit code 130, never a
traceback."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from agents_mcp import __version__
from tests.cli.runner import helper_config
from tests.cli.served import served
from tests.processes import free_port, write_config

pytestmark = pytest.mark.anyio

STOPPED = "agents-mcp: stopped (Ctrl-C)"
LEVELS = ("INFO", "WARNING", "ERROR", "CRITICAL")


def http_serve(tmp_path: Path, port: int, *more: str) -> tuple[str, ...]:
    cfg = write_config(tmp_path / "agents.json", helper_config("http://127.0.0.1:9/v1"))
    db = str(tmp_path / "threads.db")
    return ("serve", "--config", str(cfg), "--db", db, "--transport", "http",
            "--port", str(port), *more)  # fmt: skip


async def test_the_banner_comes_once_the_port_accepts_connections(tmp_path: Path) -> None:
    port = free_port()
    async with served(*http_serve(tmp_path, port), tmp_path=tmp_path) as server:
        await server.until(f"agents-mcp {__version__}: 1 agent(s) (helper) on http://")
        # At once, no retrying: a client started by the banner connects on its first try.
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.aclose()
        server.interrupt()
        code = await server.ended()
    assert code == 130
    assert server.err.splitlines()[-1] == STOPPED
    assert "Traceback" not in server.err


@pytest.mark.parametrize(
    "moment",
    [
        "DEBUG asyncio: Using selector",  # the event loop is being made
        "WARNING agents_mcp.server.transports: HTTP without tokens",  # the database opens
        "Initializing server 'agents-mcp'",  # the app is built, uvicorn about to start
        "StreamableHTTP session manager started",  # in the lifespan: threads open
    ],
)
async def test_ctrl_c_while_it_starts_stops_it_without_a_traceback(
    tmp_path: Path, moment: str
) -> None:
    port = free_port()
    async with served(*http_serve(tmp_path, port, "--debug"), tmp_path=tmp_path) as server:
        await server.until(moment)
        server.interrupt()
        code = await server.ended()
    assert code == 130
    # The last word, but for debug logs (some of several lines) that may still come from
    # a thread winding down.
    lines = server.err.splitlines()
    assert lines.count(STOPPED) == 1, server.err
    after = lines[lines.index(STOPPED) + 1 :]
    assert [line for line in after if any(f" {level} " in line for level in LEVELS)] == []
    assert "Traceback" not in server.err and "CancelledError" not in server.err
