"""``agents-mcp pending``: what waits for you (calls to decide, sign-ins, questions to
answer), and how to give it; ``agents-mcp cancel``: stop a thread's run, or drop the calls
that wait.

Every local thread in ``needs_approval`` (started here or by a stdio client), newest first,
with each waiting call's exact arguments and the ``agents-mcp approve`` command for it;
then every question a downstream server asks during a running thread's call, oldest
first, with the ``agents-mcp chat`` command that asks it on the terminal.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from agents_mcp.cli.chat import waiting_lines
from agents_mcp.cli.invocation import Invocation
from agents_mcp.cli.terminal import Console
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.server.questions import fields, pending_question
from agents_mcp.server.results import agent_result
from agents_mcp.store import LOCAL_OWNER, Question, Thread

if TYPE_CHECKING:
    from agents_mcp.threads.service import Threads

_PAGE = 100


async def pending(
    invocation: Invocation, *, agent: str | None, as_json: bool, console: Console
) -> int:
    """Run the ``pending`` command; returns the exit code (0, also when nothing waits)."""
    from agents_mcp.threads.runtime import open_threads

    config = invocation.load()
    waiting: list[TurnSummary] = []
    async with open_threads(
        config, db_path=invocation.db, recover=False, warn_unresolved=False
    ) as threads:
        cursor: str | None = None
        while True:
            found, _, cursor = await threads.list_threads(
                owner=LOCAL_OWNER, agent=agent, status="needs_approval", limit=_PAGE, cursor=cursor
            )
            for t in found:  # the whole result: exact arguments, the calls of delegations
                waiting.append(await threads.get(owner=LOCAL_OWNER, thread_id=t.id))
            if cursor is None:
                break
        asked = await _questions(threads, agent)
    if as_json:
        results = [agent_result(s).model_dump(mode="json") for s in waiting]
        questions = [pending_question(q).model_dump(mode="json") for q, _ in asked]
        out = {"threads": results, "questions": questions}
        console.line(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    if not waiting and not asked:
        console.status("Nothing waits for approval or for an answer.")
        return 0
    for i, summary in enumerate(waiting):
        t = summary.thread
        if i:
            console.line()
        console.line(f"{t.id} · agent {t.agent} · {t.title}")
        for line in waiting_lines(invocation, t.id, summary.pending):
            console.line(line)
    for i, (q, t) in enumerate(asked):
        if i or waiting:
            console.line()
        console.line(f"{t.id} · agent {t.agent} · {t.title}")
        who = f"{q.server}__{q.tool}" if q.tool else q.server
        console.line(f"  {who} asks: {json.dumps(q.message, ensure_ascii=False)}")
        console.line(f"    answer fields: {fields(q.requested_schema or {})}")
        console.line(f"    `{invocation.command('chat', t.agent, '--thread', t.id)}` asks it here")
    return 0


async def _questions(threads: Threads, agent: str | None) -> list[tuple[Question, Thread]]:
    """Every unanswered question of the local owner, with its top-level thread."""
    out = []
    for q in await threads.open_questions(owner=LOCAL_OWNER):
        thread = await threads.store.thread(q.root_id)
        if thread is not None and (agent is None or thread.agent == agent):
            out.append((q, thread))
    return out


async def cancel(invocation: Invocation, thread_id: str, *, as_json: bool, console: Console) -> int:
    """Run the ``cancel`` command, as ``cancel_run`` does: stop the thread's run (wherever
    it runs) or drop its undecided calls. Exit code 0 once it no longer runs or waits,
    also when there was nothing to cancel (it says so)."""
    from agents_mcp.threads.runtime import open_threads

    config = invocation.load()
    async with open_threads(
        config, db_path=invocation.db, recover=False, warn_unresolved=False
    ) as threads:
        before = await threads.get(owner=LOCAL_OWNER, thread_id=thread_id)
        after = await threads.cancel(owner=LOCAL_OWNER, thread_id=thread_id)
    if as_json:
        console.line(agent_result(after).model_dump_json(indent=2))
    t = after.thread
    was = before.thread.status
    if was not in ("running", "needs_approval"):
        console.status(f"thread {t.id} is {was}: nothing to cancel")
    elif t.status in ("running", "needs_approval"):
        console.status(
            f"agents-mcp: thread {t.id} is still {t.status}; see"
            f" `{invocation.command('show', t.id)}`"
        )
        return 1
    else:
        done = "its run stopped" if was == "running" else "its waiting calls were dropped"
        console.status(f"thread {t.id} is {t.status}: {done}")
        for line in after.cancelled:
            console.status(f"  {line}")
    return 0
