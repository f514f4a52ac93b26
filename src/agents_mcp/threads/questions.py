"""A downstream server's questions, relayed to the person behind the run.

A downstream tool may ask the person something during a call (a confirmation, a choice,
a missing value): ``elicitation/create`` in the handshake era, an input-required result
in 2026-07-28. ``downstream.elicit`` routes the question to the handler of the run whose
call caused it, :meth:`Asking.ask`, which

1. stores it as a ``pending`` question of the run's thread, under the run's claim (a run
   that lost its thread asks nothing), so it is shown wherever the thread is:
   ``get_thread``, ``list_threads``, the thread view, ``agents-mcp pending``;
2. wakes the requests that wait on the run in this process (``Runs.nudge``): they answer
   at once with the question, as they would with a pending approval; requests in other
   processes see it in the store;
3. waits for the answer: given in this process, it arrives at once; in another (a
   replica, the CLI), through the store (PostgreSQL ``NOTIFY``, else polling);
4. returns it to the server (accept with the content, decline, cancel), which finishes
   its tool.

The thread stays ``running`` all along: its run is alive, holds its claim, and the call
is in flight. So the state machine does not change, and everything that bounds a run
bounds a question too: ``cancel_run`` stops the run (its questions close, the server
gets ``cancel``); a crash leaves the thread to recovery, which closes the question and
tells the model that the call did not complete (it cannot be resumed: the server's side
of it is gone with the connection), and the model may call it again on the next turn.
A question nobody answers within ``question_timeout`` closes, and the server gets
``cancel``. A late answer to a closed question is refused with why.

Answers go through :meth:`QuestionRequests.answer_question` (``Threads``), whoever
gives them: the inline elicitation of a calling client, the ``answer_question`` tool,
the thread view, the terminal. :meth:`QuestionRequests.pending_items` lists everything a
thread waits for from a person, approvals and questions, for any surface that asks.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from agents_mcp.downstream.elicit import ElicitAnswer, Elicitation
from agents_mcp.engine.agent import Progress, Run, RunEvent
from agents_mcp.engine.summary import TurnSummary, pending_in_tree
from agents_mcp.errors import Conflict, InvalidRequest, NotFound
from agents_mcp.store import (
    ACTIONS,
    Action,
    Approval,
    Question,
    Store,
    Thread,
    new_question_id,
    now,
)
from agents_mcp.store.states import QUESTION_RUN_ENDED

log = logging.getLogger("agents_mcp.threads.questions")

POLL_SECONDS = 0.5
"""How often a run waiting for an answer looks at the store (for answers given in
another process; PostgreSQL wakes it at once, and one given here wakes it directly)."""
QUESTION_TIMEOUT = 3600.0
"""How long a question waits for the person by default (``[server] question_timeout``)."""


@dataclass(frozen=True)
class PendingItems:
    """What a thread (with its delegations) waits for from a person."""

    approvals: list[Approval] = field(default_factory=list[Approval])
    """Undecided calls (the thread is ``needs_approval``), each with its agent chain."""
    questions: list[Question] = field(default_factory=list[Question])
    """Unanswered questions of downstream servers (the thread is ``running``)."""


@dataclass(eq=False)
class _Open:
    question: Question
    answered: anyio.Event = field(default_factory=anyio.Event)


class Asking:
    """The questions runs of this process wait on, by question id."""

    def __init__(
        self, store: Store, nudge: Callable[[str], None], *, timeout: float = QUESTION_TIMEOUT
    ) -> None:
        self.store = store
        self.nudge = nudge
        """Wakes the requests waiting on a top-level thread's run here (``Runs.nudge``)."""
        self.timeout = timeout
        self._open: dict[str, _Open] = {}

    def waiting(self, root_id: str) -> bool:
        """Whether a run of this process waits for an answer in this thread's tree."""
        return any(o.question.root_id == root_id for o in self._open.values())

    async def ask(self, r: Run, asked: Elicitation) -> ElicitAnswer:
        """The run's handler of a server's question (see the module docstring)."""
        if asked.url is not None or asked.requested_schema is None:
            log.info("%s asked in URL mode: %r; not relayed, answered cancel", asked.server, asked)
            return ElicitAnswer("cancel")
        if r.root_id is None:  # a top-level run: its chain is its own agent
            via: tuple[str, ...] = (r.agent.name,)
        else:
            via = next(
                (chain for t, chain in await self.store.tree(r.root) if t.id == r.thread_id), ()
            )
        question = Question(
            id=new_question_id(),
            thread_id=r.thread_id,
            root_id=r.root,
            call_id=asked.call_id,
            claim=r.claim.token,
            server=asked.server,
            tool=asked.tool,
            message=asked.message,
            requested_schema=dict(asked.requested_schema),
            status="pending",
            asked_at=now(),
            via=via,
        )
        await self.store.ask_question(question)  # refused once the run lost its thread
        opened = self._open[question.id] = _Open(question)
        self.nudge(r.root)
        asking = f"{asked.tool or asked.server} asks: {' '.join(asked.message.split())[:120]}"
        await r.progress(RunEvent("status", f"waiting for an answer · {asking}"))
        why = "the call ended before it was answered"
        try:
            with anyio.move_on_after(self.timeout):
                return await self._answer(opened)
            why = (
                f"nobody answered within question_timeout ({self.timeout:g} s): its tool was"
                " told the question was cancelled"
            )
            return ElicitAnswer("cancel")
        finally:
            self._open.pop(question.id, None)
            with anyio.CancelScope(shield=True):
                await self._close(question.id, why)
            self.nudge(r.root)

    async def _answer(self, opened: _Open) -> ElicitAnswer:
        """Wait for the answer, wherever it is given."""
        q = opened.question
        while True:
            await _first(
                opened.answered.wait,
                functools.partial(self.store.wait_changed, q.root_id, POLL_SECONDS),
            )
            current = await self.store.question(q.id)
            if current is None or current.status == "closed":
                return ElicitAnswer("cancel")
            if current.status == "answered" and current.action is not None:
                log.info("%s's question %s answered: %s", q.server, q.id, current.action)
                return ElicitAnswer(current.action, current.content)

    async def _close(self, question_id: str, why: str) -> None:
        """Close a question nobody answered (no-op once answered or closed, and when the
        run is stopping: settling it closes its questions)."""
        try:
            await self.store.close_question(question_id, why, by_run=True)
        except Exception as exc:  # settled with the run later, whatever happens here
            log.warning("could not close question %s: %s", question_id, exc)

    async def answer(
        self, question: Question, action: Action, content: Mapping[str, Any] | None
    ) -> Question:
        """Record the answer; the run waiting on it here takes it at once."""
        recorded, current = await self.store.answer_question(question.id, action, content)
        if not recorded:
            _refuse(current, action, content)
        opened = self._open.pop(question.id, None)  # not waited on any more: requests wait
        if opened is not None:
            opened.answered.set()
        return current


async def _first(*waits: Callable[[], Awaitable[Any]]) -> None:
    """Return as soon as one of ``waits`` returns."""
    async with anyio.create_task_group() as tg:

        async def one(wait: Callable[[], Awaitable[Any]]) -> None:
            await wait()
            tg.cancel_scope.cancel()

        for wait in waits:
            tg.start_soon(one, wait)


def _refuse(current: Question, action: Action, content: Mapping[str, Any] | None) -> None:
    """Why an answer was not recorded (nothing when it is the answer given before)."""
    if current.status == "answered":
        if current.action == action and (current.content or None) == (content or None):
            return  # the same answer again: done already
        raise Conflict(
            f"question {current.id!r} was already answered ({current.action}); an answer"
            " cannot be changed"
        )
    why = current.reason or "the run that asked it was stopped"  # still pending: stopping
    raise Conflict(
        f"question {current.id!r} can no longer be answered: {why}. get_thread shows where"
        " the thread is now"
    )


def check_answer(question: Question, action: Action, content: Mapping[str, Any] | None) -> None:
    """The answer fits the question: ``content`` (only with accept) matches its schema."""
    if action not in ACTIONS:
        raise InvalidRequest(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if action != "accept":
        if content:
            raise InvalidRequest(f"content goes with action 'accept' only, not {action!r}")
        return
    # Loaded here, for the few answers that need it: jsonschema and its format checkers
    # are about 2 MiB of an idle server's memory, and tens of ms of CPU at every start.
    import jsonschema

    schema = question.requested_schema or {"type": "object"}
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(content or {}),
        key=lambda e: list(e.path),
    )
    if errors:
        said = "; ".join(
            f"{'.'.join(str(p) for p in e.path) or 'content'}: {e.message}" for e in errors[:5]
        )
        raise InvalidRequest(
            f"content does not match what question {question.id!r} asks for: {said}."
            f" Its schema: {schema}"
        )


class QuestionRequests:
    """``Threads``' requests about questions (mixed into :class:`~.service.Threads`)."""

    store: Store
    asking: Asking

    async def _root(self, thread: Thread, owner: str) -> Thread:
        raise NotImplementedError

    async def _follow(self, root: Thread, wait: float, progress: Progress | None) -> None:
        raise NotImplementedError

    async def _summary(self, thread_id: str, owner: str) -> TurnSummary:
        raise NotImplementedError

    async def _live(self, thread: Thread) -> bool:
        raise NotImplementedError

    async def _settle_orphan(self, root: Thread) -> None:
        raise NotImplementedError

    async def answer_question(
        self,
        *,
        owner: str,
        thread_id: str,
        question_id: str,
        action: Action = "accept",
        content: Mapping[str, Any] | None = None,
        wait: float = 45.0,
        progress: Progress | None = None,
    ) -> TurnSummary:
        """Answer a downstream server's question in ``thread_id``'s tree, then wait up to
        ``wait`` for the run to finish (or to ask again), like ``approve``."""
        thread = await self.store.get_thread(thread_id, owner)
        root = await self._root(thread, owner)
        question = await self.store.question(question_id)
        if question is None or question.root_id != root.id:
            raise NotFound(f"question {question_id!r} not found in thread {thread_id!r}")
        if question.status == "pending":  # its run must be there to take the answer
            check_answer(question, action, content)
            if root.status == "running" and root.claim == question.claim:
                if not await self._live(root):  # gone: settled, which closes the question
                    await self._settle_orphan(root)
            else:  # cannot happen (settling closes them), but never leave it open
                await self.store.close_question(question.id, QUESTION_RUN_ENDED)
        await self.asking.answer(question, action, content)
        await self._follow(await self.store.get_thread(root.id, owner), wait, progress)
        return await self._summary(thread.id, owner)

    async def pending_items(self, *, owner: str, thread_id: str) -> PendingItems:
        """What the thread (with its delegations) waits for from a person: undecided
        calls and unanswered questions, each with the agents it comes through."""
        thread = await self.store.get_thread(thread_id, owner)
        root = await self._root(thread, owner)
        approvals = await pending_in_tree(self.store, root)
        questions = (await self.store.pending_questions([root.id])).get(root.id, [])
        return PendingItems(approvals, questions)

    async def open_questions(self, *, owner: str) -> list[Question]:
        """Every unanswered question of the owner's threads, oldest first (an inbox)."""
        return await self.store.open_questions(owner)

    async def questions_of(self, threads: Sequence[Thread]) -> dict[str, list[Question]]:
        """The unanswered questions of each running thread of a page (``list_threads``)."""
        running = [t.id for t in threads if t.status == "running"]
        return await self.store.pending_questions(running)
