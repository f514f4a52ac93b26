"""A stdio server's stdout is the protocol: what a program that prints something else
there gets told, and how fast; and how a server that failed is reported."""

from __future__ import annotations

import logging
import sys
from typing import Any

import anyio
import pytest

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream.servers import Downstreams, unavailable_reason
from agents_mcp.downstream.stray import NotMCP
from tests.conftest import DOWNSTREAM

pytestmark = pytest.mark.anyio


def stdio(*args: str, **extra: Any) -> DownstreamServerConfig:
    # A long init_timeout: the answer must not wait for it.
    extra.setdefault("init_timeout", 120)
    return DownstreamServerConfig(command=sys.executable, args=[DOWNSTREAM, *args], **extra)


async def test_a_program_that_prints_something_else_on_stdout_is_told_at_once() -> None:
    config = stdio("--stdout", "Weather server v1.2 ready. Usage: weather [--port N]", "--not-mcp")
    servers = Downstreams.from_config({"weather": config})
    try:
        with anyio.fail_after(60), pytest.raises(NotMCP) as caught:  # not init_timeout's 120 s
            await servers.servers["weather"].tools()
        call = await servers.servers["weather"].call("forecast", {})
    finally:
        await servers.aclose()
    said = (
        "it printed 'Weather server v1.2 ready. Usage: weather [--port N]' on stdout, which"
        " is for MCP messages only, and did not answer the handshake: is this command an MCP"
        " server over stdio, with the arguments it needs for that? (a server's own messages"
        " belong on stderr)"
    )
    assert unavailable_reason(config, caught.value) == said
    assert call.text == f"Error: server 'weather' is unavailable: {said}"


async def test_a_server_that_prints_a_banner_on_stdout_and_then_answers_still_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    servers = Downstreams.from_config({"notes": stdio("--stdout", "Notes server starting")})
    try:
        with anyio.fail_after(60), caplog.at_level(logging.WARNING, "agents_mcp.downstream"):
            tools = await servers.servers["notes"].tools()
    finally:
        await servers.aclose()
    assert "echo" in [t.name for t in tools]
    assert [r.getMessage() for r in caplog.records if r.name == "agents_mcp.downstream"] == [
        "notes: printed 'Notes server starting' on stdout before answering; MCP clients expect"
        " only MCP messages there"
    ]
    # Reported once, in words, not as the SDK's traceback per line.
    assert not [r for r in caplog.records if r.name == "mcp.client.stdio"]


async def test_the_warning_about_a_failed_server_ends_with_its_stderr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = stdio("--say", "loading config", "--require-env", "WEATHER_API_KEY")
    servers = Downstreams.from_config({"weather": config})
    toolset = servers.toolset(["weather"], {})
    try:
        with anyio.fail_after(60), caplog.at_level(logging.WARNING, "agents_mcp.downstream"):
            assert await toolset.list_tools() == []
    finally:
        await servers.aclose()
    log_file = servers.servers["weather"].log_path
    assert [r.getMessage() for r in caplog.records if r.name == "agents_mcp.downstream"] == [
        "weather: cannot list tools: it exited right after starting (the connection closed);"
        " its stderr ended with: loading config | ssl.SSLCertVerificationError: certificate"
        f" verify failed (all of it in {log_file})"
    ]
