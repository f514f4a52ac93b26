"""The kill matrix: a real server killed with SIGKILL at every step boundary.

A person asks for a note (the call waits for approval), then approves it, or cancels
it. The server (``agents-mcp serve`` over stdio; one real downstream server subprocess
over HTTP for every kill, counting what it executes; the model behind the Chat
Completions fake) is killed at each point where the store commits something
(``AGENTS_MCP_KILL_AT`` of ``tests/killable_server.py``, the server's test entry point),
restarted on the same database (in the test's process: only the kill needs one of its
own), and the person carries on. Then:

* the database passes ``PRAGMA integrity_check``;
* no thread is left ``running``;
* no call executed twice; a cancelled call never executed; an approved call executed
  once, or (killed between recording that it started and running it) says it "may
  have run".

The counts are printed: points x kills, executed twice, never executed though approved,
stuck threads.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from agents_mcp.config import load_config
from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse, ToolCall, Usage
from agents_mcp.server.app import create_server
from agents_mcp.store.states import MAY_HAVE_RUN
from agents_mcp.testing.chat_server import FakeChatServer
from tests import killable_server
from tests.processes import ROOT, http_downstream, write_config

pytestmark = pytest.mark.anyio

BOUND = 60.0


class Model:
    """Asks for a note when the person asks for one; otherwise says it is done."""

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        last = request.messages[-1]
        if last.role == "user":
            args = json.dumps({"title": "n", "body": last.content})
            call = ToolCall(id="w1", name="notes__write_note", arguments=args)
            return LLMResponse(content=None, tool_calls=(call,), usage=Usage())
        return LLMResponse(content="done", usage=Usage())


@contextlib.asynccontextmanager
async def server(config: Path, db: Path, env: dict[str, str]) -> AsyncIterator[Client[Any]]:
    python, *args = killable_server.command("serve", "--config", str(config), "--db", str(db))
    transport = StdioTransport(
        python,
        args,
        env=env,
        cwd=str(ROOT),
        keep_alive=False,
    )
    async with Client(transport, mode="legacy", timeout=BOUND) as client:
        yield client


async def killed_and_restarted(
    tmp_path: Path,
    config: Path,
    env: dict[str, str],
    at: str,
    journey: Callable[[Client[Any]], Awaitable[None]],
    carry_on: Callable[[Client[Any]], Awaitable[None]],
) -> Path:
    """``journey`` on a fresh database with the server killed at ``at``, then ``carry_on``
    with it restarted on that database (`restarted`); the database."""
    db = tmp_path / f"{at.replace(':', '_').replace('#', '_')}.db"
    died = False
    with anyio.fail_after(BOUND):
        try:
            async with server(config, db, {**env, killable_server.KILL_AT: at}) as client:
                await journey(client)
        except Exception:  # it dies under the client's feet
            died = True
    assert died, f"the server was not killed at {at}"
    with anyio.fail_after(BOUND * 2):
        async with restarted(config, db) as client:
            await carry_on(client)
    return db


@contextlib.asynccontextmanager
async def restarted(config: Path, db: Path) -> AsyncIterator[Client[Any]]:
    """The server started again on ``db``, in this process. Only the kill needs a process
    of its own: what a restart runs (the store's recovery at startup, then the person's
    requests) is the same code here, at a fraction of a new process's CPU. The restart
    through ``serve`` itself is ``test_a_question_whose_server_died…``'s, and
    ``test_e2e``'s."""
    app = create_server(load_config(config), db_path=db)
    async with Client(app, mode="legacy", timeout=BOUND) as client:  # as server() speaks
        yield client


async def journey(client: Client[Any], ending: str) -> None:
    """What the person does: ask for a note, then approve it (or cancel it)."""
    first = await client.call_tool("chat_with_agent", {"agent": "scribe", "message": "hi"})
    assert first.structured_content is not None
    tid = first.structured_content["thread_id"]
    if ending == "approve":
        await client.call_tool("approve_call", {"thread_id": tid, "call_id": "w1", "approve": True})
    else:
        await client.call_tool("cancel_run", {"thread_id": tid})


async def carry_on(client: Client[Any], ending: str) -> None:
    """After the restart, the person looks at the thread and finishes what they meant."""
    listed = await client.call_tool("list_threads", {})
    assert listed.structured_content is not None
    for t in listed.structured_content["threads"]:
        tid = t["thread_id"]
        # A failed run (interrupted) is an error result that still carries the thread.
        now = await client.call_tool(
            "get_thread", {"thread_id": tid, "wait_seconds": 20}, raise_on_error=False
        )
        assert now.structured_content is not None
        pending = [p["call_id"] for p in now.structured_content["pending_approvals"]]
        if "w1" in pending:
            if ending == "approve":
                args = {"thread_id": tid, "call_id": "w1", "approve": True}
                await client.call_tool("approve_call", args, raise_on_error=False)
            else:
                await client.call_tool("cancel_run", {"thread_id": tid}, raise_on_error=False)
        args = {"thread_id": tid, "wait_seconds": 20}
        await client.call_tool("get_thread", args, raise_on_error=False)


def state(db: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        (integrity,) = conn.execute("PRAGMA integrity_check").fetchone()
        threads = [dict(r) for r in conn.execute("SELECT id, status FROM threads")]
        approvals = {r["call_id"]: r["status"] for r in conn.execute("SELECT * FROM approvals")}
        results = [
            r["content"] for r in conn.execute("SELECT content FROM messages WHERE role='tool'")
        ]
    return {"integrity": integrity, "threads": threads, "approvals": approvals, "results": results}


SHARDS = 4
"""The boundaries are split between this many tests (every ``SHARDS``-th one each), which
a parallel run spreads over its workers: together they kill the server at every one."""


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("ending", ["approve", "cancel"])
async def test_kill_at_every_step_boundary(tmp_path: Path, ending: str, shard: int) -> None:
    fake = FakeChatServer(Model())
    log = tmp_path / "executed.jsonl"
    # One downstream server for every kill, over HTTP: what it executes is what counts,
    # and starting one per server process would double the CPU the matrix costs.
    with http_downstream("notes", {"DOWNSTREAM_LOG": str(log)}) as url:
        async with fake.serve() as base_url:
            await _kill_everywhere(tmp_path, base_url, url, ending, shard)


async def _kill_everywhere(
    tmp_path: Path, base_url: str, url: str, ending: str, shard: int
) -> None:
    log = tmp_path / "executed.jsonl"
    config = write_config(
        tmp_path / "agents.json",
        {
            "mcpServers": {"notes": {"url": url}},
            "models": {"main": {"base_url": base_url, "model": "m"}},
            "agents": {"scribe": {"description": "d", "model": "main", "servers": ["notes"]}},
        },
    )
    env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    trace = tmp_path / "trace.txt"
    with anyio.fail_after(BOUND):
        async with server(
            config, tmp_path / "trace.db", {**env, killable_server.TRACE: str(trace)}
        ) as client:
            await journey(client, ending)
    hits: dict[str, int] = {}
    boundaries: list[str] = []
    for point in trace.read_text().split():
        hits[point] = hits.get(point, 0) + 1
        if point.startswith(("commit:", "after:")) and not point.endswith(_READS):
            boundaries.append(f"{point}#{hits[point]}")
    assert len(boundaries) >= 8, boundaries

    counts = {"kills": 0, "executed twice": 0, "approved, never executed": 0, "stuck": 0}
    for at in boundaries[shard::SHARDS]:
        log.unlink(missing_ok=True)
        db = await killed_and_restarted(
            tmp_path, config, env, at,
            lambda client: journey(client, ending), lambda client: carry_on(client, ending),
        )  # fmt: skip
        counts["kills"] += 1
        after = state(db)
        ran = len(log.read_text().splitlines()) if log.exists() else 0
        assert after["integrity"] == "ok", at
        stuck = [t for t in after["threads"] if t["status"] == "running"]
        counts["stuck"] += len(stuck)
        assert not stuck, f"killed at {at}: {stuck}"
        assert ran <= 1, f"killed at {at}: the call ran {ran} times"
        counts["executed twice"] += ran > 1
        decided = after["approvals"].get("w1")
        if decided in ("cancelled", "denied"):
            assert ran == 0, f"killed at {at}: the {decided} call ran"
        if decided == "approved" and ran == 0:
            # Only when killed after recording that it started: it says so.
            assert MAY_HAVE_RUN in after["results"], f"killed at {at}: {after}"
            counts["approved, never executed"] += 1
    print(f"\n{ending}, shard {shard + 1}/{SHARDS} of {len(boundaries)} points x 1 kill: {counts}")
    assert counts["executed twice"] == 0 and counts["stuck"] == 0


_READS = (
    ":thread",
    ":thread_turn",
    ":turn",
    ":transcript",
    ":tree",
    ":root_of",
    ":approvals",
    ":pending_in_tree",
    ":decisions",
    ":list_threads",
    ":running_roots",
    ":paused_roots",
    ":stop_requests",
    ":child_for_call",
    ":pending_approvals",
    ":get_task",
    ":task_turn",
    ":open_tasks",
    ":cancelled",
)
"""Reads change nothing: a kill there is a kill at the write before."""


def test_the_product_reads_no_test_hooks() -> None:
    """Killing and tracing are the test entry point's; the package never reads them."""
    for path in (ROOT / "src").rglob("*.py"):
        text = path.read_text()
        assert killable_server.KILL_AT not in text and killable_server.TRACE not in text, path
