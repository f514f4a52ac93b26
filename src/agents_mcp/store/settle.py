"""What settling a thread tree whose run ended abnormally writes (see ``SQLStore.settle``).

A pure function of the tree's state, so the rules read in one place:

* a call ``started`` without a result may have run: it gets a result that says so;
* a call that never started did not run: it gets a result that says so, unless it was
  approved (or denied) by a person, or waits on another agents-mcp whose calls are all
  decided: those stay open and the run resumes to carry the decision out, exactly once;
* an undecided approval keeps the tree waiting (``needs_approval``);
* cancelling ends every unfinished call and undecided approval, and the threads are
  ``cancelled``; approvals relayed from another agents-mcp are cancelled there as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agents_mcp.messages import Message, ToolCall
from agents_mcp.store import states
from agents_mcp.store.records import Approval, Claim, StoredMessage, Thread, ThreadStatus

INTERRUPTED = ("interrupted", "the server stopped during this run; send a message to continue")

State = Literal["pending", "resumable", "idle"]


@dataclass
class ThreadWrites:
    status: ThreadStatus
    error: tuple[str, str] | None
    event: Message
    results: list[Message] = field(default_factory=list[Message])
    """Results for calls that never started."""
    finished: list[tuple[int, str]] = field(default_factory=list[tuple[int, str]])
    """Rows of started (or waiting) calls: their index and the error they end with."""
    cancelled: list[str] = field(default_factory=list[str])
    """Approvals (call ids) that will never be decided."""


@dataclass
class Plan:
    threads: dict[str, ThreadWrites]
    remote: list[Approval]


def open_calls(history: Sequence[StoredMessage]) -> list[ToolCall]:
    """Calls of the last model answer that have no result yet.

    A row still ``started`` outside a running step, or ``waiting`` on another agents-mcp,
    has no result yet either.
    """
    for i in range(len(history) - 1, -1, -1):
        m = history[i].message
        if m.role == "assistant":
            answered = {
                h.message.tool_call_id
                for h in history[i + 1 :]
                if h.message.role == "tool" and h.message.status in ("complete", "error")
            }
            return [c for c in m.tool_calls if c.id not in answered]
        if m.role == "user":
            return []
    return []


def plan_settlement(
    root: Thread,
    tree: Sequence[Thread],
    tails: Mapping[str, Sequence[StoredMessage]],
    approvals: Mapping[str, Sequence[Approval]],
    *,
    cancel: bool,
    resume: Claim | None,
    error: tuple[str, str] | None = None,
) -> Plan:
    """The writes that settle every unfinished thread of ``tree`` (ordered parents first).

    ``tails``: each unfinished thread's latest turn; ``approvals``: each one's approvals;
    ``error``: why the run ended, when it was not the server stopping (the database
    failed, a bug): what a failed thread says instead of "interrupted".
    """
    plans: dict[str, ThreadWrites] = {}
    state: dict[str, State] = {}
    remote: list[Approval] = []
    for t in reversed(tree):  # children before their parents
        if t.id not in tails:
            continue
        children = {c.parent_call_id: c for c in tree if c.parent_id == t.id}
        child_state = {call: state.get(c.id, "idle") for call, c in children.items() if call}
        writes, state[t.id] = _plan_one(
            t, tails[t.id], approvals[t.id], child_state, cancel=cancel, remote=remote, error=error
        )
        if cancel or t.status == "running":  # a paused delegation stays as it is
            plans[t.id] = writes
    waiting = any(s == "pending" for s in state.values())
    top = plans[root.id]
    if not cancel and not waiting and state[root.id] == "resumable" and resume is not None:
        top.status = "running"
        top.event = Message(
            role="event",
            content="interrupted: the server stopped during this run; it resumes to carry"
            " out the decided calls",
        )
    return Plan(plans, remote)


def _plan_one(
    t: Thread,
    tail: Sequence[StoredMessage],
    every: Sequence[Approval],
    child_state: Mapping[str, State],
    *,
    cancel: bool,
    remote: list[Approval],
    error: tuple[str, str] | None,
) -> tuple[ThreadWrites, State]:
    rows = _rows_after_answer(tail)
    answer = next((h.message for h in reversed(tail) if h.message.role == "assistant"), None)
    relayed: dict[str, list[Approval]] = {}
    for a in every:
        if a.origin_call_id is not None:
            relayed.setdefault(a.origin_call_id, []).append(a)
    calls = _Calls(
        rows, {a.call_id: a for a in every}, relayed, child_state, cancel=cancel, remote=remote
    )
    w = ThreadWrites(status="failed", error=None, event=Message(role="event"))
    found = {calls.settle(call, w) for call in (answer.tool_calls if answer is not None else ())}
    # Sign-ins asked for before the model was (to list a server's tools): no call waits.
    listing = [a.call_id for a in every if _listing_sign_in(a) and a.status == "pending"]
    if cancel:
        w.cancelled += listing
    elif listing:
        found.add("pending")
    if cancel:
        w.status = "cancelled"
        return _with_event(w, _event(cancelled=True)), "idle"
    stopped = f"the run stopped: {error[1]}" if error else _event(cancelled=False)
    if "pending" in found or "resumable" in found:
        w.status = "needs_approval"
        return _with_event(w, stopped), "pending" if "pending" in found else "resumable"
    w.error = error or INTERRUPTED
    return _with_event(w, stopped), "idle"


@dataclass
class _Calls:
    """What one thread's open calls need, one call at a time (see :meth:`settle`)."""

    rows: Mapping[str, StoredMessage]
    decided: Mapping[str, Approval]
    relayed: Mapping[str, list[Approval]]
    child_state: Mapping[str, State]
    cancel: bool
    remote: list[Approval]

    def settle(self, call: ToolCall, w: ThreadWrites) -> State:
        """Add ``call``'s writes to ``w``; "pending" or "resumable" when it keeps the thread
        waiting (a decision to make, or one to carry out), else "idle"."""
        row, cancel = self.rows.get(call.id), self.cancel
        if row is not None and row.message.status == "started":
            w.finished.append(
                (row.index, states.STOPPED_RUNNING if cancel else states.MAY_HAVE_RUN)
            )
        elif row is not None and row.message.status == "waiting":
            asked = self.relayed.get(call.id, [])
            if not cancel:
                return "pending" if any(a.status == "pending" for a in asked) else "resumable"
            relayed = [a for a in asked if not a.is_sign_in]
            # Waiting for a sign-in only, it never reached its server's tool.
            ran = bool(relayed) or not asked
            w.finished.append((row.index, states.STOPPED_RUNNING if ran else states.STOPPED_BEFORE))
            w.cancelled += [a.call_id for a in asked if a.status == "pending"]
            self.remote += relayed
        elif row is not None:
            return "idle"  # it has its result
        elif (d := self.decided.get(call.id)) is not None:
            if not cancel and d.status != "cancelled":
                return "pending" if d.status == "pending" else "resumable"  # carry it out
            w.results.append(_result(call, states.STOPPED_BEFORE))
            if d.status == "pending":
                w.cancelled.append(d.call_id)
        elif call.id in self.child_state and not cancel:
            if self.child_state[call.id] == "idle":
                w.results.append(_result(call, _DELEGATION_STOPPED))
            return self.child_state[call.id]
        else:
            w.results.append(_result(call, states.STOPPED_BEFORE if cancel else states.DID_NOT_RUN))
        return "idle"


_DELEGATION_STOPPED = (
    "Interrupted: the server stopped while the agent worked on this; its own thread keeps"
    " what it did. Ask it again if the answer is still needed."
)


def _listing_sign_in(a: Approval) -> bool:
    return a.is_sign_in and a.origin_call_id is None


def _event(*, cancelled: bool) -> str:
    if cancelled:
        return "cancelled: the run was stopped (cancel_run)"
    return "interrupted: the server stopped during this run"


def _with_event(w: ThreadWrites, text: str) -> ThreadWrites:
    w.event = Message(role="event", content=text)
    return w


def _rows_after_answer(tail: Sequence[StoredMessage]) -> dict[str, StoredMessage]:
    """The tool rows after the last model answer, by call id."""
    out: dict[str, StoredMessage] = {}
    for h in reversed(tail):
        if h.message.role == "assistant":
            break
        if h.message.role == "tool" and h.message.tool_call_id is not None:
            out.setdefault(h.message.tool_call_id, h)
    return out


def _result(call: ToolCall, text: str) -> Message:
    return Message(role="tool", tool_call_id=call.id, content=text, status="error")
