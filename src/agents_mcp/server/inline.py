"""The optional fast path for approvals: ask the person in the client (elicitation),
where the client can, before answering with the structured ``needs_approval`` result."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from fastmcp import Context
from fastmcp.server.elicitation import AcceptedElicitation, DeclinedElicitation

from agents_mcp.engine.agent import Progress
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.server.auth import current_caller
from agents_mcp.server.deps import Deps, incoming_chain
from agents_mcp.server.inputs import approval_message, declares_elicitation
from agents_mcp.store import Approval

log = logging.getLogger("agents_mcp.server")


class Deadline:
    """The end of a call's wait, on the event loop's clock: everything the call does, a
    question to the person included, fits before it."""

    def __init__(self, wait: float) -> None:
        self.at = anyio.current_time() + wait

    def left(self) -> float:
        return max(0.0, self.at - anyio.current_time())


MIN_ASK = 5.0
"""Seconds a question needs at least to be worth asking; with less of the call's wait
left, the caller gets the structured result (and ``approve_call`` asks with a fresh one)."""


async def decided(
    ctx: Context, deps: Deps, summary: TurnSummary, deadline: Deadline, progress: Progress
) -> TurnSummary:
    """With ``approval_prompt = "auto"``, try the inline fast path before answering.

    Not when the caller is another agents-mcp (it sends its delegation chain): it relays
    approvals durably, with their exact arguments, and would ask its own person our
    question as one of its downstream questions instead."""
    if (
        deps.settings.inline
        and summary.thread.status == "needs_approval"
        and declares_elicitation(ctx, era="handshake")
        and not incoming_chain(ctx)
    ):
        return await ask_inline(ctx, deps, summary, deadline=deadline, progress=progress)
    return summary


async def ask_inline(
    ctx: Context, deps: Deps, summary: TurnSummary, *, deadline: Deadline, progress: Progress
) -> TurnSummary:
    """Ask the user in the client, one pending call at a time, within the call's wait.

    Accept runs the call, decline refuses it; a cancel, a timeout or any error leaves the
    call pending and the caller gets the structured ``needs_approval`` result as usual.
    Each question waits at most ``elicitation_timeout`` and never past the call's
    deadline; after an answer, the call waits for the run only until that deadline too.
    """
    owner = current_caller().owner
    while summary.thread.status == "needs_approval" and (calls := _calls(summary)):
        a = calls[0]
        if deadline.left() < min(MIN_ASK, deps.settings.ask_timeout):
            return summary
        message = approval_message(summary.thread.agent, a)
        answer: Any = None
        with anyio.move_on_after(min(deps.settings.ask_timeout, deadline.left())):
            try:
                answer = await ctx.elicit(message, response_type=bool, response_title="Allow")
            except Exception as exc:  # unsupported after all, or the client failed
                log.info("elicitation failed, falling back to approve_call: %s", exc)
                return summary
        if isinstance(answer, AcceptedElicitation):
            approve, reason = bool(answer.data), None if answer.data else "declined in the client"
        elif isinstance(answer, DeclinedElicitation):
            approve, reason = False, "declined in the client"
        else:  # cancelled or timed out
            return summary
        summary = await deps.threads.approve(
            owner=owner,
            thread_id=summary.thread.id,
            call_id=a.call_id,
            approve=approve,
            reason=reason,
            wait=deadline.left(),
            progress=progress,
        )
    return summary


def _calls(summary: TurnSummary) -> list[Approval]:
    """The pending calls to decide (sign-ins are asked for elsewhere: ``consent``)."""
    return summary.calls
