"""When the database fails: a read-only directory, a full disk, a lock held too long.

Each gives the client a clear error naming the cause, never a hang; nothing is corrupted
and no thread is left ``running`` once the database works again.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from agents_mcp.config import config_from_dict
from agents_mcp.server.app import create_server
from tests.conftest import call
from tests.disks import fill, readonly_dir, small_disk
from tests.processes import ROOT, write_config

pytestmark = pytest.mark.anyio

SERVE = [sys.executable, "-m", "agents_mcp", "serve"]
DEMO: dict[str, Any] = {
    "models": {"demo": {"provider": "demo"}},
    "agents": {"echo": {"description": "Echoes", "model": "demo"}},
}


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, db: Path) -> AsyncIterator[Client[Any]]:
    config = config_from_dict(DEMO, path=tmp_path / "agents.toml")
    async with Client(create_server(config, db_path=db), mode="legacy") as client:
        yield client


def integrity(db: Path) -> tuple[str, list[str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (ok,) = conn.execute("PRAGMA integrity_check").fetchone()
        running = [r[0] for r in conn.execute("SELECT id FROM threads WHERE status='running'")]
    return ok, running


def test_a_server_that_cannot_open_its_database_exits_at_once(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agents.json", DEMO)
    with readonly_dir() as ro:
        proc = subprocess.run(
            [*SERVE, "--config", str(config), "--db", str(ro / "threads.db")],
            cwd=ROOT,
            stdin=subprocess.PIPE,  # a client that never speaks: it must not matter
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("agents-mcp:")]
    assert len(errors) == 1, proc.stderr
    assert "read-only" in errors[0] or "cannot" in errors[0]
    assert str(ro) in errors[0]
    assert proc.stdout == ""  # stdout belongs to the protocol


async def test_a_full_disk_is_a_clear_error_and_corrupts_nothing(tmp_path: Path) -> None:
    with small_disk("4m") as disk:
        db = disk / "threads.db"
        failures: list[str] = []
        threads: list[str] = []
        async with serving(tmp_path, db) as client:
            first = await call(client, "chat_with_agent", agent="echo", message="hello")
            threads.append(first["thread_id"])
            filler = fill(disk, leave=400_000)
            big = "x" * 60_000
            for _ in range(30):
                try:
                    with anyio.fail_after(30):  # an answer, not a hang
                        done = await client.call_tool(
                            "chat_with_agent", {"agent": "echo", "message": big}
                        )
                    assert done.structured_content is not None
                    threads.append(done.structured_content["thread_id"])
                except ToolError as exc:
                    failures.append(str(exc))
                    break
            filler.unlink()  # space again: everything goes on
            after = await call(client, "chat_with_agent", agent="echo", message="and now?")
            states = [(await call(client, "get_thread", thread_id=t))["status"] for t in threads]
        ok, running = integrity(db)
    assert failures, "the disk never filled up"
    assert "thread database" in failures[0] and "full" in failures[0]
    assert "Traceback" not in failures[0] and "OperationalError" not in failures[0]
    assert after["status"] == "completed"
    assert "running" not in states
    assert (ok, running) == ("ok", [])


async def test_a_lock_held_past_the_busy_timeout_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agents_mcp.store.sqlite.BUSY_MS", 200)
    db = tmp_path / "threads.db"
    async with serving(tmp_path, db) as client:
        first = await call(client, "chat_with_agent", agent="echo", message="hello")
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # `agents-mcp chat` in a long write, say
            with pytest.raises(ToolError) as refused, anyio.fail_after(30):
                await client.call_tool(
                    "chat_with_agent",
                    {"agent": "echo", "message": "again", "thread_id": first["thread_id"]},
                )
            other.execute("ROLLBACK")
        again = await call(
            client, "chat_with_agent", agent="echo", message="again", thread_id=first["thread_id"]
        )
    assert "locked by another process" in str(refused.value)
    assert again["status"] == "completed"
    assert integrity(db) == ("ok", [])


async def test_a_row_locked_by_another_postgresql_session_is_a_clear_error(
    tmp_path: Path, pg_cluster: str
) -> None:
    """Another session holding the thread's row (a replica hung inside a transaction):
    the request answers after the lock timeout, naming the cause, instead of hanging."""
    import asyncpg

    from tests.postgres import fresh_database

    db = await fresh_database(pg_cluster)
    config = config_from_dict({**DEMO, "server": {"db": db}}, path=tmp_path / "agents.toml")
    async with Client(create_server(config), mode="legacy") as client:
        first = await call(client, "chat_with_agent", agent="echo", message="hello")
        other = await asyncpg.connect(db)
        try:
            lock = other.transaction()
            await lock.start()
            await other.execute("SELECT * FROM threads WHERE id=$1 FOR UPDATE", first["thread_id"])
            with pytest.raises(ToolError) as refused, anyio.fail_after(30):
                await client.call_tool(
                    "chat_with_agent",
                    {"agent": "echo", "message": "again", "thread_id": first["thread_id"]},
                )
            await lock.rollback()
        finally:
            await other.close()
        again = await call(
            client, "chat_with_agent", agent="echo", message="again", thread_id=first["thread_id"]
        )
    assert "stayed locked by another session" in str(refused.value)
    assert again["status"] == "completed"
