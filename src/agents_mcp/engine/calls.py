"""Which of the model's tool calls run now, wait for a decision, or are answered at once.

:func:`plan_calls` is the decision, without I/O: the loop (``loop._settle_calls``) stores
what it says and runs what it allows. A call runs with the arguments that were approved
(checked against their digest), never with what the model sends again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from agents_mcp.engine import signins
from agents_mcp.engine.agent import DELEGATION_SERVER
from agents_mcp.messages import Message, ToolCall
from agents_mcp.store import Approval, digest, now
from agents_mcp.toolsets import ToolInfo, ToolOutput


@dataclass(frozen=True)
class Decisions:
    """What is already decided in the thread."""

    every: Sequence[Approval]
    """Every approval of the thread (decided or not), relayed ones included."""
    grants: set[str]
    """``server__tool`` allowed for the rest of the thread."""
    held: set[str | None]
    """Calls whose row waits on another agents-mcp (a resumed run)."""


@dataclass
class Plan:
    """What to do with each call of one answer."""

    runnable: list[tuple[ToolCall, ToolInfo | None, str]] = field(default_factory=list)
    """Calls to run now, with the arguments to run them with."""
    relays: list[tuple[ToolCall, ToolInfo, list[Approval]]] = field(default_factory=list)
    """Calls whose remote approvals are all decided: forward the decisions."""
    resumed: list[tuple[ToolCall, ToolInfo | None, str]] = field(default_factory=list)
    """Calls whose row waited for a sign-in that was given: run them now (the row
    exists: it starts again rather than being added)."""
    declined: list[tuple[str, str]] = field(default_factory=list)
    """Calls whose row waited for a sign-in that was not given, and their result."""
    delegations: list[tuple[ToolCall, ToolInfo]] = field(default_factory=list)
    answers: list[Message] = field(default_factory=list)
    """Results for calls answered at once (unknown tool, bad arguments, refused)."""
    new: list[Approval] = field(default_factory=list)
    """Approvals to ask for."""
    waiting: list[str] = field(default_factory=list)
    """Calls that wait for a decision."""
    orphans: list[str] = field(default_factory=list)
    """Calls held for another agents-mcp that no longer names what they wait for."""


def plan_calls(
    calls: Sequence[ToolCall],
    tools: Mapping[str, ToolInfo],
    decisions: Decisions,
    *,
    thread_id: str,
    said: str | None,
    requires_approval: Callable[[ToolInfo], bool],
) -> Plan:
    """Sort ``calls`` into what runs, waits or is answered (see :class:`Plan`)."""
    plan = Plan()
    decided = {a.call_id: a for a in decisions.every}
    for call in calls:
        info = tools.get(call.name)
        relayed = [a for a in decisions.every if a.origin_call_id == call.id]
        remote = [a for a in relayed if not a.is_sign_in]
        if relayed and info is not None:  # waiting on approvals elsewhere, or a sign-in
            if any(a.status == "pending" for a in relayed):
                plan.waiting.append(call.id)
            elif remote:
                plan.relays.append((call, info, remote))
            elif (text := signins.outcome(relayed)) is not None:
                plan.declined.append((call.id, text))
            else:
                approved = decided.get(call.id)
                stored = _stored(call, approved if _approved(approved) else None)
                if stored is None:
                    plan.answers.append(tool_message(call, ToolOutput(text=MISMATCH, ok=False)))
                else:
                    plan.resumed.append((call, info, stored))
        elif call.id in decisions.held:
            plan.orphans.append(call.id)
        elif (problem := _check(call, info, tools)) is not None:
            plan.answers.append(tool_message(call, ToolOutput(text=problem, ok=False)))
        elif info is not None and info.server == DELEGATION_SERVER:
            plan.delegations.append((call, info))
        else:
            _decided(
                plan,
                call,
                info,
                decided.get(call.id),
                decisions.grants,
                requires_approval,
                thread_id,
                said,
            )
    return plan


def _decided(
    plan: Plan,
    call: ToolCall,
    info: ToolInfo | None,
    approval: Approval | None,
    grants: set[str],
    requires_approval: Callable[[ToolInfo], bool],
    thread_id: str,
    said: str | None,
) -> None:
    """A call of a known tool with valid arguments: ask, run, refuse or wait."""
    if (
        approval is None
        and info is not None
        and f"{info.server}__{info.tool}" not in grants
        and requires_approval(info)
    ):
        plan.new.append(_approval(thread_id, call, info, said))
        plan.waiting.append(call.id)
    elif approval is None or approval.status == "approved":
        stored = _stored(call, approval)
        if stored is None:
            plan.answers.append(tool_message(call, ToolOutput(text=MISMATCH, ok=False)))
        else:
            plan.runnable.append((call, info, stored))
    elif approval.status == "denied":
        why = f": {approval.reason}" if approval.reason else ""
        text = f"The user refused this call{why}. Do not retry it without asking the user."
        plan.answers.append(tool_message(call, ToolOutput(text=text, ok=False)))
    else:
        plan.waiting.append(call.id)


MISMATCH = "Error: the stored arguments of this call do not match their digest"


def _approved(approval: Approval | None) -> bool:
    return approval is not None and approval.status == "approved"


def _stored(call: ToolCall, approval: Approval | None) -> str | None:
    """What a call runs with: the arguments its approval stored (None when they no longer
    match their digest: it must not run), else the model's."""
    if approval is None:
        return call.arguments
    return approval.arguments if digest(approval.arguments) == approval.digest else None


def _check(call: ToolCall, info: ToolInfo | None, tools: Mapping[str, ToolInfo]) -> str | None:
    """Why a call cannot run at all, as a message for the model; None when it can."""
    if info is None:
        names = ", ".join(sorted(tools)) or "none"
        return f"Error: unknown tool {call.name!r}; available tools: {names}"
    try:
        args = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        return f"Error: the arguments of {call.name} are not valid JSON ({exc}); send a JSON object"
    if not isinstance(args, dict):
        return f"Error: the arguments of {call.name} must be a JSON object"
    return None


def _approval(thread_id: str, call: ToolCall, info: ToolInfo, said: str | None) -> Approval:
    """A pending approval; its hint is what the model said along with the call, if anything."""
    arguments = call.arguments or "{}"
    hint = " ".join(said.split()) if said else None
    return Approval(
        thread_id=thread_id,
        call_id=call.id,
        server=info.server,
        tool=info.tool,
        arguments=arguments,
        digest=digest(arguments),
        status="pending",
        reason=None,
        requested_at=now(),
        decided_at=None,
        reason_hint=hint[:300] if hint else None,
    )


def tool_message(call: ToolCall, out: ToolOutput) -> Message:
    return Message(
        role="tool",
        tool_call_id=call.id,
        content=out.text,
        status="complete" if out.ok else "error",
    )


def unique_ids(calls: Sequence[ToolCall], used: set[str]) -> tuple[ToolCall, ...]:
    """Make call ids unique in the thread (some models reuse ``call_0`` every turn)."""
    seen = set(used)
    out: list[ToolCall] = []
    for call in calls:
        cid, n = call.id, 1
        while cid in seen:
            n += 1
            cid = f"{call.id}~{n}"
        seen.add(cid)
        out.append(ToolCall(id=cid, name=call.name, arguments=call.arguments))
    return tuple(out)
