"""Sign-ins a terminal conversation waits for (``agents-mcp chat``), and how ``pending``
shows them.

A run of ``agents-mcp chat`` that needs its owner to sign in to a downstream server
prints the sign-in page, opens the browser there, and waits: the browser comes back to
the loopback listener of this process, the sign-in lands, and the run goes on here.
"""

from __future__ import annotations

import webbrowser
from typing import TYPE_CHECKING

import anyio

from agents_mcp.cli.invocation import Invocation
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.store import LOCAL_OWNER, Approval

if TYPE_CHECKING:
    from agents_mcp.cli.chat import ChatSession

WAIT = 600.0
"""How long a terminal waits for the browser to come back."""
SLICE = 0.5


def sign_in_lines(invocation: Invocation, thread_id: str, a: Approval) -> list[str]:
    """A waiting sign-in, and the ways to give it."""
    what = f" for {a.server}__{a.tool}" if a.tool else ""
    return [
        f"  sign in to {a.server}{what}: {a.url}",
        f"    or `{invocation.command('login', a.server)}` (then the run goes on where it is"
        f" served); `{invocation.command('approve', thread_id, a.call_id)} --deny REASON`"
        " gives up on it",
    ]


async def wait_for_sign_in(
    session: ChatSession, summary: TurnSummary, item: Approval
) -> TurnSummary | None:
    """Show the sign-in page of ``item``, then wait until the run no longer waits for it
    and follow it; None when the browser did not come back in time."""
    console, threads = session.console, session.threads
    console.status(f"? {item.server} needs you to sign in; opening your browser at:")
    console.status(f"    {item.url}")
    if session.reader.interactive:
        webbrowser.open(item.url or "")
    thread_id = summary.thread.id
    with anyio.move_on_after(WAIT):
        while any(a.call_id == item.call_id for a in summary.pending):
            await threads.store.wait_changed(thread_id, SLICE)
            summary = await threads.get(owner=LOCAL_OWNER, thread_id=thread_id)
        console.status(f"  signed in to {item.server}")
        return await threads.get(
            owner=LOCAL_OWNER, thread_id=thread_id, wait=WAIT, progress=session.listener
        )
    console.status(f"agents-mcp: no sign-in to {item.server} within {WAIT:g} s")
    return None
