"""Sign-ins asked in the client: a URL-mode elicitation, where the client declares it.

When a run waits for its user to sign in to a downstream server (``pending_authorizations``)
and the calling client declared URL-mode elicitation (handshake era), the request that
started or resumed the run asks the client to open the sign-in page
(``elicitation/create`` with ``mode: "url"``). The client answers at once (accept only
means the user agreed to go there); the sign-in itself ends at ``/oauth/callback``,
which resumes the run. The request then waits, up to its ``wait_seconds``, for the run
to go on and answers with what it did, and the client gets
``notifications/elicitation/complete`` when the sign-in lands in this process.
Otherwise (a decline, no answer in time, a client without URL mode) the caller gets the
structured ``pending_authorizations`` as usual.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
from fastmcp import Context, FastMCP
from starlette.requests import Request
from starlette.responses import Response

from agents_mcp.downstream.exchange import SignedIn
from agents_mcp.downstream.loopback import CALLBACK_PATH, answer, page
from agents_mcp.engine.agent import Progress
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.server.auth import current_caller
from agents_mcp.server.deps import Deps
from agents_mcp.server.inputs import declares_elicitation
from agents_mcp.store import Approval

if TYPE_CHECKING:
    from agents_mcp.downstream.signin import Accounts

log = logging.getLogger("agents_mcp.server")

SLICE = 0.5
OPEN_PER_SIGN_IN = 16
"""Accepted URL elicitations remembered per (owner, server) until the sign-in lands; the
oldest is forgotten beyond this (its client is not told; the sign-in still works)."""


def _sign_ins(summary: TurnSummary) -> list[Approval]:
    if summary.thread.status != "needs_approval":
        return []
    return summary.sign_ins


async def ask_sign_in(
    ctx: Context, deps: Deps, summary: TurnSummary, wait: float, progress: Progress
) -> TurnSummary:
    """Ask the client to open each sign-in page, then wait for the run to go on."""
    items = _sign_ins(summary)
    if not items or not declares_elicitation(ctx, url=True, era="handshake"):
        return summary
    owner = current_caller().owner
    deadline = anyio.current_time() + wait
    for server in dict.fromkeys(a.server for a in items):
        url = next(a.url for a in items if a.server == server)
        action = await _elicit(ctx, deps, owner, summary.thread.agent, server, url or "")
        if action == "decline":
            mine = [a for a in items if a.server == server]
            summary = await _decline(deps, owner, mine, deadline, progress)
        elif action != "accept":
            return summary
    return await _until_signed_in(deps, owner, summary, deadline, progress)


async def _elicit(
    ctx: Context, deps: Deps, owner: str, agent: str, server: str, url: str
) -> str | None:
    eid = "signin-" + secrets.token_urlsafe(12)
    message = f"Agent {agent!r} needs you to sign in to {server} to go on."
    with anyio.move_on_after(deps.settings.ask_timeout):
        try:
            answer = await ctx.session.elicit_url(
                message=message, url=url, elicitation_id=eid, related_request_id=ctx.request_id
            )
        except Exception as exc:  # the client failed: the structured result it is
            log.info("URL elicitation failed, answering with the pending sign-in: %s", exc)
            return None
        if answer.action == "accept":
            deps.signins.asked(owner, server, ctx.session, eid)
        return str(answer.action)
    return None  # nobody answered in time


async def _decline(
    deps: Deps, owner: str, items: Sequence[Approval], deadline: float, progress: Progress
) -> TurnSummary:
    summary: TurnSummary | None = None
    for a in items:
        summary = await deps.threads.approve(
            owner=owner,
            thread_id=a.thread_id,
            call_id=a.call_id,
            approve=False,
            reason="the user declined to sign in (in the client)",
            wait=max(0.0, deadline - anyio.current_time()),
            progress=progress,
        )
    assert summary is not None
    return summary


async def _until_signed_in(
    deps: Deps, owner: str, summary: TurnSummary, deadline: float, progress: Progress
) -> TurnSummary:
    """Wait (until ``deadline``) for the sign-ins to land and the run to go on."""
    threads, thread_id = deps.threads, summary.thread.id
    while _sign_ins(summary) and anyio.current_time() < deadline:
        left = deadline - anyio.current_time()
        await threads.store.wait_changed(thread_id, min(left, SLICE))
        summary = await threads.get(owner=owner, thread_id=thread_id)
    left = max(0.0, deadline - anyio.current_time())
    if summary.thread.status == "running" and left:
        summary = await threads.get(owner=owner, thread_id=thread_id, wait=left, progress=progress)
    return summary


class SignIns:
    """The process's sign-ins to downstream servers, once the lifespan opened them."""

    def __init__(self) -> None:
        self.accounts: Accounts | None = None
        self._open: dict[tuple[str, str], list[tuple[Any, str]]] = {}
        """URL elicitations accepted and not completed yet, by (owner, server): the
        session that was asked and the elicitation's id."""

    def asked(self, owner: str, server: str, session: Any, elicitation_id: str) -> None:
        """``session`` accepted to open the sign-in page of ``server`` for ``owner``:
        tell it when the sign-in lands (:meth:`completed`)."""
        waiting = self._open.setdefault((owner, server), [])
        waiting.append((session, elicitation_id))
        del waiting[:-OPEN_PER_SIGN_IN]

    async def completed(self, done: SignedIn) -> None:
        """Tell the clients that were asked to sign in that it is done (best effort)."""
        for session, eid in self._open.pop((done.owner, done.server), []):
            try:
                await session.send_elicit_complete(eid)
            except Exception as exc:  # the session is gone: nothing to tell
                log.debug("elicitation %s: completion not sent: %s", eid, exc)

    def started(self, accounts: Accounts | None) -> None:
        """Serve the callback with ``accounts``, and after each sign-in it reports (the
        runs resumed), send the completions of :meth:`completed`."""
        self.accounts = accounts
        if accounts is None:
            return
        resume = accounts.on_signed_in

        async def both(done: SignedIn) -> None:
            if resume is not None:
                await resume(done)
            await self.completed(done)

        accounts.on_signed_in = both


def add_callback(mcp: FastMCP, signins: SignIns) -> None:
    """``GET /oauth/callback``: where a downstream sign-in comes back to, over HTTP.

    Outside the bearer auth of ``/mcp``: the browser of the person signing in brings no
    token; the ``state`` it carries (single use, unguessable) names the sign-in.
    """

    @mcp.custom_route(CALLBACK_PATH, methods=["GET"])
    async def callback(request: Request) -> Response:
        if signins.accounts is None:
            return page(False, "No server of this agents-mcp signs people in.")
        return await answer(signins.accounts, request)
