"""Questions of downstream servers at the level of ``Threads``: across replicas, and when
a question cannot be told whose it is.

Two runtimes on one PostgreSQL database stand for two replicas (each its own store,
lease and runs): a question asked by a run on one is answered on the other, which
waits for the result through the store. In the handshake era a question asked while
calls of two runs are in flight on one server cannot be told whose it is: it is
answered ``cancel`` and stored nowhere; in 2026-07-28 the same question reaches its run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from agents_mcp.engine.agent import RunEvent
from agents_mcp.store import LOCAL_OWNER
from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.threads.runtime import open_threads
from agents_mcp.threads.service import Threads
from tests.conftest import make_config, stdio_downstream
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio

ASK = Call("notes__ask", {"question": "Which colour?"}, id="c1")


def config(tmp_path: Path, protocol: str = "legacy", db: str | None = None) -> Any:
    notes = stdio_downstream("--extra", protocol=protocol)
    agents = {
        name: {
            "description": "d",
            "model": "main",
            "servers": ["notes"],
            "require_approval": "never",
        }
        for name in ("asker", "sleeper")
    }
    server = {"db": db} if db is not None else None
    return make_config(tmp_path, servers={"notes": notes}, agents=agents, server=server)


async def test_a_question_asked_on_one_replica_is_answered_on_another(
    tmp_path: Path, pg_cluster: str
) -> None:
    url = await fresh_database(pg_cluster)
    first = ScriptedLLM(ASK, "done")
    cfg = config(tmp_path)
    async with (
        open_threads(cfg, db_path=url, llms={"main": first}) as a,
        open_threads(cfg, db_path=url, llms={"main": ScriptedLLM()}) as b,
    ):
        with anyio.fail_after(60):
            asked = await a.chat(owner=LOCAL_OWNER, agent="asker", message="go", wait=30)
            (q,) = asked.questions
            seen = await b.get(owner=LOCAL_OWNER, thread_id=asked.thread.id, wait=30)
            done = await b.answer_question(
                owner=LOCAL_OWNER,
                thread_id=asked.thread.id,
                question_id=q.id,
                content={"value": "from b"},
                wait=30,
            )
    assert [x.id for x in seen.questions] == [q.id]  # B shows it at once, without waiting
    assert (done.thread.status, done.reply) == ("completed", "done")
    shown = [m.content for m in first.requests[1].messages if m.role == "tool"]
    assert shown == ["asked 'Which colour?': accept from b"]


async def sleeping(threads: Threads) -> str:
    """Start a run whose call sleeps on the server; returns once the call is made."""
    calling = anyio.Event()

    async def on(event: RunEvent) -> None:
        if event.text == "calling notes__sleep":
            calling.set()

    async def chat() -> None:
        await threads.chat(
            owner=LOCAL_OWNER, agent="sleeper", message="sleep", wait=30, progress=on
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(chat)
        await calling.wait()
        tg.cancel_scope.cancel()  # the wait only: the run goes on (on_cancel = "detach")
    listed, _, _ = await threads.list_threads(owner=LOCAL_OWNER, agent="sleeper")
    return listed[0].id


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_a_question_whose_run_cannot_be_told_is_answered_cancel(
    tmp_path: Path, protocol: str
) -> None:
    """Handshake era: while another run's call is in flight on the same server, the
    question names no call, so nobody is asked (``cancel``, nothing stored). The
    2026-07-28 era ties it to its call: the question waits for its run's person."""
    llm = ScriptedLLM(Call("notes__sleep", {"seconds": 30}, id="s1"), ASK, "done")
    async with open_threads(
        config(tmp_path, protocol), db_path=tmp_path / "t.db", llms={"main": llm}
    ) as threads:
        with anyio.fail_after(60):
            sleeper = await sleeping(threads)
            asked = await threads.chat(owner=LOCAL_OWNER, agent="asker", message="ask", wait=30)
            await threads.cancel(owner=LOCAL_OWNER, thread_id=sleeper)
            if protocol == "2026-07-28":
                (q,) = asked.questions
                asked = await threads.answer_question(
                    owner=LOCAL_OWNER,
                    thread_id=asked.thread.id,
                    question_id=q.id,
                    action="decline",
                    wait=30,
                )
            stored = await threads.open_questions(owner=LOCAL_OWNER)
    assert (asked.thread.status, stored) == ("completed", [])
    action = "cancel" if protocol == "legacy" else "decline"
    shown = [m.content for r in llm.requests for m in r.messages if m.role == "tool"]
    assert f"asked 'Which colour?': {action} None" in shown
