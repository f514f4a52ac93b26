"""When a run must wait for its owner to sign in to a downstream server.

A server with ``auth = "oauth"`` may refuse a run's request because its owner has not
signed in (or the sign-in expired, or the server wants more scope). The run then pauses
as for an approval, with a pending item of kind ``authorization`` (an ``Approval`` row:
``server`` and the ``url`` to sign in at) that the sign-in's callback approves. Two
places can ask:

* **a call**: its ``started`` row becomes ``waiting`` on the item (``origin_call_id``),
  as a call waiting on another agents-mcp's approvals does; the call did not run (the
  server refused it before any tool ran). Once the item is approved the call runs,
  exactly once; once it is denied (the person would not sign in) it gets a result
  saying so;
* **listing the server's tools**, before the model is even asked: the item has no call,
  and the turn records that it was asked (an ``event``), so that a turn whose owner
  did not sign in goes on without that server rather than ask again.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import NoReturn

from agents_mcp.engine.agent import Run, RunEvent
from agents_mcp.engine.transcript import Transcript
from agents_mcp.messages import Message, ToolCall
from agents_mcp.store import Approval, StoredMessage, digest, now
from agents_mcp.toolsets import SignIn, ToolInfo, Unavailable

ASKED_EVENT = "waiting for the user to sign in to server {server!r}"
NOT_SIGNED_IN = "the user did not sign in to it"
DECLINED = (
    "Not run: the user did not sign in to {server} (asked to, for this call), so it could"
    " not run. Do not retry it unless the user says they signed in."
)


class NeedsSignIn(Exception):
    """The run pauses: its owner must sign in before it can go on (items are stored)."""


def item_id() -> str:
    return "signin_" + secrets.token_urlsafe(9)


def for_call(thread_id: str, call: ToolCall, info: ToolInfo, sign_in: SignIn) -> Approval:
    """The pending sign-in a call of ``info`` waits for."""
    arguments = call.arguments or "{}"
    return Approval(
        thread_id=thread_id,
        call_id=item_id(),
        server=sign_in.server,
        tool=info.tool,
        arguments=arguments,
        digest=digest(arguments),
        status="pending",
        reason=None,
        requested_at=now(),
        decided_at=None,
        origin_call_id=call.id,
        kind="authorization",
        url=sign_in.url,
    )


def for_listing(thread_id: str, sign_in: SignIn) -> Approval:
    """The pending sign-in without which the server's tools cannot be listed."""
    return Approval(
        thread_id=thread_id,
        call_id=item_id(),
        server=sign_in.server,
        tool="",
        arguments="{}",
        digest=digest("{}"),
        status="pending",
        reason=None,
        requested_at=now(),
        decided_at=None,
        kind="authorization",
        url=sign_in.url,
    )


def to_ask(
    missing: Sequence[Unavailable], turn: Sequence[StoredMessage]
) -> tuple[list[Unavailable], list[Unavailable]]:
    """Split servers that could not list their tools: those whose sign-in to ask for now,
    and the rest (unavailable; a sign-in already asked in this turn counts as refused)."""
    said = {h.message.content for h in turn if h.message.role == "event"}
    ask, rest = [], []
    for u in missing:
        if u.sign_in is not None and ASKED_EVENT.format(server=u.server) not in said:
            ask.append(u)
        elif u.sign_in is not None:
            rest.append(Unavailable(server=u.server, reason=NOT_SIGNED_IN, required=u.required))
        else:
            rest.append(u)
    return ask, rest


def asked(servers: Sequence[str]) -> list[Message]:
    return [Message(role="event", content=ASKED_EVENT.format(server=s)) for s in servers]


def outcome(items: Sequence[Approval]) -> str | None:
    """For a call whose sign-ins are all decided: None when it runs now, else the
    result it gets instead (the latest was not given)."""
    latest = max(items, key=lambda a: a.requested_at)
    if latest.status == "approved":
        return None
    return DECLINED.format(server=latest.server)


async def wait_for_call(
    r: Run, transcript: Transcript, call: ToolCall, info: ToolInfo, sign_in: SignIn
) -> None:
    """``call`` did not run: it waits on its owner's sign-in to ``info``'s server."""
    item = for_call(r.thread_id, call, info, sign_in)
    await transcript.hold_call(r.claim, call.id, [item])
    await r.progress(RunEvent("status", f"waiting for the user to sign in to {info.server}"))


async def wait_for_servers(r: Run, transcript: Transcript, ask: Sequence[Unavailable]) -> NoReturn:
    """Before the model is asked: the owner must sign in to the servers of ``ask``; the
    turn records that it asked, and the run pauses (:class:`NeedsSignIn`)."""
    items = [for_listing(r.thread_id, u.sign_in) for u in ask if u.sign_in]
    await transcript.append(r.claim, *asked([u.server for u in ask]), approvals=items)
    await r.progress(RunEvent("status", "waiting for the user to sign in"))
    raise NeedsSignIn
