"""Asking the person inline on 2026-07-28 connections: input-required results (SEP-2322).

The 2026-07-28 era has no back-channel, so a server cannot send ``elicitation/create``
in the middle of a call. Instead the tool answers ``resultType: "input_required"`` with
the questions (``inputRequests``, from :func:`~agents_mcp.server.inputs.pending_inputs`)
and an opaque ``requestState``; the client asks the person and calls the same tool again,
with the same arguments, the answers (``inputResponses``) and the state. That second call
applies the answers as ``approve_call`` would and goes on waiting for the run: one tool
call for the caller's model, however many questions it took.

A downstream server's question to the person (its tool asks during the call; the
thread is ``running``) is asked the same way, with the server's own form, and the
answer goes back to its tool (``Threads.answer_question``).

Used where the request declares elicitation (each 2026-07-28 request carries its
client's capabilities) and, for approvals, ``approval_prompt = "auto"``, unless it also
declares MCP tasks, which ask the same questions through ``tasks/get`` instead.

The state says which thread, for whom, and which keys were asked. The SDK seals it
(AES-GCM; bound to the tool, its arguments, the OAuth principal and a 10-minute expiry)
under a key every replica shares: :class:`SharedKey`, made once and kept in the thread
database (whoever can read that database can decide approvals anyway). So any replica
resumes any call, after a restart too, and nothing of the decision comes from the client
but the person's answer: what runs is the call as stored, a key that was not asked is
ignored, and a state minted for another owner is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastmcp import Context
from mcp.server.request_state import (
    AESGCMRequestStateCodec,
    InvalidRequestState,
    RequestStateSecurity,
)
from mcp_types import InputRequiredResult

from agents_mcp.engine.agent import Progress
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.errors import InvalidRequest
from agents_mcp.server.auth import Caller
from agents_mcp.server.deps import Deps, incoming_chain
from agents_mcp.server.inputs import answer_inputs, declares_elicitation, pending_inputs
from agents_mcp.server.tasks import declares_tasks

STATE_SECRET = "request_state_key"
"""The name of the sealing key in the database's shared secrets."""
STATE_TTL = 600.0
"""Seconds a person has to answer before the state expires (the call then fails with
"Invalid or expired requestState" and the approval stays pending)."""
AUDIENCE = "agents-mcp"
_VERSION = 1


class SharedKey:
    """The SDK's AES-GCM codec under the database's shared key, loaded at start.

    The server is built before its database opens (in its lifespan), so the key is
    handed over then; until it is, nothing seals or unseals.
    """

    def __init__(self) -> None:
        self._codec: AESGCMRequestStateCodec | None = None

    def load(self, key: str) -> None:
        self._codec = AESGCMRequestStateCodec([key])

    def _ready(self) -> AESGCMRequestStateCodec:
        if self._codec is None:
            raise InvalidRequestState("the server has not opened its database yet")
        return self._codec

    def seal(self, payload: bytes) -> str:
        return self._ready().seal(payload)

    def unseal(self, token: str) -> bytes:
        return self._ready().unseal(token)


def security(key: SharedKey) -> RequestStateSecurity:
    """The request-state policy of the server: the shared key, a stable audience."""
    return RequestStateSecurity(codec=key, ttl=STATE_TTL, audience=AUDIENCE)


@dataclass(frozen=True)
class State:
    """What a retry resumes: the top-level thread, its owner, the keys that were asked."""

    thread_id: str
    owner: str
    keys: tuple[str, ...]

    def dump(self) -> str:
        keys = list(self.keys)
        return json.dumps(
            {"v": _VERSION, "thread": self.thread_id, "owner": self.owner, "keys": keys}
        )


def can_ask(ctx: Context, deps: Deps, *, questions: bool = False) -> bool:
    """A 2026-07-28 request that declares elicitation (and not tasks), inline allowed:
    approvals with ``approval_prompt = "auto"``; a server's ``questions`` whatever it
    says, as the handshake era asks them (``asking``). Never of another agents-mcp (it
    sends its delegation chain): it relays approvals, with their exact arguments, and
    questions durably, from the structured result."""
    if not deps.settings.inline and not questions:
        return False
    try:
        if incoming_chain(ctx):
            return False
        if declares_tasks(ctx):
            return False
    except Exception:  # no request (in-process calls): take the structured path
        return False
    return declares_elicitation(ctx, era="2026-07-28")


def resumed(ctx: Context, caller: Caller) -> State | None:
    """The state of a retry that answers our questions, or None on a first call."""
    try:
        raw = ctx.request_state
    except Exception:  # outside a wire request
        return None
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        state = State(str(data["thread"]), str(data["owner"]), tuple(map(str, data["keys"])))
        if data["v"] != _VERSION:
            raise ValueError(data["v"])
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest("requestState is not one this server made") from None
    if state.owner != caller.owner:
        raise InvalidRequest("requestState was made for another caller")
    return state


def ask(
    summary: TurnSummary,
    owner: str,
    answered: frozenset[str] = frozenset(),
    *,
    url_mode: bool = False,
) -> InputRequiredResult | None:
    """The questions of a thread (its pending calls, its servers' questions), but not
    those ``answered`` in the retry just made (a dismissed question is not asked again);
    None: nothing to ask.
    Sign-ins are asked (URL mode) only with ``url_mode``; else, or once accepted, the
    caller gets them in the structured result (``pending_authorizations``)."""
    inputs = pending_inputs(summary, url_mode=url_mode)
    pending = {k: v for k, v in inputs.items() if k not in answered}
    if not pending:
        return None
    state = State(summary.thread.id, owner, tuple(pending))
    return InputRequiredResult.model_validate(
        {
            "inputRequests": {key: item.request for key, item in pending.items()},
            "requestState": state.dump(),
        }
    )


async def resume(
    ctx: Context, deps: Deps, state: State, *, wait: float, progress: Progress
) -> tuple[TurnSummary, frozenset[str]]:
    """Apply the answers of a retry to the items still pending among those asked, then
    wait up to ``wait`` for the run. Returns the thread's summary and the keys that got
    an answer (asked keys left without one are asked again).

    A dismissed approval (``cancel``) leaves its call pending: the caller then gets the
    structured result, and ``approve_call`` (or the thread view) decides it. A server's
    question gets its ``cancel`` as it is (its tool decides what that means).
    """
    threads = deps.threads
    summary = await threads.get(owner=state.owner, thread_id=state.thread_id)
    asked = {k: v for k, v in pending_inputs(summary).items() if k in state.keys}
    responses: dict[str, Any] = dict(ctx.input_responses or {})
    answered = frozenset(k for k in state.keys if k in responses)
    after = await answer_inputs(
        deps,
        state.owner,
        state.thread_id,
        asked,
        responses,
        dismissed="pending",
        wait=wait,
        progress=progress,
    )
    if after is None:
        after = await threads.get(
            owner=state.owner, thread_id=state.thread_id, wait=wait, progress=progress
        )
    return after, answered
