"""What a sign-in to a downstream server does to the runs that wait for it.

Runs paused because their owner had to sign in wait on items of kind ``authorization``
(see ``engine.signins``). When the sign-in lands (the callback, in whichever process
the browser reached), every such item of that owner for that server is approved, as a
person approving a call would: the last decision of a thread resumes it, here, and the
call that waited runs once. A sign-in the person refused at the authorization server
denies them (the calls get a result saying so); one refused for more scope than the
client was registered for is approved as well, so that the run asks again, with a new
registration.
"""

from __future__ import annotations

import logging

from agents_mcp.downstream.exchange import SignedIn, SignInFailed
from agents_mcp.downstream.signin import Accounts
from agents_mcp.errors import ClientError
from agents_mcp.store import Approval
from agents_mcp.threads.service import Threads

log = logging.getLogger("agents_mcp.threads.signin")


def connect(threads: Threads, accounts: Accounts) -> None:
    """Resume ``threads``' runs when ``accounts`` reports a sign-in (or its refusal)."""

    async def signed_in(done: SignedIn) -> None:
        await settle(threads, accounts, done.owner, done.server, approve=True, why="signed in")

    async def refused(failed: SignInFailed) -> None:
        if failed.owner is None or failed.server is None or not (failed.refused or failed.again):
            return
        why = "asked again" if failed.again else "the user refused to sign in"
        await settle(threads, accounts, failed.owner, failed.server, approve=failed.again, why=why)

    accounts.on_signed_in = signed_in
    accounts.on_refused = refused


async def settle(
    threads: Threads, accounts: Accounts, owner: str, server: str, *, approve: bool, why: str
) -> list[Approval]:
    """Decide every item of ``owner`` waiting for a sign-in to ``server``; returns them."""
    items = await accounts.tokens.waiting(owner, server)
    for item in items:
        try:
            await threads.approve(
                owner=owner,
                thread_id=item.thread_id,
                call_id=item.call_id,
                approve=approve,
                reason=why,
                wait=0,
            )
        except ClientError as exc:  # decided or cancelled meanwhile, or its agent is gone
            log.info("%s: sign-in item %s left as it is: %s", server, item.call_id, exc)
    return items
