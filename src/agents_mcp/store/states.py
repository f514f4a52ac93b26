"""The thread's state machine, in one place.

A thread is in one of five statuses::

                 chat (new thread or new message)
      (none) ─────────────┐    ┌──────────── completed / failed / cancelled
                          ▼    ▼                 ▲ run
                        running ─────────────────┘
            approve ▲     │   ▲ recovery          │ cancel, run (stopped), recovery
       (last call   │     │run│(approved calls    ▼
        decided)    │     ▼   │ not yet started)  cancelled
                  needs_approval ───────────────────▲ cancel

Every transition is one conditional write in the store: it names the statuses it may
start from (and, for a run's own writes, the run's claim), so of two racing requests one
wins and the other gets a clean refusal that says what the thread is now. Entering
``running`` takes a claim (a token unique to the run, plus the process running it) in
the same write; leaving it drops the claim in the same write. A run's every write checks
its claim, so a run that lost its thread (stopped, settled as an orphan, taken over by
another replica) can change nothing.

Tool calls of a model answer move, each, through::

    (no row) ── approval: pending ─▶ approved ─┐           ┌─▶ complete
        │                  └─▶ denied/cancelled │           │
        └───────── no approval needed ──────────┴─▶ started ┼─▶ error
                                                            └─▶ waiting (another agents-mcp
                                                                asks for approvals)

``started`` is committed before the tool is invoked. After a crash, a started call that
has no result "may have run"; an approved call that never started runs (exactly once);
any other call that never started "did not run".

A call may ask the person a question (a downstream server's elicitation). The thread
stays ``running`` meanwhile: its run is alive, holds its claim and waits inside the call.
The question moves, once, through::

    pending ─┬─▶ answered (accept with content, decline, cancel: goes back to the server)
             └─▶ closed   (the call ended, the run stopped or failed, the server stopped,
                           nobody answered in time: the server gets ``cancel`` if anyone)

An answer is taken only while the question is ``pending``. Settling a run closes its
questions in the same write; a call that asked one nobody answered "did not complete".
"""

from __future__ import annotations

from typing import Literal

from agents_mcp.errors import Conflict
from agents_mcp.store.records import Thread, ThreadStatus

Actor = Literal["chat", "approve", "cancel", "run", "recovery"]
"""Who changes a thread: a caller's new message, its decision on the last pending call,
``cancel_run``, the run itself, or recovery of a run whose process is gone."""

TRANSITIONS: dict[tuple[ThreadStatus | None, ThreadStatus], frozenset[Actor]] = {
    (None, "running"): frozenset({"chat"}),
    ("completed", "running"): frozenset({"chat"}),
    ("failed", "running"): frozenset({"chat"}),
    ("cancelled", "running"): frozenset({"chat"}),
    ("needs_approval", "running"): frozenset({"approve", "recovery", "run"}),
    ("running", "completed"): frozenset({"run"}),
    ("running", "needs_approval"): frozenset({"run", "recovery"}),
    ("running", "failed"): frozenset({"run", "recovery"}),
    ("running", "cancelled"): frozenset({"run", "cancel", "recovery"}),
    ("needs_approval", "cancelled"): frozenset({"cancel"}),
}
"""Every allowed transition and who may make it. Nothing else ever happens. (A run moves
its own paused delegation from ``needs_approval`` back to ``running``.)"""

FINISHED: tuple[ThreadStatus, ...] = ("completed", "failed", "cancelled")
"""Statuses a new message may start from."""


def allowed(actor: Actor, before: ThreadStatus | None, after: ThreadStatus) -> bool:
    return actor in TRANSITIONS.get((before, after), frozenset())


def sources(actor: Actor, after: ThreadStatus) -> tuple[ThreadStatus, ...]:
    """The statuses ``actor`` may move a thread to ``after`` from."""
    return tuple(
        before
        for (before, target), actors in TRANSITIONS.items()
        if target == after and actor in actors and before is not None
    )


# What a call's result says when it did not finish normally. The model reads these.
MAY_HAVE_RUN = (
    "Interrupted: the server stopped while this call was running; it may have run."
    " Check its effect before retrying it."
)
DID_NOT_RUN = "Interrupted: the server stopped before this call started; it did not run."
STOPPED_RUNNING = (
    "Cancelled: the run was stopped while this call was running; it may have run."
    " Check its effect before retrying it."
)
STOPPED_BEFORE = "Cancelled: the run was stopped before this call started; it did not run."
INTERRUPTED_ASKING = (
    "Interrupted: the server stopped while this call waited for an answer to its question"
    " ({message}); it did not complete. It may have done part of its work: check its effect,"
    " then call it again if it is still needed."
)
STOPPED_ASKING = (
    "Cancelled: the run was stopped while this call waited for an answer to its question"
    " ({message}); it did not complete. It may have done part of its work: check its effect"
    " before calling it again."
)
QUESTION_RUN_ENDED = (
    "the run that asked it ended (it was stopped, or its server stopped): the agent was told"
    " that the call did not complete"
)
QUESTION_RUN_FAILED = "the run that asked it failed"


class StateConflict(Conflict):
    """A transition was refused: the thread is not in a state it may start from."""

    def __init__(self, thread: Thread) -> None:
        super().__init__(f"thread {thread.id!r} is {thread.status}")
        self.thread = thread
