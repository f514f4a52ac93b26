"""A downstream server's question, with the server killed at every point of its journey.

The person asks for a note; the downstream tool (``confirm_note`` of a real downstream
server subprocess, which records each note it saves) asks the person to confirm; the
person answers with ``answer_question``; the tool saves the note and the run completes.
The server (``agents-mcp serve`` over stdio through ``tests/killable_server.py``, the
model behind the Chat Completions fake) is killed with SIGKILL at each point where the
store commits something, restarted on the same database, and the person carries on
(answers a question still pending, looks at the thread). Then:

* the database passes ``PRAGMA integrity_check``;
* no thread is left ``running``, and no question ``pending``;
* the note was saved at most once; when it was not saved though the person confirmed,
  the call's result says that it did not complete, or that it may have run;
* a question whose run is gone is refused with why, never taken.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse, ToolCall, Usage
from agents_mcp.store.states import INTERRUPTED_ASKING, MAY_HAVE_RUN
from agents_mcp.testing.chat_server import FakeChatServer
from tests import killable_server
from tests.conftest import stdio_downstream
from tests.processes import http_downstream, write_config
from tests.reading import structured, text_of
from tests.test_crashes import _READS, killed_and_restarted, server

pytestmark = pytest.mark.anyio

BOUND = 60.0
NOT_COMPLETED = INTERRUPTED_ASKING.format(message="\"Save the note 'n'?\"")


class Model:
    """Saves a note when the person asks for one; otherwise says it is done."""

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        if request.messages[-1].role == "user":
            call = ToolCall(id="c1", name="notes__confirm_note", arguments='{"title": "n"}')
            return LLMResponse(content=None, tool_calls=(call,), usage=Usage())
        return LLMResponse(content="done", usage=Usage())


async def answer_all(client: Client[Any], tid: str, result: dict[str, Any]) -> None:
    """Confirm every question the result shows."""
    for q in result.get("pending_questions", []):
        args = {"thread_id": tid, "question_id": q["question_id"], "content": {"value": True}}
        await client.call_tool("answer_question", args, raise_on_error=False)


async def journey(client: Client[Any]) -> None:
    """What the person does: ask for a note, confirm it when asked."""
    first = await client.call_tool("chat_with_agent", {"agent": "scribe", "message": "hi"})
    assert first.structured_content is not None
    await answer_all(client, first.structured_content["thread_id"], first.structured_content)


async def carry_on(client: Client[Any]) -> None:
    """After the restart, the person looks at the thread and answers what still asks."""
    listed = await client.call_tool("list_threads", {})
    assert listed.structured_content is not None
    for t in listed.structured_content["threads"]:
        tid = t["thread_id"]
        args = {"thread_id": tid, "wait_seconds": 20}
        now = await client.call_tool("get_thread", args, raise_on_error=False)
        assert now.structured_content is not None
        await answer_all(client, tid, now.structured_content)
        await client.call_tool("get_thread", args, raise_on_error=False)


def state(db: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        (integrity,) = conn.execute("PRAGMA integrity_check").fetchone()
        threads = [dict(r) for r in conn.execute("SELECT id, status FROM threads")]
        questions = [dict(r) for r in conn.execute("SELECT status, action FROM questions")]
        results = [
            r["content"] for r in conn.execute("SELECT content FROM messages WHERE role='tool'")
        ]
    return {"integrity": integrity, "threads": threads, "questions": questions, "results": results}


def notes_config(
    tmp_path: Path, base_url: str, log: Path, protocol: str, url: str | None = None
) -> Path:
    """The scribe and its notes server: a stdio subprocess of the server, or the one at
    ``url`` (shared by the server's restarts)."""
    stdio = stdio_downstream("--extra", env={"DOWNSTREAM_LOG": str(log)})
    reached: dict[str, Any] = {"url": url} if url else stdio
    return write_config(
        tmp_path / "agents.json",
        {
            "mcpServers": {"notes": {**reached, "protocol": protocol}},
            "models": {"main": {"base_url": base_url, "model": "m"}},
            "agents": {
                "scribe": {
                    "description": "d",
                    "model": "main",
                    "servers": ["notes"],
                    "require_approval": "never",
                }
            },
        },
    )


async def boundaries(config: Path, tmp_path: Path, env: dict[str, str]) -> list[str]:
    """Every point where the journey's store commits something, with its occurrence."""
    trace = tmp_path / "trace.txt"
    with anyio.fail_after(BOUND):
        async with server(
            config, tmp_path / "trace.db", {**env, killable_server.TRACE: str(trace)}
        ) as client:
            await journey(client)
    hits: dict[str, int] = {}
    found: list[str] = []
    for point in trace.read_text().split():
        hits[point] = hits.get(point, 0) + 1
        if point.startswith(("commit:", "after:")) and not point.endswith(
            (*_READS, ":question", ":pending_questions", ":open_questions")
        ):
            found.append(f"{point}#{hits[point]}")
    return found


SHARDS = 2
"""The points are split between this many tests (every ``SHARDS``-th one each), which a
parallel run spreads over its workers: together they kill the server at every one."""


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_kill_at_every_point_of_a_question_s_journey(
    tmp_path: Path, protocol: str, shard: int
) -> None:
    fake = FakeChatServer(Model())
    log = tmp_path / "saved.jsonl"
    # One downstream server for every kill, over HTTP: what it saves is what counts, and
    # starting one per server process would double the CPU the matrix costs.
    with http_downstream("notes", {"DOWNSTREAM_LOG": str(log)}, extra=True) as url:
        async with fake.serve() as base_url:
            config = notes_config(tmp_path, base_url, log, protocol, url)
            await _kill_everywhere(tmp_path, config, protocol, shard)


async def _kill_everywhere(tmp_path: Path, config: Path, protocol: str, shard: int) -> None:
    log = tmp_path / "saved.jsonl"
    env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    points = await boundaries(config, tmp_path, env)
    assert {"after:ask_question#1", "after:answer_question#1"} <= set(points), points
    counts = {"kills": 0, "saved twice": 0, "confirmed, not saved": 0, "stuck": 0}
    for at in points[shard::SHARDS]:
        log.unlink(missing_ok=True)
        db = await killed_and_restarted(tmp_path, config, env, at, journey, carry_on)
        counts["kills"] += 1
        after = state(db)
        saved = len(log.read_text().splitlines()) if log.exists() else 0
        assert after["integrity"] == "ok", at
        stuck = [t for t in after["threads"] if t["status"] == "running"]
        stuck += [q for q in after["questions"] if q["status"] == "pending"]
        counts["stuck"] += len(stuck)
        assert not stuck, f"killed at {at}: {stuck}"
        assert saved <= 1, f"killed at {at}: the note was saved {saved} times"
        counts["saved twice"] += saved > 1
        confirmed = any(q["action"] == "accept" for q in after["questions"])
        if saved == 0 and confirmed:
            said = {NOT_COMPLETED, MAY_HAVE_RUN} & set(after["results"])
            assert said, f"killed at {at}: {after}"
            counts["confirmed, not saved"] += 1
    print(f"\n{protocol}, shard {shard + 1}/{SHARDS} of {len(points)} points x 1 kill: {counts}")
    assert counts["saved twice"] == 0 and counts["stuck"] == 0


async def test_a_question_whose_server_died_is_refused_and_the_model_may_call_again(
    tmp_path: Path,
) -> None:
    """Killed while the question waits: after the restart the call did not complete (the
    model is told so), the late answer is refused with why, and a new message lets the
    model call the tool again, which asks again and saves the note once."""
    fake = FakeChatServer(Model())
    async with fake.serve() as base_url:
        log = tmp_path / "saved.jsonl"
        config = notes_config(tmp_path, base_url, log, "legacy")
        env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
        db = tmp_path / "t.db"
        kill = {**env, killable_server.KILL_AT: "after:ask_question"}
        with anyio.fail_after(BOUND), contextlib.suppress(Exception):
            async with server(config, db, kill) as client:
                await client.call_tool("chat_with_agent", {"agent": "scribe", "message": "hi"})
        with anyio.fail_after(BOUND * 2):
            async with server(config, db, env) as client:
                (t,) = structured(await client.call_tool("list_threads", {}))["threads"]
                tid = t["thread_id"]
                late = await client.call_tool(
                    "get_thread", {"thread_id": tid, "include_messages": True}, raise_on_error=False
                )
                with sqlite3.connect(db) as conn:
                    (question_id,) = conn.execute("SELECT id FROM questions").fetchone()
                refused = await client.call_tool(
                    "answer_question",
                    {"thread_id": tid, "question_id": question_id, "content": {"value": True}},
                    raise_on_error=False,
                )
                again = await client.call_tool(
                    "chat_with_agent", {"agent": "scribe", "message": "again", "thread_id": tid}
                )
                assert again.structured_content is not None
                await answer_all(client, tid, again.structured_content)
                done = await client.call_tool("get_thread", {"thread_id": tid, "wait_seconds": 20})
    page = late.structured_content
    assert page is not None and page["status"] == "failed"
    assert page["error"]["type"] == "interrupted"
    assert [m["content"] for m in page["messages"] if m["role"] == "tool"] == [NOT_COMPLETED]
    assert refused.is_error
    assert "can no longer be answered: the run that asked it ended" in text_of(refused.content[0])
    assert done.structured_content is not None and done.structured_content["status"] == "completed"
    assert [json.loads(line)["tool"] for line in log.read_text().splitlines()] == ["confirm_note"]
