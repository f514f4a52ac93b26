"""The end of a thread's life through a real MCP client, on SQLite and PostgreSQL:
``delete_thread`` (owner only, finished threads only, a delegation with its top-level
thread) and ``[server] retain_days`` (the background sweep of old finished threads)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError

from agents_mcp.errors import LLMError
from agents_mcp.messages import LLMRequest
from agents_mcp.server.app import create_server
from agents_mcp.store import SQLStore, open_store
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config
from tests.downstream_server import make_server
from tests.processes import agents_mcp_in_process
from tests.reading import text_of

pytestmark = pytest.mark.anyio

AGENTS: dict[str, Any] = {
    "helper": {"description": "Helps", "model": "main", "require_approval": "never"},
    "careful": {
        "description": "Asks first",
        "model": "main",
        "servers": ["notes"],
        "require_approval": "always",
    },
    "boss": {"description": "Delegates", "model": "main", "agents": ["helper"]},
}
TABLES = ("threads", "messages", "approvals", "grants")


@asynccontextmanager
async def serving(
    tmp_path: Path, db: str, llm: ScriptedLLM, **server: Any
) -> AsyncIterator[Client[Any]]:
    cfg = make_config(tmp_path, agents=AGENTS, server={"db": db, **server})
    mcp = create_server(cfg, llms={"main": llm}, transports={"notes": make_server("notes")})
    async with Client(mcp, mode="auto") as client:
        yield client


async def refusal(client: Client[Any], tool: str, **args: Any) -> str:
    with anyio.fail_after(30), pytest.raises(ToolError) as refused:
        await client.call_tool(tool, args)
    return str(refused.value)


async def rows(db: str, thread_ids: list[str]) -> dict[str, int]:
    """How many rows of each per-thread table name one of ``thread_ids``, read directly."""
    store = await open_store(db)
    try:
        return await count_rows(store, thread_ids)
    finally:
        await store.close()


async def count_rows(store: SQLStore, thread_ids: list[str]) -> dict[str, int]:
    marks = ", ".join("?" * len(thread_ids))

    async def body(tx: Any) -> dict[str, int]:
        out = {}
        for table in TABLES:
            key = "id" if table == "threads" else "thread_id"
            row = await tx.fetchrow(
                f"SELECT count(*) AS n FROM {table} WHERE {key} IN ({marks})", thread_ids
            )
            out[table] = int(row["n"])
        return out

    counted: dict[str, int] = await store.db.read("test", body)
    return counted


async def test_delete_thread_removes_a_finished_tree_and_refuses_the_rest(
    tmp_path: Path, db_url: str
) -> None:
    started, release = anyio.Event(), anyio.Event()

    async def slow(request: LLMRequest) -> str:
        started.set()
        await release.wait()
        return "Slow done."

    llm = ScriptedLLM(
        "Answer one.",
        Call("agent__helper", {"message": "hi"}, id="d1"),
        "Child answer.",
        "Boss done.",
        Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"),
        slow,
        "Written.",
    )
    async with serving(tmp_path, db_url, llm) as client:
        kept = (await call(client, "chat_with_agent", agent="helper", message="one"))["thread_id"]
        boss = (await call(client, "chat_with_agent", agent="boss", message="go"))["thread_id"]
        (child,) = (await call(client, "get_thread", thread_id=boss))["children"]
        waiting = await call(client, "chat_with_agent", agent="careful", message="write")
        running = await call(
            client, "chat_with_agent", agent="helper", message="slow", wait_seconds=0
        )
        with anyio.fail_after(30):
            await started.wait()

        refused = {
            "child": await refusal(client, "delete_thread", thread_id=child["thread_id"]),
            "waiting": await refusal(client, "delete_thread", thread_id=waiting["thread_id"]),
            "running": await refusal(client, "delete_thread", thread_id=running["thread_id"]),
        }
        assert f"is a delegation (agent 'helper') inside thread {boss!r}" in refused["child"]
        assert (
            "waits for approval: only a finished thread can be deleted; decide its"
            in (refused["waiting"])
        )
        assert (
            "is running: only a finished thread can be deleted; stop it with cancel_run"
            in (refused["running"])
        )

        deleted = await client.call_tool("delete_thread", {"thread_id": boss})
        assert deleted.structured_content == {
            "thread_id": boss,
            "agent": "boss",
            "deleted_threads": [boss, child["thread_id"]],
        }
        assert text_of(deleted.content[0]) == (
            f"Deleted thread {boss} (agent boss) and 1 delegation thread(s) under it."
        )
        for gone in (boss, child["thread_id"]):
            assert await refusal(client, "get_thread", thread_id=gone) == (
                f"thread {gone!r} not found"
            )
            with anyio.fail_after(30), pytest.raises(Exception, match="not found"):
                await client.read_resource(f"agents-mcp://threads/{gone}")
        assert await refusal(client, "delete_thread", thread_id=boss) == (
            f"thread {boss!r} not found"
        )
        listed = await call(client, "list_threads", include_children=True)
        assert boss not in {t["thread_id"] for t in listed["threads"]}

        # The waiting thread, decided with a grant for the rest of it: then it goes too.
        await call(
            client, "approve_call", thread_id=waiting["thread_id"], call_id="w1", approve=True,
            scope="thread",
        )  # fmt: skip
        release.set()
        done = await call(client, "get_thread", thread_id=running["thread_id"], wait_seconds=30)
        assert done["status"] == "completed"
        for finished in (waiting["thread_id"], running["thread_id"]):
            await client.call_tool("delete_thread", {"thread_id": finished})
        listed = await call(client, "list_threads", include_children=True)
        assert [t["thread_id"] for t in listed["threads"]] == [kept]

    every = [boss, child["thread_id"], waiting["thread_id"], running["thread_id"]]
    assert await rows(db_url, every) == dict.fromkeys(TABLES, 0)
    assert (await rows(db_url, [kept]))["messages"] == 2


async def test_only_the_owner_can_delete_a_thread(tmp_path: Path, db_url: str) -> None:
    tokens = {"alice": "alice-secret", "bob": "bob-secret"}
    cfg = make_config(
        tmp_path,
        agents=AGENTS,
        server={"db": db_url, "tokens": {o: {"token": t} for o, t in tokens.items()}},
    )
    llm = ScriptedLLM("Hello Alice.")

    def client(url: str, owner: str) -> Client[Any]:
        return Client(StreamableHttpTransport(url, auth=tokens[owner]))

    async with agents_mcp_in_process(cfg, db_url, llms={"main": llm}) as url:
        async with client(url, "alice") as alice:
            tid = (await call(alice, "chat_with_agent", agent="helper", message="hi"))["thread_id"]
        async with client(url, "bob") as bob:
            assert await refusal(bob, "delete_thread", thread_id=tid) == f"thread {tid!r} not found"
        async with client(url, "alice") as alice:
            assert (await call(alice, "get_thread", thread_id=tid))["status"] == "completed"
            await alice.call_tool("delete_thread", {"thread_id": tid})
            assert await refusal(alice, "get_thread", thread_id=tid) == f"thread {tid!r} not found"


async def test_retention_deletes_finished_threads_not_updated_for_retain_days(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old finished trees (completed, failed, cancelled) go with every row of theirs;
    recent ones, and old ones still waiting for approval, stay."""
    llm = ScriptedLLM(
        "Old answer.",
        LLMError("the provider failed", status=500),
        Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"),
        Call("notes__write_note", {"title": "u", "body": "c"}, id="w2"),
        Call("agent__helper", {"message": "hi"}, id="d1"),
        "Child answer.",
        "Boss done.",
        "New answer.",
    )
    async with serving(tmp_path, db_url, llm) as client:
        ids: dict[str, str] = {}
        for name, agent in [
            ("completed", "helper"),
            ("failed", "helper"),
            ("cancelled", "careful"),
            ("waiting", "careful"),
            ("tree", "boss"),
            ("recent", "helper"),
        ]:
            ids[name] = (await call(client, "chat_with_agent", agent=agent, message=name))[
                "thread_id"
            ]
        await call(client, "cancel_run", thread_id=ids["cancelled"])
        (child,) = (await call(client, "get_thread", thread_id=ids["tree"]))["children"]
    old = [ids[k] for k in ("completed", "failed", "cancelled", "waiting", "tree")]
    store = await open_store(db_url)
    try:

        async def age(tx: Any) -> None:
            marks = ", ".join("?" * len(old))
            await tx.execute(
                f"UPDATE threads SET updated_at='2020-01-01T00:00:00.000Z' WHERE id IN ({marks})",
                old,
            )

        await store.db.transaction("test", age)
    finally:
        await store.close()

    swept = anyio.Event()
    from agents_mcp.threads import lifecycle

    real = lifecycle.sweep_expired

    async def observed(store: Any, days: float) -> int:
        count = await real(store, days)
        swept.set()
        return count

    monkeypatch.setattr(lifecycle, "sweep_expired", observed)
    async with serving(tmp_path, db_url, ScriptedLLM(), retain_days=30) as client:
        with anyio.fail_after(30):
            await swept.wait()
        listed = await call(client, "list_threads", include_children=True)
        assert {t["thread_id"] for t in listed["threads"]} == {ids["waiting"], ids["recent"]}
        for gone in ("completed", "failed", "cancelled", "tree"):
            thread_id = ids[gone]
            assert await refusal(client, "get_thread", thread_id=thread_id) == (
                f"thread {thread_id!r} not found"
            )
    deleted = [ids[k] for k in ("completed", "failed", "cancelled", "tree")] + [child["thread_id"]]
    assert await rows(db_url, deleted) == dict.fromkeys(TABLES, 0)
    assert (await rows(db_url, [ids["waiting"]]))["approvals"] == 1
