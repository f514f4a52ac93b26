"""A failing thread database, through a real MCP client on SQLite and PostgreSQL: the
client learns what happened and an error id; where the database is (a path, a user,
host, port and database name) and the driver's own words go to the log only."""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from agents_mcp.server.app import create_server
from agents_mcp.store import SQLStore, postgres
from agents_mcp.store.sqlite import store_error
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config
from tests.downstream_server import make_server

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def locked(db: str, thread_id: str) -> AsyncIterator[None]:
    """Another process or session holding the thread (a long write, a hung replica)."""
    if not db.startswith("postgresql://"):
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            yield
            other.execute("ROLLBACK")
        return
    import asyncpg

    session = await asyncpg.connect(db)
    try:
        async with session.transaction():
            await session.execute("SELECT * FROM threads WHERE id=$1 FOR UPDATE", thread_id)
            yield
    finally:
        await session.close()


def secrets_of(db: str) -> list[str]:
    """What must not reach a client: the database's whereabouts, the driver's words."""
    if not db.startswith("postgresql://"):
        return [db, str(Path(db).parent), "database is locked", "sqlite3", "OperationalError"]
    found = re.fullmatch(r"postgresql://(\w+)@([\d.]+):(\d+)/(\w+)", db)
    assert found is not None
    return [*found.groups(), "postgresql://", "lock timeout", "asyncpg"]


async def test_a_database_failure_tells_the_client_what_happened_but_not_where(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("agents_mcp.store.sqlite.BUSY_MS", 200)
    monkeypatch.setitem(postgres.SESSION_SETTINGS, "lock_timeout", "200")
    cfg = make_config(tmp_path, servers={}, agents={"a": {"description": "d", "model": "main"}})
    cfg = cfg.model_copy(update={"server": cfg.server.model_copy(update={"db": db_url})})
    llm = ScriptedLLM("First.", "Again.")
    mcp = create_server(cfg, llms={"main": llm})
    caplog.set_level(logging.ERROR, logger="agents_mcp")
    async with Client(mcp, mode="auto") as client:
        first = await call(client, "chat_with_agent", agent="a", message="hello")
        async with locked(db_url, first["thread_id"]):
            with anyio.fail_after(30), pytest.raises(ToolError) as refused:
                await client.call_tool(
                    "chat_with_agent",
                    {"agent": "a", "message": "again", "thread_id": first["thread_id"]},
                )
        again = await call(
            client, "chat_with_agent", agent="a", message="again", thread_id=first["thread_id"]
        )
    said = str(refused.value)
    assert re.fullmatch(
        r"agents-mcp could not use its thread database: it stayed locked by another"
        r" (process|session) (too long|for more than 5 s); try again \(error id err_[0-9a-f]{12};"
        r" the server log has the details\)",
        said,
    ), said
    assert [s for s in secrets_of(db_url) if s in said] == []
    error_id = re.findall(r"err_[0-9a-f]{12}", said)[0]
    (logged,) = [r.getMessage() for r in caplog.records if error_id in r.getMessage()]
    where = db_url.split("@")[-1] if db_url.startswith("postgresql://") else Path(db_url).name
    assert where in logged and "chat_with_agent request" in logged
    assert again["status"] == "completed"


async def test_a_run_stopped_by_the_database_records_what_happened_but_not_where(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails under a run (here: as the call's result is written); the error
    the thread keeps, which every client reads, has no location or driver text."""
    hidden = "db.internal.example:6543"
    if db_url.startswith("postgresql://"):
        driver = "Connect call failed"
        failure = postgres.pg_error(OSError(driver), f"postgresql://u@{hidden}/t")
    else:
        driver = "disk I/O error"
        failure = store_error(sqlite3.OperationalError(driver), f"/srv/{hidden}/t.db")
    real = SQLStore.finish_call
    fired: list[bool] = []

    async def failing(self: SQLStore, *args: Any, **kwargs: Any) -> None:
        if not fired:
            fired.append(True)
            raise failure
        await real(self, *args, **kwargs)

    monkeypatch.setattr(SQLStore, "finish_call", failing)
    cfg = make_config(tmp_path, server={"db": db_url})
    llm = ScriptedLLM(Call("notes__echo", {"text": "hi"}, id="c1"))
    mcp = create_server(cfg, llms={"main": llm}, transports={"notes": make_server("notes")})
    async with Client(mcp, mode="auto") as client:
        result = await call(client, "chat_with_agent", agent="helper", message="echo hi")
    assert result["status"] == "failed" and fired
    message = result["error"]["message"]
    assert message.startswith("agents-mcp could not use its thread database: it ")
    assert "error id err_" in message
    assert hidden not in message and driver not in message
