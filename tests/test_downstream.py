"""Downstream MCP servers as real subprocesses: lazy start, restart after death, env."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import anyio
import pytest
from fastmcp import FastMCP
from mcp_types import ToolListChangedNotification

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream import Downstreams
from tests.conftest import DOWNSTREAM

pytestmark = pytest.mark.anyio


def stdio(**extra: Any) -> DownstreamServerConfig:
    return DownstreamServerConfig(command=sys.executable, args=[DOWNSTREAM], **extra)


async def test_nothing_connects_until_a_tool_is_needed() -> None:
    never = DownstreamServerConfig(command="/nonexistent/server")
    servers = Downstreams.from_config({"ghost": never})
    toolset = servers.toolset(["ghost"], {})
    try:
        # Building the registry and a toolset spawned nothing; using it fails softly.
        assert await toolset.list_tools() == []
        out = await servers.servers["ghost"].call("x", {})
    finally:
        await servers.aclose()
    assert not out.ok
    assert out.text.startswith("Error: server 'ghost' is unavailable")


async def test_a_dead_stdio_server_is_restarted_on_the_next_call() -> None:
    servers = Downstreams.from_config({"notes": stdio()})
    notes = servers.servers["notes"]
    try:
        with anyio.fail_after(30):
            first = await notes.call("pid", {})
            crashed = await notes.call("crash", {})
            second = await notes.call("pid", {})
    finally:
        await servers.aclose()
    assert first.ok and second.ok
    assert first.text != second.text  # a new process answered
    assert not crashed.ok
    assert "stopped during the call" in crashed.text


async def test_a_late_reset_of_a_dead_session_leaves_the_new_one_alone() -> None:
    """Two calls failing on one dead session both reset it; the second reset may come
    after a third call connected afresh: it must not close that healthy session."""
    servers = Downstreams.from_config({"notes": stdio()})
    notes = servers.servers["notes"]
    try:
        with anyio.fail_after(30):
            await notes.call("pid", {})
            dead = notes._client
            crashed = await notes.call("crash", {})
            fresh = await notes.call("pid", {})
            await notes._reset(dead)  # the other failed call's reset, arriving late
            again = await notes.call("pid", {})
    finally:
        await servers.aclose()
    assert not crashed.ok and fresh.ok and again.ok
    assert again.text == fresh.text  # the same process answered: nothing was closed


async def test_stdio_children_get_only_the_declared_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_OF_THE_SERVER", "do-not-leak")
    servers = Downstreams.from_config({"notes": stdio(env={"DECLARED": "yes"})})
    try:
        with anyio.fail_after(30):
            out = await servers.servers["notes"].call("environment", {})
    finally:
        await servers.aclose()
    names = set(json.loads(out.text)) if out.text.startswith("[") else set(out.text.split())
    assert "DECLARED" in names and "PATH" in names and "HOME" in names
    assert "SECRET_OF_THE_SERVER" not in names


async def test_tool_list_is_cached_until_the_server_says_it_changed() -> None:
    server = FastMCP("live")

    @server.tool
    async def grow() -> str:
        """Add a tool and tell the client."""
        from fastmcp.server.dependencies import get_context

        server.add_tool(FastMCP("x").tool(lambda: "new", name="fresh"))  # type: ignore[arg-type]
        await get_context().send_notification(ToolListChangedNotification())
        return "grown"

    servers = Downstreams.from_config(
        {"live": DownstreamServerConfig(command="unused")}, {"live": server}
    )
    live = servers.servers["live"]
    toolset = servers.toolset(["live"], {})
    try:
        before = [t.name for t in await live.tools()]
        offered = [t.name for t in await toolset.list_tools()]
        again = await toolset.list_tools()
        await live.call("grow", {})
        after = [t.name for t in await live.tools()]
        offered_after = [t.name for t in await toolset.list_tools()]
    finally:
        await servers.aclose()
    assert before == ["grow"]
    assert after == ["grow", "fresh"]
    assert [t.name for t in again] == offered == ["live__grow"]
    assert offered_after == ["live__grow", "live__fresh"]


def test_why_a_call_failed_is_short_and_names_no_exception_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from agents_mcp.downstream import _why

    group = ExceptionGroup("unhandled errors in a TaskGroup", [ConnectionRefusedError(111, "x")])
    reasons = [
        _why(OSError(111, "Connection refused"), "s"),
        _why(RuntimeError("Client failed to connect: [Errno 111] Connection refused"), "s"),
        _why(group, "s"),
        _why(TimeoutError(), "s"),
        _why(ValueError("first line\nTraceback (most recent call last): ..."), "s"),
        _why(ValueError("y" * 500), "s")[-3:],
    ]
    assert reasons == [
        "Connection refused",
        "Client failed to connect: Connection refused",
        "x",
        "timed out",
        "first line",
        "yy…",
    ]
    with caplog.at_level(logging.ERROR, "agents_mcp"):
        silent = _why(KeyError(), "server s: calling t")
    assert silent.startswith("internal error (id err_") and "KeyError" not in silent
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is KeyError
