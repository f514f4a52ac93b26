"""What a thread waits for from a person, as MCP input requests, and how answers land.

Both native forms of "ask the person" use these: the input-required result of a
2026-07-28 tool call (``mrtr``) and a task in ``input_required`` (``tasks``). Each item
a thread waits on becomes one form-mode ``elicitation/create`` request under a key of
its own; an answer to a key is applied through the same store path as the tool that
decides it by hand (``approve_call``: the stored arguments run, exactly once).

The items are the calls waiting for approval and the sign-ins the run waits for;
:func:`pending_inputs` is the one place that lists them. A sign-in is a URL-mode
request (``signin:<thread id>:<call id>``), asked only of a client that declares URL
mode: accepting it only means the person went to the page (the sign-in itself lands on
``/oauth/callback`` and resumes the run); a decline gives up on it, as
``approve_call(approve=false)`` does.

An approval's key is ``approve:<thread id>:<call id>``: an approval is unique by thread
and call and, once decided, never pending again, so a key never names two requests.

A downstream server's question (its tool asks during a call: the thread is ``running``)
is a form-mode request too, under ``question:<top-level thread id>:<question id>``, with
the server's own message and schema; its answer is recorded with
``Threads.answer_question`` as every other answer (accept with content, decline and
cancel go to the server's tool as they are).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fastmcp import Context
from mcp_types import (
    ElicitResult,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from agents_mcp.engine.agent import Progress
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.errors import ClientError
from agents_mcp.server.deps import Deps
from agents_mcp.store import Action, Approval, Question

log = logging.getLogger("agents_mcp.server")

APPROVE = "approve:"
SIGN_IN = "signin:"
QUESTION = "question:"
ARGUMENTS_SHOWN = 2000
"""Characters of a call's arguments put in the question (the view shows them all)."""

Dismissed = Literal["pending", "deny"]
"""What a ``cancel`` answer (the person dismissed the question) does to an approval:
leave it pending for another way of deciding, or refuse the call."""

_CHOICES = [
    {"const": "approve", "title": "Approve"},
    {"const": "deny", "title": "Deny"},
    {"const": "allow_thread", "title": "Allow for this thread"},
]


@dataclass(frozen=True)
class Pending:
    """One item the thread waits on: its key, and the request shown to the person."""

    key: str
    request: dict[str, Any]
    """A form-mode ``elicitation/create`` request, as on the wire."""
    approval: Approval | None = None
    """The call waiting for approval (or the sign-in) this item asks about."""
    question: Question | None = None
    """The downstream server's question this item asks (None for an approval)."""


@dataclass(frozen=True)
class Decision:
    approve: bool
    reason: str | None
    scope: Literal["once", "thread"] = "once"


@dataclass(frozen=True)
class Reply:
    """An answer to a downstream server's question, as its tool gets it."""

    action: Action
    content: dict[str, Any] | None


def pending_inputs(summary: TurnSummary, *, url_mode: bool = True) -> dict[str, Pending]:
    """Every item the thread waits on, by key: its pending calls (when it waits for
    approval) and its servers' unanswered questions (while it runs); the sign-ins only
    with ``url_mode`` (the client declares URL-mode elicitation)."""
    found: dict[str, Pending] = {}
    for q in summary.questions:
        key = f"{QUESTION}{q.root_id}:{q.id}"
        found[key] = Pending(key, question_request(q), question=q)
    if summary.thread.status != "needs_approval":
        return found
    for a in summary.pending:
        if a.is_sign_in:
            if url_mode:
                key = f"{SIGN_IN}{a.thread_id}:{a.call_id}"
                found[key] = Pending(key, sign_in_request(summary.thread.agent, a), a)
            continue
        key = f"{APPROVE}{a.thread_id}:{a.call_id}"
        found[key] = Pending(key, approval_request(summary.thread.agent, a), a)
    return found


Era = Literal["handshake", "2026-07-28"]
"""A request's protocol era: a handshake-era connection's, or a sessionless 2026-07-28 one."""


def declares_elicitation(ctx: Context, *, url: bool = False, era: Era | None = None) -> bool:
    """This request's client declares elicitation in form mode (or with ``url``, URL
    mode) and, with ``era``, the request is of that era. False without a request or
    session (in-process calls): they take the structured path.

    Read from the declared capabilities, not ``check_client_capability``: the SDK's
    check looks at ``elicitation`` only, but the modes differ. ``{}`` is form mode only
    (as the specification reads it), ``{"url": {}}`` URL mode only."""
    try:
        if era is not None:
            rc = ctx.request_context
            if rc is None or (rc.protocol_version in MODERN_PROTOCOL_VERSIONS) != (
                era == "2026-07-28"
            ):
                return False
        declared = ctx.session.client_capabilities
    except Exception:
        return False
    modes = declared.elicitation if declared is not None else None
    if modes is None:
        return False
    if url:
        return modes.url is not None
    return modes.form is not None or modes.url is None


def sign_in_request(agent: str, a: Approval) -> dict[str, Any]:
    """The URL-mode question for a sign-in the run waits for."""
    who = " › ".join(a.via) if a.via else agent
    message = f"Agent {who!r} needs you to sign in to {a.server} to go on."
    params = {"mode": "url", "message": message, "url": a.url or ""}
    return {"method": "elicitation/create", "params": params}


def question_message(q: Question) -> str:
    """A server's question as the person reads it: who asks, and what."""
    who = f"{q.server}__{q.tool}" if q.tool else q.server
    return f"{who} asks: {q.message}"


def question_request(q: Question) -> dict[str, Any]:
    """A downstream server's question, with its own form (an empty one if it has none)."""
    schema = q.requested_schema or {"type": "object", "properties": {}}
    params = {"mode": "form", "message": question_message(q), "requestedSchema": schema}
    return {"method": "elicitation/create", "params": params}


def approval_request(agent: str, a: Approval) -> dict[str, Any]:
    """The question for one call: the tool, its server, the arguments and who asked, with
    approve, deny (with the reason the agent reads) and allow-for-this-thread."""
    message = approval_message(agent, a)
    # A relayed call's tool name is the other server's word: it can be allowed once only.
    choices = _CHOICES if a.origin_call_id is None else _CHOICES[:2]
    schema = {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "title": "Decision", "oneOf": choices},
            "reason": {
                "type": "string",
                "title": "Reason",
                "description": "Why you deny it (the agent reads this)",
            },
        },
        "required": ["decision"],
    }
    params = {"mode": "form", "message": message, "requestedSchema": schema}
    return {"method": "elicitation/create", "params": params}


def approval_message(agent: str, a: Approval) -> str:
    """What a person is asked about one call, in every era and form: who asks (the agent,
    or the chain of delegations to it), the tool, its server and the arguments."""
    who = " › ".join(a.via) if a.via else agent
    where = f" (relayed from {a.remote_server})" if a.remote_server else ""
    return (
        f"Agent {who!r} wants to call {a.tool} on server {a.server!r}{where} with"
        f" {_shown(a.arguments)}. Allow it?"
    )


def _shown(arguments: str) -> str:
    try:
        text = json.dumps(json.loads(arguments), ensure_ascii=False)
    except ValueError:
        text = arguments
    return text if len(text) <= ARGUMENTS_SHOWN else text[:ARGUMENTS_SHOWN] + " …"


def _elicit_result(response: Any) -> ElicitResult | None:
    """``response`` read as an elicitation result, or None (not one we can read)."""
    if isinstance(response, ElicitResult):
        return response
    try:
        return ElicitResult.model_validate(response)
    except ValidationError:
        return None


def reply_of(response: Any) -> Reply | None:
    """The answer to a server's question as its tool gets it (None: none we can read)."""
    result = _elicit_result(response)
    if result is None:
        return None
    content = dict(result.content or {}) if result.action == "accept" else None
    return Reply(result.action, content)


def decision_of(response: Any, dismissed: Dismissed) -> Decision | None:
    """What an answer decides; None leaves the item pending (not an answer we can read,
    or a dismissal where ``dismissed`` is ``"pending"``)."""
    result = _elicit_result(response)
    if result is None:
        return None
    if result.action == "decline":
        return Decision(False, "declined in the client")
    if result.action == "cancel":
        if dismissed == "deny":
            return Decision(False, "dismissed in the client without a decision")
        return None
    content = result.content or {}
    choice = content.get("decision")
    reason = content.get("reason")
    reason = reason.strip() if isinstance(reason, str) and reason.strip() else None
    if choice is None and isinstance(content.get("value"), bool):  # a plain yes/no form
        choice = "approve" if content["value"] else "deny"
    if choice == "approve":
        return Decision(True, reason)
    if choice == "allow_thread":
        return Decision(True, reason, "thread")
    if choice == "deny":
        return Decision(False, reason or "denied in the client")
    return None


def _answer_of(item: Pending, response: Any, dismissed: Dismissed) -> Decision | Reply | None:
    """What an answer to ``item`` does (None: nothing, the item stays pending)."""
    if item.question is not None:
        return reply_of(response)
    if item.approval is None:
        return None
    decision = decision_of(response, dismissed)
    if decision is None or (item.approval.is_sign_in and decision.approve):
        return None  # only a refusal decides a sign-in: the callback resumes the run
    return decision


async def answer_inputs(
    deps: Deps,
    owner: str,
    root_id: str,
    pending: Mapping[str, Pending],
    responses: Mapping[str, Any],
    *,
    dismissed: Dismissed,
    wait: float = 0.0,
    progress: Progress | None = None,
) -> TurnSummary | None:
    """Apply the answers to the keys of ``pending`` (others are ignored), in the order the
    items were asked; the last answer waits up to ``wait`` for the run.

    Returns the top-level thread's summary afterwards, or None when nothing was answered.
    An answer that lost a race (decided, answered or cancelled meanwhile), or does not fit
    its question, is skipped: theirs stands, and the question stays.
    """
    answers = [
        (item, answer)
        for key, item in pending.items()
        if key in responses and (answer := _answer_of(item, responses[key], dismissed)) is not None
    ]
    if not answers:
        return None
    after: TurnSummary | None = None
    for i, (item, answer) in enumerate(answers):
        last = i == len(answers) - 1
        try:
            got = await _apply(
                deps, owner, item, answer, wait if last else 0.0, progress if last else None
            )
            after = got if last else None
        except ClientError as exc:
            log.info("answer to %s not applied: %s", item.key, exc)
    if after is not None and after.thread.id == root_id:  # the last answer waited for it
        return after
    return await deps.threads.get(
        owner=owner, thread_id=root_id, wait=0.0 if after is not None else wait, progress=progress
    )


async def _apply(
    deps: Deps,
    owner: str,
    item: Pending,
    answer: Decision | Reply,
    wait: float,
    progress: Progress | None,
) -> TurnSummary:
    """Record one answer through the path of the tool that gives it by hand; the thread
    it was given in, afterwards."""
    if isinstance(answer, Reply):
        assert item.question is not None
        return await deps.threads.answer_question(
            owner=owner,
            thread_id=item.question.root_id,
            question_id=item.question.id,
            action=answer.action,
            content=answer.content,
            wait=wait,
            progress=progress,
        )
    a = item.approval
    assert a is not None
    if a.is_sign_in:
        answer = Decision(False, "the user declined to sign in (in the client)")
    return await deps.threads.approve(
        owner=owner,
        thread_id=a.thread_id,
        call_id=a.call_id,
        approve=answer.approve,
        reason=answer.reason,
        scope=answer.scope,
        wait=wait,
        progress=progress,
    )
