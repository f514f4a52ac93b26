"""Sizes: what a thread keeps of big results, and what a reader of it gets back.

A stored result keeps what the model saw and the original up to ``max_stored_result``;
``get_thread(include_messages=true)`` and the transcript resource page by size. Both
through real MCP clients: in memory, and over streamable HTTP to ``agents-mcp serve`` in
its own process.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from inline_snapshot import snapshot

from agents_mcp.server.app import create_server
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config, stdio_downstream
from tests.downstream_server import make_server
from tests.processes import agents_mcp_http, free_port, write_config
from tests.reading import cut_messages, pages, read_parts

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


def stored_sizes(db: Path, thread_id: str) -> dict[str, int]:
    """The largest stored content of each role in the thread, read from the database."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT role, max(length(content)) FROM messages WHERE thread_id=? GROUP BY role",
            (thread_id,),
        ).fetchall()
    return {role: size or 0 for role, size in rows}


async def test_a_10_mb_result_is_not_stored_whole(tmp_path: Path) -> None:
    llm = ScriptedLLM(Call("notes__big", {"size": 10_000_000}, id="b1"), "seen it")
    config = make_config(tmp_path)
    mcp = create_server(
        config,
        db_path=tmp_path / "threads.db",
        llms={"main": llm},
        transports={"notes": make_server("notes")},
    )
    async with Client(mcp) as client:
        payload = await call(client, "chat_with_agent", agent="helper", message="big")
        tid = payload["thread_id"]
        read = await pages(client, f"agents-mcp://threads/{tid}")
        result, _ = await read_parts(client, cut_messages(read[0])[2])
    assert payload["reply"] == "seen it"
    # What the database holds: the first million characters and a note, not 10 MB.
    assert stored_sizes(tmp_path / "threads.db", tid)["tool"] == snapshot(1000069)
    assert "[stored: first 1000000 of 10000000 characters; the rest was dropped]" in result
    # The model saw what it would have seen of the whole result.
    shown = next(m.content or "" for m in llm.requests[1].messages if m.role == "tool")
    assert shown[-130:] == snapshot(
        """\
234567890123456789
[truncated: 50000 of 10000000 characters shown; the first 1000000 characters are kept in the thread transcript]\
"""
    )
    assert shown.startswith("0123456789" * 5000)


async def test_max_stored_result_caps_results_and_replies(tmp_path: Path) -> None:
    llm = ScriptedLLM(Call("notes__big", {"size": 300_000}), "x" * 250_000)
    config = make_config(
        tmp_path, server={"max_stored_result": 100_000, "tool_result_budget": 1_000}
    )
    mcp = create_server(
        config,
        db_path=tmp_path / "threads.db",
        llms={"main": llm},
        transports={"notes": make_server("notes")},
    )
    async with Client(mcp) as client:
        payload = await call(client, "chat_with_agent", agent="helper", message="big")
    sizes = stored_sizes(tmp_path / "threads.db", payload["thread_id"])
    assert (sizes["tool"], sizes["assistant"]) == snapshot((100066, 100066))
    assert payload["reply"].endswith(
        "[reply truncated: 20000 of 100066 characters shown. Read it all in the resource"
        f" agents-mcp://threads/{payload['thread_id']}]"
    )


def test_max_stored_result_below_what_the_model_is_shown_is_refused(tmp_path: Path) -> None:
    from agents_mcp.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, server={"max_stored_result": 10_000})
    assert str(caught.value) == snapshot(
        f"{tmp_path / 'agents.toml'}: server.max_stored_result: must be at least tool_result_budget (50000): the model is shown what is stored"
    )


# -- get_thread pages over HTTP -------------------------------------------------------------


def demo_config(tmp_path: Path) -> Path:
    """The bundled demo model (it calls the tool a message names) and a stdio server."""
    return write_config(
        tmp_path / "agents.json",
        {
            "mcpServers": {"notes": stdio_downstream()},
            "models": {"demo": {"provider": "demo"}},
            "agents": {
                "demo": {"description": "d", "model": "demo", "servers": ["notes"],
                         "require_approval": "never"},
            },
        },
    )  # fmt: skip


def wire_size(result: Any) -> int:
    """Characters the result takes on the wire (its text and its structuredContent)."""
    text = sum(len(c.text) for c in result.content if hasattr(c, "text"))
    return text + len(json.dumps(result.structured_content))


@pytest.mark.parametrize("size", [300_000, 1_200_000])
async def test_get_thread_with_messages_stays_small_over_http(tmp_path: Path, size: int) -> None:
    port = free_port()
    db = tmp_path / "threads.db"
    async with (
        agents_mcp_http(demo_config(tmp_path), db, port=port) as url,
        Client(url) as client,  # the SDK's 1 MiB limit on one SSE event holds
    ):
        message = f'call notes__big {{"size": {size}}}'
        first = await call(client, "chat_with_agent", agent="demo", message=message)
        tid = first["thread_id"]
        with anyio.fail_after(30):
            page = await client.call_tool(
                "get_thread", {"thread_id": tid, "include_messages": True}
            )
            before = page.structured_content["messages_before"]
            back = await client.call_tool(
                "get_thread",
                {"thread_id": tid, "include_messages": True, "messages_before": before},
            )
        # The transcript resource too, page by page, and the big result part by part.
        read = await pages(client, f"agents-mcp://threads/{tid}")
        whole, parts = await read_parts(client, cut_messages(read[0])[2])
    uri = f"agents-mcp://threads/{tid}/messages/2"
    for result in (page, back):
        assert wire_size(result) < 100_000  # about three reply budgets: far from 1 MiB
    shown = [page.structured_content["messages"], back.structured_content["messages"]]
    assert [[(m["index"], m["role"]) for m in p] for p in shown] == [
        [(3, "assistant")],  # the demo model's answer quotes the 50 000 characters it saw
        [(2, "tool")],
    ]
    kept = size if size <= 1_000_000 else 1_000_068  # the stored part and its note
    (tool,) = shown[1]
    assert tool["content"].startswith("0123456789" * 2000)
    assert tool["content"].endswith(
        f"\n[cut: 20000 of {kept} characters shown; the whole message is in the resource {uri}]"
    )
    # The resources hold every stored character, none of them over about 100 000.
    assert "0123456789" * (min(size, 1_000_000) // 10) in whole
    if size > 1_000_000:
        assert "[stored: first 1000000 of 1200000 characters; the rest was dropped]" in whole
    assert all(len(text) < 101_000 for text in [*read, *parts])
    assert len(parts) == (4 if size < 1_000_000 else 11)
