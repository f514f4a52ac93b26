"""Asking a downstream server's question inline, in the client that called.

A client that declared elicitation in the handshake era is asked the pending questions
of the run it started or resumed (``chat_with_agent``, ``approve_call``,
``answer_question``), with the server's own form: ``elicitation/create`` carrying the
server's message and schema as they are. The answer is recorded by
``Threads.answer_question``, as every other answer; the 2026-07-28 era has no such
request: its callers are asked with input-required results (``mrtr``), its task clients
with ``input_required`` tasks (``threadtasks``), both from ``inputs``.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import anyio
from fastmcp import Context

from agents_mcp.engine.agent import Progress
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.errors import ClientError
from agents_mcp.server.auth import current_caller
from agents_mcp.server.deps import Deps
from agents_mcp.server.inline import MIN_ASK, Deadline
from agents_mcp.server.inputs import declares_elicitation, question_request
from agents_mcp.store import Action, Question

log = logging.getLogger("agents_mcp.server")


async def ask_inline(
    ctx: Context, deps: Deps, summary: TurnSummary, deadline: Deadline, progress: Progress
) -> TurnSummary:
    """Ask each pending question in the client (handshake era, elicitation declared),
    record the answer and wait for the run again, until ``deadline`` (the request's
    ``wait_seconds``): a question waits at most ``elicitation_timeout``, and never past the
    call's wait, so the whole call answers within it (a question asked with less than
    ``MIN_ASK`` left stays pending, in the result).

    Accept, decline and cancel (the person closed the form) go to the server as they are.
    A client that does not answer in time, or fails, leaves the question pending: the
    caller gets it in the result, with the tool that answers it.
    """
    while (
        summary.questions
        and declares_elicitation(ctx, era="handshake")
        and deadline.left() >= MIN_ASK
    ):
        q = summary.questions[0]
        answer = None
        with anyio.move_on_after(min(deps.settings.ask_timeout, deadline.left())):
            answer = await _elicit(ctx, q)
        if answer is None:  # no answer in time, or the client failed: the question stays
            return summary
        action, content = answer
        try:
            summary = await deps.threads.answer_question(
                owner=current_caller().owner,
                thread_id=summary.thread.id,
                question_id=q.id,
                action=action,
                content=content,
                wait=deadline.left(),
                progress=progress,
            )
        except ClientError as exc:  # an answer that does not fit, or came too late
            log.info("inline answer to %s not taken: %s", q.id, exc)
            return summary
    return summary


async def _elicit(ctx: Context, q: Question) -> tuple[Action, dict[str, Any] | None] | None:
    """The person's answer in the client, or None (no answer: the question stays)."""
    params = question_request(q)["params"]  # the same form as every other way of asking
    message, schema = params["message"], cast(Any, params["requestedSchema"])
    try:
        got = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    except Exception as exc:  # unsupported after all, or the client failed
        log.info("inline question failed, left pending: %s", exc)
        return None
    content = dict(got.content or {}) if got.action == "accept" else None
    return got.action, content  # a cancel too: the server is told so
