"""The SQLite store: migrations, recovery, ids."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from inline_snapshot import snapshot

from agents_mcp._migrations import MIGRATIONS
from agents_mcp.errors import ConfigError, NotFound
from agents_mcp.messages import Message, ToolCall
from agents_mcp.store import INTERRUPTED, Store

pytestmark = pytest.mark.anyio


async def test_a_blank_database_is_migrated_and_recorded(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    await store.close()
    db = sqlite3.connect(tmp_path / "t.db")
    versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    tables = [
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1")
    ]
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert versions == [v for v, _, _ in MIGRATIONS]
    assert tables == snapshot(["approvals", "grants", "messages", "schema_migrations", "threads"])
    assert mode == "wal"
    # Opening again applies nothing twice.
    store = await Store.open(tmp_path / "t.db")
    await store.close()


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    await store.close()
    db = sqlite3.connect(tmp_path / "t.db")
    db.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 'x')")
    db.commit()
    with pytest.raises(ConfigError, match="schema version 999, newer than this agents-mcp knows"):
        await Store.open(tmp_path / "t.db")


async def test_recovery_marks_interrupted_steps_and_keeps_the_rest(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    t = await store.create_thread(agent="a", owner="local", first_message="hi")
    call = ToolCall(id="c1", name="s__t", arguments="{}")
    await store.append(t.id, Message(role="assistant", tool_calls=(call,)))
    await store.append(t.id, Message(role="tool", tool_call_id="c1", status="pending"))
    await store.close()  # the process dies mid-call; a new one opens the database
    store = await Store.open(tmp_path / "t.db")
    running = await store.recover()
    history = await store.messages(t.id)
    await store.close()
    assert running == [t.id]
    assert [(h.message.role, h.message.status, h.message.content) for h in history] == [
        ("user", "complete", "hi"),
        ("assistant", "complete", None),
        ("tool", "error", INTERRUPTED),
    ]


async def test_thread_ids_are_unguessable_and_owner_checked(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    ids = {
        (await store.create_thread(agent="a", owner="me", first_message="x")).id for _ in range(50)
    }
    with pytest.raises(NotFound):
        await store.get_thread(next(iter(ids)), "someone-else")
    await store.close()
    assert len(ids) == 50
    assert all(i.startswith("th_") and len(i) >= 3 + 24 for i in ids)  # 144 random bits


async def test_recovery_leaves_the_runs_of_a_live_process_alone(tmp_path: Path) -> None:
    """The server and `agents-mcp chat` may share a database: opening it must not mark the
    other process's running thread as interrupted; only a gone process's threads are."""
    server = await Store.open(tmp_path / "t.db")
    live = await server.create_thread(agent="a", owner="local", first_message="working")
    await server.append(live.id, Message(role="tool", tool_call_id="c", status="pending"))
    cli = await Store.open(tmp_path / "t.db")
    assert await cli.recover() == []
    assert (await cli.messages(live.id))[-1].message.status == "pending"
    await server.close()  # the server process ends (its lock goes with it)
    assert await cli.recover() == [live.id]
    assert (await cli.messages(live.id))[-1].message.status == "error"
    await cli.close()
