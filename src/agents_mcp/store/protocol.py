"""The store as the loop and ``threads`` see it: a protocol, whatever the database.

Two implementations share one body of SQL (``SQLStore`` over SQLite or PostgreSQL); tests
may stand in their own. Every method is atomic. The transitions follow
:mod:`agents_mcp.store.states`; the run's own writes take its :class:`Claim` and raise
``LostClaim`` (or ``StopRequested``) once the run no longer holds the thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from agents_mcp.messages import Message
from agents_mcp.store.lifecycle import Deleted
from agents_mcp.store.points import Points
from agents_mcp.store.questions import Action, Question
from agents_mcp.store.records import (
    Approval,
    Claim,
    Decision,
    Settled,
    StoredMessage,
    Thread,
    ThreadStatus,
)
from agents_mcp.store.usage import Charge, GroupBy, Refusal, TreeUsage, UsageRow


class Store(Protocol):
    points: Points
    """Named points of every operation, for tests (see ``points``)."""

    @property
    def runner(self) -> str:
        """This process's runner id (its lease)."""
        ...

    @property
    def location(self) -> str:
        """Where the threads are (a path, or a URL without password)."""
        ...

    async def alive(self, runner: str | None) -> bool:
        """Whether the process ``runner`` still holds its lease."""
        ...

    async def wait_changed(self, thread_id: str, seconds: float) -> None:
        """Return once the thread may have changed in another process, or after ``seconds``."""
        ...

    async def close(self) -> None: ...

    # reads
    async def get_thread(self, thread_id: str, owner: str) -> Thread: ...
    async def thread(self, thread_id: str) -> Thread | None: ...
    async def thread_turn(
        self, thread_id: str, owner: str
    ) -> tuple[Thread, list[StoredMessage]]: ...
    async def turn(self, thread_id: str) -> list[StoredMessage]: ...
    async def messages(self, thread_id: str) -> list[StoredMessage]: ...
    async def transcript(
        self, thread_id: str, *, since: int = 0
    ) -> tuple[list[StoredMessage], int]: ...
    async def tree(self, root_id: str) -> list[tuple[Thread, tuple[str, ...]]]: ...
    async def root_of(self, thread_id: str) -> str: ...
    async def child_for_call(self, parent_id: str, call_id: str) -> Thread | None: ...
    async def list_threads(
        self,
        *,
        owner: str,
        agent: str | None = None,
        status: ThreadStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
        include_children: bool = False,
    ) -> tuple[list[Thread], str | None]: ...
    async def approvals(self, thread_id: str) -> list[Approval]: ...
    async def pending_in_tree(self, root_id: str) -> list[Approval]: ...
    async def pending_in_trees(self, root_ids: Sequence[str]) -> dict[str, list[Approval]]: ...
    async def pending_approvals(self, thread_ids: Sequence[str]) -> dict[str, list[Approval]]: ...
    async def decisions(self, thread_id: str) -> tuple[list[Approval], set[str]]: ...
    async def running_roots(self) -> list[Thread]: ...
    async def paused_roots(self) -> list[str]: ...
    async def stop_requests(self) -> list[Thread]: ...

    # questions a downstream server asks during a run's call (see ``questions``)
    async def ask_question(self, question: Question) -> None: ...
    async def answer_question(
        self, question_id: str, action: Action, content: Mapping[str, Any] | None
    ) -> tuple[bool, Question]: ...
    async def close_question(
        self, question_id: str, reason: str, *, by_run: bool = False
    ) -> bool: ...
    async def question(self, question_id: str) -> Question | None: ...
    async def pending_questions(self, root_ids: Sequence[str]) -> dict[str, list[Question]]: ...
    async def open_questions(self, owner: str) -> list[Question]: ...

    # transitions into running: chat, approve, recovery
    async def create_thread(
        self,
        *,
        agent: str,
        owner: str,
        first_message: str,
        claim: Claim,
        personality: str | None = None,
        parent: tuple[str, str] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        caller_chain: tuple[tuple[str, str], ...] = (),
    ) -> Thread: ...
    async def start_turn(
        self,
        thread_id: str,
        message: str,
        *,
        claim: Claim,
        personality: str | None = None,
        parent_call_id: str | None = None,
        output_schema: Mapping[str, Any] | None = None,
        caller_chain: tuple[tuple[str, str], ...] = (),
    ) -> Thread: ...
    async def decide(
        self,
        root_id: str,
        thread_id: str,
        call_id: str,
        *,
        approve: bool,
        reason: str | None,
        claim: Claim,
        grant_tool: str | None = None,
    ) -> Decision: ...
    async def resume_paused(self, root_id: str, claim: Claim) -> bool: ...
    async def resume_child(self, thread_id: str, claim: Claim) -> None: ...

    # a run's own writes
    async def append(
        self,
        thread_id: str,
        claim: Claim,
        *messages: Message,
        approvals: Sequence[Approval] = (),
        complete: bool = False,
    ) -> list[int]: ...
    async def finish_call(
        self, thread_id: str, claim: Claim, index: int, call_id: str, content: str, *, ok: bool
    ) -> None: ...
    async def hold_call(
        self, thread_id: str, claim: Claim, index: int, call_id: str, asked: Sequence[Approval]
    ) -> None: ...
    async def restart_call(
        self, thread_id: str, claim: Claim, index: int, call_id: str
    ) -> None: ...
    async def pause(self, thread_id: str, claim: Claim) -> bool: ...
    async def fail(self, thread_id: str, claim: Claim, error: tuple[str, str]) -> None: ...

    # stopping and settling
    async def request_stop(self, root_id: str, claim: str) -> bool: ...
    async def settle(
        self,
        root_id: str,
        *,
        claim: str | None,
        cancel: bool,
        resume: Claim | None = None,
        error: tuple[str, str] | None = None,
    ) -> Settled | None: ...

    # usage, budgets and traces (``usage``)
    async def budget_admit(
        self, charges: Sequence[Charge], day: str, tokens: int, nanos: int
    ) -> Refusal | None: ...
    async def budget_settle(
        self,
        charges: Sequence[Charge],
        day: str,
        reserved: tuple[int, int],
        spent: tuple[int, int],
    ) -> None: ...
    async def save_turn_limits(
        self, thread_id: str, turn: int, tokens: int | None, nanos: int | None
    ) -> None: ...
    async def turn_limits(self, thread_id: str, turn: int) -> tuple[int | None, int | None]: ...
    async def turn_usage(self, root_id: str) -> TreeUsage: ...
    async def tree_usage(self, root_ids: Sequence[str]) -> dict[str, TreeUsage]: ...
    async def usage_report(
        self,
        by: GroupBy,
        *,
        since: str | None = None,
        until: str | None = None,
        owner: str | None = None,
        agent: str | None = None,
    ) -> list[UsageRow]: ...
    async def save_trace(
        self, thread_id: str, traceparent: str, tracestate: str | None
    ) -> None: ...
    async def trace_of(self, thread_id: str) -> tuple[str, str | None] | None: ...
    async def pending_count(self) -> int: ...

    # the end of a thread's life (see ``lifecycle``)
    async def delete_thread(self, thread_id: str, owner: str) -> Deleted: ...
    async def expired_roots(self, before: str, limit: int) -> list[str]: ...
    async def delete_expired(self, root_id: str, before: str) -> Deleted | None: ...
