"""``agents-mcp threads`` and ``agents-mcp show``: read the thread database.

Only the store is opened: no model, no downstream server. The threads shown are the
``local`` owner's, the ones started over stdio or from the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio

from agents_mcp.cli.terminal import Console
from agents_mcp.engine.summary import pending_in_tree
from agents_mcp.engine.usage import dollars
from agents_mcp.errors import NotFound
from agents_mcp.messages import Usage
from agents_mcp.server.listing import ThreadList, thread_info
from agents_mcp.store import (
    LOCAL_OWNER,
    Approval,
    StoredMessage,
    Thread,
    ThreadStatus,
    is_url,
    open_store,
    shown,
)
from agents_mcp.threads.lifecycle import Hints
from agents_mcp.threads.lifecycle import delete_thread as delete

_TITLE_WIDTH = 48


async def list_threads(
    db_path: str,
    console: Console,
    *,
    agent: str | None,
    status: ThreadStatus | None,
    limit: int,
    as_json: bool,
    children: bool = False,
    cursor: str | None = None,
) -> int:
    if not await has_database(db_path):  # don't create a database just to list it
        threads: list[Thread] = []
        next_cursor: str | None = None
        pending: dict[str, list[Approval]] = {}
    else:
        threads, next_cursor, pending = await _listing(
            db_path, agent, status, limit, children, cursor
        )
    if as_json:
        listing = ThreadList(
            threads=[thread_info(t, pending.get(t.id, [])) for t in threads],
            next_cursor=next_cursor,
        )
        console.line(listing.model_dump_json(indent=2))
        return 0
    if not threads:
        console.status(f"no threads in {shown(db_path)}")
        return 0
    rows = [("THREAD", "AGENT", "STATUS", "UPDATED", "TITLE")]
    rows += [(t.id, t.agent, t.status, _when(t.updated_at), _short(t.title)) for t in threads]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, row in enumerate(rows):
        console.line("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[4]]))
        if i and threads[i - 1].id in pending:
            for a in pending[threads[i - 1].id]:
                console.line(f"    waiting: {_call(a)} (call {a.call_id})")
    if next_cursor is not None:
        console.status(f"(more threads: add --cursor {next_cursor})")
    return 0


async def has_database(db: str) -> bool:
    """Whether there is a database to read: a PostgreSQL URL always names one (opening
    it says if it cannot be reached); a SQLite file may not have been created yet."""
    return is_url(db) or db == ":memory:" or await anyio.Path(db).exists()


async def _listing(
    db_path: str,
    agent: str | None,
    status: ThreadStatus | None,
    limit: int,
    children: bool,
    cursor: str | None = None,
) -> tuple[list[Thread], str | None, dict[str, list[Approval]]]:
    store = await open_store(db_path)
    try:
        threads, next_cursor = await store.list_threads(
            owner=LOCAL_OWNER,
            agent=agent,
            status=status,
            limit=limit,
            cursor=cursor,
            include_children=children,
        )
        # A waiting thread's calls may sit in a delegation further down: list them all.
        pending = {
            t.id: await pending_in_tree(store, t) for t in threads if t.status == "needs_approval"
        }
        return threads, next_cursor, pending
    finally:
        await store.close()


async def show_thread(
    db_path: str, thread_id: str, console: Console, *, as_json: bool, reasoning: bool
) -> int:
    if not await has_database(db_path):
        raise NotFound(f"thread {thread_id!r} not found (no database at {db_path})")
    store = await open_store(db_path)
    try:
        thread = await store.get_thread(thread_id, LOCAL_OWNER)
        messages = await store.messages(thread.id)
        approvals = await store.approvals(thread.id)
        children = [t for t, _ in await store.tree(thread.id) if t.parent_id == thread.id]
    finally:
        await store.close()
    if as_json:
        data = _as_json(thread, messages, approvals)
        data["delegations"] = [
            {"thread_id": t.id, "agent": t.agent, "status": t.status, "call_id": t.parent_call_id}
            for t in children
        ]
        console.line(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        for line in transcript(thread, messages, approvals, reasoning=reasoning):
            console.line(line)
    return 0


async def delete_thread(
    db_path: str, thread_id: str, console: Console, *, hints: Hints, as_json: bool
) -> int:
    """``agents-mcp threads delete``: a finished local thread and its delegations."""
    if not await has_database(db_path):
        raise NotFound(f"thread {thread_id!r} not found (no database at {db_path})")
    store = await open_store(db_path)
    try:
        gone = await delete(store, owner=LOCAL_OWNER, thread_id=thread_id, hints=hints)
    finally:
        await store.close()
    if as_json:
        data = {"thread_id": gone.thread.id, "agent": gone.thread.agent}
        console.line(json.dumps({**data, "deleted_threads": list(gone.threads)}, indent=2))
        return 0
    others = len(gone.threads) - 1
    also = f" and {others} delegation thread(s) under it" if others else ""
    console.line(f"deleted thread {gone.thread.id} (agent {gone.thread.agent}){also}")
    return 0


def transcript(
    thread: Thread,
    messages: Sequence[StoredMessage],
    approvals: Sequence[Approval],
    *,
    reasoning: bool = False,
) -> list[str]:
    """The thread as lines of text: messages, tool calls with their results, usage."""
    decided = {a.call_id: a for a in approvals}
    results = {m.message.tool_call_id: m.message for m in messages if m.message.role == "tool"}
    personality = f" · personality {thread.personality}" if thread.personality else ""
    out = [
        f"thread {thread.id} · agent {thread.agent} · {thread.status}{personality}",
        f"started {_when(thread.created_at)} · updated {_when(thread.updated_at)}",
    ]
    if thread.parent_id:
        out.append(f"delegated by thread {thread.parent_id} (call {thread.parent_call_id})")
    usage, requests, calls = Usage(), 0, 0
    for stored in messages:
        m = stored.message
        if m.role == "user":
            out += ["", "you:", *_indent(m.content or "")]
        elif m.role == "event":
            out += ["", f"— {m.content} —"]
        elif m.role == "assistant":
            requests += 1
            usage = usage + (m.usage or Usage())
            out += ["", f"{thread.agent}:"]
            if m.reasoning and reasoning:
                out += ["  [reasoning]", *_indent(m.reasoning, 4)]
            elif m.reasoning:
                out.append(
                    f"  [reasoning: {len(m.reasoning.split())} words folded; --reasoning shows it]"
                )
            if m.content:
                out += _indent(m.content)
            for call in m.tool_calls:
                calls += 1
                out.append(f"  → {call.name} {_compact(call.arguments)}")
                approval = decided.get(call.id)
                if approval is not None:
                    out.append(f"    {_decision(approval)}")
                result = results.get(call.id)
                if result is not None:
                    mark = {
                        "complete": "←",
                        "error": "← error:",
                        "started": "… running",
                        "waiting": "… waiting for approvals elsewhere",
                    }
                    text = (result.content or "").strip()
                    out += _indent(f"{mark[result.status]} {text}".rstrip(), 4)
    if thread.error_message:
        out += ["", f"error ({thread.error_type}): {thread.error_message}"]
    return [*out, "", _usage_line(usage, requests, calls)]


def _usage_line(usage: Usage, requests: int, calls: int) -> str:
    cost = "" if usage.cost_nanos is None else f" · {dollars(usage.cost_nanos)}"
    return (
        f"usage: {usage.input_tokens} input + {usage.output_tokens} output tokens"
        f" · {requests} model request(s) · {calls} tool call(s){cost}"
    )


def _priced(usage: Usage) -> dict[str, Any]:
    """A stored answer's model and cost, when they were recorded."""
    out: dict[str, Any] = {}
    if usage.model is not None:
        out["model"] = usage.model
    if usage.cost_nanos is not None:
        out["cost_usd"] = usage.cost_nanos / 1e9
    return out


def _decision(a: Approval) -> str:
    if a.status == "pending":
        return f"[waiting for approval: call {a.call_id}]"
    why = f": {a.reason}" if a.reason else ""
    return f"[{a.status}{why}]"


def _as_json(
    thread: Thread, messages: Sequence[StoredMessage], approvals: Sequence[Approval]
) -> dict[str, Any]:
    pending = [a for a in approvals if a.status == "pending"]
    return {
        "thread": thread_info(thread, pending).model_dump(mode="json"),
        "personality": thread.personality,
        "error": (
            {"type": thread.error_type, "message": thread.error_message}
            if thread.error_type
            else None
        ),
        "messages": [
            {
                "index": s.index,
                "role": s.message.role,
                "content": s.message.content,
                "tool_calls": [
                    {"id": c.id, "name": c.name, "arguments": _arguments(c.arguments)}
                    for c in s.message.tool_calls
                ],
                "tool_call_id": s.message.tool_call_id,
                "reasoning": s.message.reasoning,
                "usage": (
                    None
                    if s.message.usage is None
                    else {
                        "input_tokens": s.message.usage.input_tokens,
                        "output_tokens": s.message.usage.output_tokens,
                        **_priced(s.message.usage),
                    }
                ),
                "status": s.message.status,
            }
            for s in messages
        ],
        "approvals": [
            {
                "call_id": a.call_id,
                "server": a.server,
                "tool": a.tool,
                "arguments": _arguments(a.arguments),
                "status": a.status,
                "reason": a.reason,
                "requested_at": a.requested_at,
                "decided_at": a.decided_at,
            }
            for a in approvals
        ],
    }


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _call(a: Approval) -> str:
    via = f" (via {' › '.join(a.via)})" if len(a.via) > 1 else ""
    return f"{a.server}__{a.tool} {_compact(a.arguments)}{via}"


def _compact(arguments: str, limit: int = 200) -> str:
    try:
        text = json.dumps(json.loads(arguments or "{}"), ensure_ascii=False)
    except json.JSONDecodeError:
        text = arguments
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _indent(text: str, spaces: int = 2) -> list[str]:
    return [" " * spaces + line if line else "" for line in text.splitlines() or [""]]


def _short(title: str) -> str:
    return title if len(title) <= _TITLE_WIDTH else title[: _TITLE_WIDTH - 1] + "…"


def _when(stamp: str) -> str:
    """``2026-11-21T10:00:01.123Z`` → ``2026-11-21 10:00:01Z``."""
    return stamp.replace("T", " ").split(".")[0] + ("Z" if stamp.endswith("Z") else "")
