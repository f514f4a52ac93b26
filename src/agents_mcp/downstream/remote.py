"""Another agents-mcp as a downstream server: understanding its structured results.

Only a server configured with ``kind = "agents-mcp"`` is treated as one (``peer`` on its
tools and results): any other server could return a result that looks like ours, with
made-up pending calls, to make us call ``approve_call``/``get_thread`` on it outside the
agent's allowlist. Its results are ordinary tool results, whatever their ``_meta`` says.

A downstream ``chat_with_agent``, ``approve_call`` or ``get_thread`` of a peer answers
with our own result shape (recognized by ``_meta["agents-mcp/thread_id"]``):

* ``running``: we follow it with the remote ``get_thread`` until it settles; a question
  its tools ask meanwhile (its ``pending_questions``) is asked of our person, as a
  question of the calling thread, and the answer goes back with its ``answer_question``
  (in the handshake era it mostly asks us inline instead, as any server would);
* ``needs_approval``: its pending calls become approvals of the calling thread (ids
  ``<our call id>:<remote call id>``), listed and decided like our own; once all are
  decided, each decision is forwarded with the remote ``approve_call`` (idempotent there),
  and the remote run's result becomes our tool result.

The remote server executes the calls it stored; we only relay decisions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from agents_mcp.downstream.elicit import Elicitation, ElicitHandler, nobody_to_ask
from agents_mcp.store import Approval, digest, now
from agents_mcp.toolsets import ToolInfo, ToolOutput, Toolset

THREAD_META = "agents-mcp/thread_id"
FOLLOW_WAIT = 30.0
"""Seconds each remote get_thread may wait while we follow a running remote thread."""
FOLLOW_LIMIT = 40
"""How many such waits (20 minutes) before we give up following."""


def remote_result(out: ToolOutput) -> Mapping[str, Any] | None:
    """The structured result of another agents-mcp, or None for any other tool."""
    s = out.structured
    if (
        not out.peer
        or out.meta is None
        or THREAD_META not in out.meta
        or not isinstance(s, Mapping)
    ):
        return None
    if not isinstance(s.get("thread_id"), str) or s.get("status") not in (
        "completed",
        "needs_approval",
        "running",
        "failed",
        "cancelled",
    ):
        return None
    pending = s.get("pending_approvals") or []
    if not isinstance(pending, list) or not all(
        isinstance(p, Mapping) and isinstance(p.get("call_id"), str) for p in pending
    ):
        return None  # not our shape after all: an ordinary tool result
    return s


async def follow(
    toolset: Toolset,
    info: ToolInfo,
    out: ToolOutput,
    meta: dict[str, Any],
    *,
    on_elicit: ElicitHandler | None = None,
    call_id: str | None = None,
) -> ToolOutput:
    """Follow a remote thread that is still running until it settles. Its tools'
    questions go to ``on_elicit`` (None: answered cancel, nobody to ask), as asked
    during our call ``call_id``; so do the ones it asks inline while we wait on it."""
    result = remote_result(out) if info.peer else None
    for _ in range(FOLLOW_LIMIT):
        if result is None or result["status"] != "running":
            return out
        probe, args = await _probe(info, result, on_elicit or nobody_to_ask, call_id)
        out = await toolset.call(probe, args, meta=meta, on_elicit=on_elicit, call_id=call_id)
        result = remote_result(out)
    tid = result["thread_id"] if result is not None else "?"
    return ToolOutput(
        text=f"Error: {info.server} is still running thread {tid} after"
        f" {FOLLOW_LIMIT * FOLLOW_WAIT:.0f} s; ask for its result later with get_thread",
        ok=False,
    )


async def _probe(
    info: ToolInfo, result: Mapping[str, Any], ask: ElicitHandler, call_id: str | None
) -> tuple[ToolInfo, dict[str, Any]]:
    """The next call on a running remote thread: its first pending question answered by
    our person (``answer_question``), else a wait for it (``get_thread``)."""
    tid = result["thread_id"]
    q = next(iter(_questions(result)), None)
    if q is None:
        probe = replace(info, tool="get_thread", name=f"{info.server}__get_thread")
        return probe, {"thread_id": tid, "wait_seconds": FOLLOW_WAIT}
    who = f"{q['server']}__{q['tool']}" if q.get("tool") else q["server"]
    answer = await ask(
        Elicitation(
            server=info.server,
            tool=info.tool,
            message=f"{who} asks: {q['message']}",
            requested_schema=q["requested_schema"],
            call_id=call_id,
        )
    )
    args: dict[str, Any] = {
        "thread_id": tid,
        "question_id": q["question_id"],
        "action": answer.action,
        "wait_seconds": FOLLOW_WAIT,
    }
    if answer.content is not None:
        args["content"] = dict(answer.content)
    probe = replace(info, tool="answer_question", name=f"{info.server}__answer_question")
    return probe, args


def _questions(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A running remote thread's pending questions that have our shape."""
    found = result.get("pending_questions") or []
    if not isinstance(found, list):
        return []
    return [
        q
        for q in found
        if isinstance(q, Mapping)
        and all(isinstance(q.get(k), str) for k in ("question_id", "server", "message"))
        and isinstance(q.get("requested_schema"), Mapping)
    ]


def approvals_for(
    thread_id: str, call_id: str, info: ToolInfo, result: Mapping[str, Any]
) -> list[Approval]:
    """The remote's pending calls as approvals of our thread's call ``call_id``.

    ``via`` holds the remote part of the chain; our own part is added when listed.
    """
    out = []
    for p in result.get("pending_approvals") or []:
        arguments = json.dumps(p.get("arguments"), ensure_ascii=False)
        remote_via = [str(v) for v in p.get("via") or [result.get("agent", "?")]]
        out.append(
            Approval(
                thread_id=thread_id,
                call_id=f"{call_id}:{p['call_id']}",
                server=str(p.get("server", "?")),
                tool=str(p.get("tool", "?")),
                arguments=arguments,
                digest=digest(arguments),
                status="pending",
                reason=None,
                requested_at=now(),
                decided_at=None,
                via=tuple(remote_via),
                origin_call_id=call_id,
                remote_server=info.server,
                remote_thread_id=str(result["thread_id"]),
                remote_call_id=str(p["call_id"]),
            )
        )
    return out


async def forward(
    toolset: Toolset,
    info: ToolInfo,
    decided: Sequence[Approval],
    meta: dict[str, Any],
    *,
    on_elicit: ElicitHandler | None = None,
    call_id: str | None = None,
) -> ToolOutput:
    """Send our decisions to the remote ``approve_call``; returns its last answer, followed
    (its tools' questions go to ``on_elicit``, as in :func:`follow`)."""
    if not info.peer:  # approvals relayed before the server lost kind = "agents-mcp"
        return ToolOutput(
            text=f"Error: {info.server} is not configured as another agents-mcp"
            ' (kind = "agents-mcp"); its pending calls cannot be decided from here',
            ok=False,
        )
    approve = replace(info, tool="approve_call", name=f"{info.server}__approve_call")
    out = ToolOutput(text="Error: nothing to forward", ok=False)
    for a in decided:
        args: dict[str, Any] = {
            "thread_id": a.remote_thread_id,
            "call_id": a.remote_call_id,
            "approve": a.status == "approved",
        }
        if a.reason:
            args["reason"] = a.reason
        out = await toolset.call(approve, args, meta=meta, on_elicit=on_elicit, call_id=call_id)
    return await follow(toolset, info, out, meta, on_elicit=on_elicit, call_id=call_id)
