"""What callers do with threads: chat, decide approvals, look them up, cancel. Transport-free.

The MCP server and the CLI both call :class:`Threads`. Every change of a thread's state is
one transition in the store (``store.states``); a request that starts a run claims the
thread in the same write, the run goes on in the background (``runs``), and a request
waits up to its deadline. Any process on the database may hold a thread: requests follow
its run, and ``cancel_run`` asks it to stop, through the store.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Literal

import anyio

from agents_mcp.engine.agent import Agent, Budget, Link, Progress, Run, RunState
from agents_mcp.engine.delegation import Delegation
from agents_mcp.engine.summary import TurnSummary, summarize
from agents_mcp.engine.transcript import Transcript, current_turn
from agents_mcp.engine.usage import Limits, ServerBudgets, Spend
from agents_mcp.errors import Conflict, InvalidRequest, NotFound, StoreError, internal_error
from agents_mcp.messages import Message
from agents_mcp.store import (
    Approval,
    Claim,
    Settled,
    StateConflict,
    Store,
    StoredMessage,
    Thread,
    ThreadStatus,
)
from agents_mcp.structured import require_schema
from agents_mcp.threads.checks import busy, check_continuation, check_message, find_call
from agents_mcp.threads.peers import cancel_relayed
from agents_mcp.threads.questions import QUESTION_TIMEOUT, Asking, QuestionRequests
from agents_mcp.threads.runs import SETTLE_SECONDS, Runs

log = logging.getLogger("agents_mcp.threads.service")

Scope = Literal["once", "thread"]
TRANSCRIPTS_KEPT = 64
POLL_SECONDS = 0.25
"""How often a request following a run in another process looks at the thread again
(SQLite; PostgreSQL wakes it at once with ``NOTIFY``, and polls as a fallback)."""
WATCH_SECONDS = 0.5
"""How often this process looks for stop requests from other processes for its runs."""
SWEEP_SECONDS = 5.0
"""How often it looks for threads whose process is gone (orphans) to settle them."""


class Threads(QuestionRequests):
    """Chat, approve, answer (``questions``), get, list and cancel, for one owner at a time."""

    def __init__(
        self,
        store: Store,
        agents: Mapping[str, Agent],
        runs: Runs,
        *,
        max_depth: int = 3,
        max_total_llm_requests: int = 100,
        question_timeout: float = QUESTION_TIMEOUT,
    ) -> None:
        self.store = store
        self.agents = dict(agents)
        self.runs = runs
        self.asking = Asking(store, runs.nudge, timeout=question_timeout)
        self.delegation = Delegation(store, self.agents, max_depth=max_depth)
        self.max_total_llm_requests = max_total_llm_requests
        self.budgets: ServerBudgets | None = None  # [server.budgets] (see engine.usage)
        # Transcripts of recently run threads, so a new turn does not re-read the whole
        # thread; each is checked against the store's revision before it is used.
        self._transcripts: OrderedDict[str, Transcript] = OrderedDict()

    def replace_agents(self, agents: Mapping[str, Agent]) -> None:
        """Serve ``agents`` from now on (agent files changed). In place: the delegation
        shares the mapping. A run already going keeps the agent it started with."""
        self.agents.clear()
        self.agents.update(agents)

    def agent(self, name: str) -> Agent:
        try:
            return self.agents[name]
        except KeyError:
            valid = ", ".join(sorted(self.agents))
            raise NotFound(f"unknown agent {name!r}; valid agents: {valid}") from None

    # -- requests ---------------------------------------------------------------------------

    async def chat(
        self,
        *,
        owner: str,
        agent: str,
        message: str,
        thread_id: str | None = None,
        personality: str | None = None,
        wait: float = 45.0,
        progress: Progress | None = None,
        chain: tuple[Link, ...] = (),
        output_schema: Mapping[str, Any] | None = None,
        limits: Limits | None = None,
    ) -> TurnSummary:
        """Send ``message``; start a thread without ``thread_id``, else continue it.
        ``chain``: a calling agent's delegation chain (too deep or a cycle is refused);
        ``output_schema`` (else the agent's) and ``limits`` are stored with the turn."""
        spec = self.agent(agent)
        if output_schema is not None:
            output_schema = require_schema(output_schema, from_caller=True)
        schema = output_schema if output_schema is not None else spec.output_schema
        check_message(spec, message, personality, self.delegation.refusal(chain, spec.name))
        claim = self._claim()
        if thread_id is not None:
            thread = await self.store.get_thread(thread_id, owner)
            check_continuation(thread, spec)
        with self.runs.reserving(claim):  # shielded: a claimed thread's run starts
            if thread_id is None:
                thread = await self.store.create_thread(
                    agent=spec.name, owner=owner, first_message=message,
                    personality=personality, claim=claim, output_schema=schema,
                    caller_chain=_stored(chain),
                )  # fmt: skip
                first = StoredMessage(index=0, message=Message(role="user", content=message))
                new = Transcript(self.store, thread.id, [first], spec.tool_result_budget, thread.revision)  # fmt: skip
            else:
                thread = await self._start_turn(thread, message, claim, personality, schema, _stored(chain))  # fmt: skip
                new = None
            spend = await Spend.new_turn(self.store, spec, owner, thread, self.budgets, limits)
            self._launch(thread, spec, claim, personality, chain, new, schema=schema, spend=spend)  # fmt: skip
        await self._wait_local(thread.id, spec, wait, progress)
        return await self._summary(thread.id, owner)

    async def approve(
        self,
        *,
        owner: str,
        thread_id: str,
        call_id: str,
        approve: bool,
        reason: str | None = None,
        scope: Scope = "once",
        wait: float = 45.0,
        progress: Progress | None = None,
    ) -> TurnSummary:
        """Record a decision on a pending call; once every call is decided, the run resumes
        (claimed in the same write as the last decision) from the top-level thread."""
        thread = await self.store.get_thread(thread_id, owner)
        root = await self._root(thread, owner)
        target = await find_call(self.store, thread, root, call_id)
        spec = self.agents.get(root.agent)
        if spec is None:
            raise Conflict(
                f"thread {root.id!r} belongs to agent {root.agent!r}, which is no longer"
                " configured; its calls cannot run"
            )
        if scope == "thread" and target.is_sign_in:
            raise InvalidRequest(f"{call_id!r} waits for a sign-in; it can only be decided once")
        if scope == "thread" and target.origin_call_id is not None:
            # Its server and tool are what another agents-mcp says they are: a grant by
            # that name would let our own tool of the same name run unasked.
            raise InvalidRequest(
                f"call {call_id!r} was asked for by another agents-mcp"
                f" ({target.remote_server}); it can be allowed once (scope='once'), not for"
                " the rest of the thread"
            )
        grant = target.tool_name if approve and scope == "thread" else None
        claim = self._claim()
        with self.runs.reserving(claim):  # claimed: started
            decision = await self.store.decide(
                root.id,
                target.thread_id,
                call_id,
                approve=approve,
                reason=reason,
                claim=claim,
                grant_tool=grant,
            )
            if decision.outcome == "resumed":
                self._resume(root, spec, claim)
        if decision.outcome == "resumed":
            await self._wait_local(root.id, spec, wait, progress)
        else:  # other calls still wait, or the run that holds the thread goes on
            await self._follow(root, wait, progress)
        return await self._summary(thread.id, owner)

    async def get(
        self, *, owner: str, thread_id: str, wait: float = 0.0, progress: Progress | None = None
    ) -> TurnSummary:
        """The thread's current result, waiting up to ``wait`` seconds for a running turn to
        end or ask a question. Read-only: it never starts a run, nor does a cancelled wait
        stop one."""
        thread = await self.store.get_thread(thread_id, owner)
        await self._follow(await self._root(thread, owner), wait, progress)
        return await self._summary(thread_id, owner)

    async def cancel(self, *, owner: str, thread_id: str) -> TurnSummary:
        """Stop a running thread, or drop the undecided calls of a paused one.

        A delegation's thread is cancelled through its top-level thread, with its
        siblings. Every completed step stays; calls that never ran get a "cancelled"
        result. Cancelling a thread that is neither running nor paused changes nothing.
        """
        thread = await self.store.get_thread(thread_id, owner)
        root = await self._root(thread, owner)
        for _ in range(3):  # a racing request may change the thread between our looks
            if self.runs.running(root.id):
                await self.runs.stop(root.id, SETTLE_SECONDS)
                break
            if root.status == "running" and await self._live(root):
                await self.store.request_stop(root.id, root.claim or "")
                await self._follow(root, SETTLE_SECONDS, None)
                break
            if root.status not in ("running", "needs_approval"):
                break
            with anyio.CancelScope(shield=True):  # once cancelled here, cancelled there too
                settled = await self.store.settle(root.id, claim=root.claim, cancel=True)
                if settled is not None:
                    await self._forward(settled)
            if settled is not None:
                break
            root = await self.store.get_thread(root.id, owner)
        return await self._summary(thread_id, owner)

    async def list_threads(
        self,
        *,
        owner: str,
        agent: str | None = None,
        status: ThreadStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
        include_children: bool = False,
    ) -> tuple[list[Thread], dict[str, list[Approval]], str | None]:
        """The owner's threads, newest first, with the pending calls of waiting threads."""
        if agent is not None:
            self.agent(agent)
        threads, next_cursor = await self.store.list_threads(
            owner=owner,
            agent=agent,
            status=status,
            limit=limit,
            cursor=cursor,
            include_children=include_children,
        )
        waiting = [t.id for t in threads if t.status == "needs_approval"]
        pending = await self.store.pending_in_trees(waiting)  # one read for the page
        return threads, {t: pending.get(t, []) for t in waiting}, next_cursor

    async def children(self, thread_id: str) -> list[Thread]:
        """The direct child threads (delegations) of a thread."""
        return [t for t, via in await self.store.tree(thread_id) if t.parent_id == thread_id]

    async def latest_turn(
        self, *, owner: str, thread_id: str
    ) -> tuple[Thread, list[StoredMessage]]:
        """The thread and its latest turn, from the caller's last message on (owner-checked):
        what a view shows, read without the rest of a long thread."""
        return await self.store.thread_turn(thread_id, owner)

    async def transcript(self, *, owner: str, thread_id: str) -> tuple[Thread, list[StoredMessage]]:
        """The thread and every stored message (owner-checked)."""
        thread = await self.store.get_thread(thread_id, owner)
        return thread, await self.store.messages(thread.id)

    # -- recovery -----------------------------------------------------------------------------

    async def recover(self) -> None:
        """Settle threads whose run is gone (its process died, or it was lost here) and
        resume those whose decided calls are still to run."""
        alive: dict[str | None, bool] = {}  # each runner asked about once per sweep
        for root in await self.store.running_roots():
            if self.runs.running(root.id):
                continue
            if root.runner == self.store.runner:
                live = self.runs.holds(root.claim)
            else:
                if root.runner not in alive:
                    alive[root.runner] = await self.store.alive(root.runner)
                live = alive[root.runner]
            if not live:
                await self._settle_orphan(root)
        for root_id in await self.store.paused_roots():
            paused = await self.store.thread(root_id)
            if paused is not None:
                await self._resume_decided(paused)

    async def _resume_decided(self, paused: Thread) -> bool:
        """Resume a waiting thread whose calls are all decided (its run ended abnormally
        after the last decision); False when something is still undecided."""
        spec = self.agents.get(paused.agent)
        if spec is None:
            return False
        claim = self._claim()
        with self.runs.reserving(claim):
            if not await self.store.resume_paused(paused.id, claim):
                return False
            self._resume(paused, spec, claim)
        return True

    async def maintain(self, *, sweep: bool = True) -> None:
        """Forever: stop this process's runs that ``cancel_run`` asked to stop from another
        process, and (``sweep``) settle orphans now and then (run in the background)."""
        ticks = 0
        while True:
            await anyio.sleep(WATCH_SECONDS)
            ticks += 1
            try:
                if self.runs.running_count():
                    for t in await self.store.stop_requests():
                        if self.runs.holds(t.claim):
                            self.runs.spawn(functools.partial(self.runs.stop, t.id, SETTLE_SECONDS))
                if sweep and ticks * WATCH_SECONDS >= SWEEP_SECONDS:
                    ticks = 0
                    await self.recover()
            except StoreError as exc:
                log.warning("%s", exc)
            except Exception as exc:  # this loop must outlive any one bad thread
                internal_error(exc, "the background sweep")

    # -- internals ----------------------------------------------------------------------------

    def _claim(self) -> Claim:
        return Claim.new(self.store.runner)

    async def _live(self, thread: Thread) -> bool:
        """Whether a run somewhere still holds this running thread."""
        if thread.runner == self.store.runner:
            return self.runs.holds(thread.claim)
        return await self.store.alive(thread.runner)

    async def _start_turn(
        self,
        thread: Thread,
        message: str,
        claim: Claim,
        personality: str | None,
        schema: Mapping[str, Any] | None = None,
        chain: tuple[tuple[str, str], ...] = (),
    ) -> Thread:
        """The new message and the claim, in one write; an orphan in the way is settled."""
        try:
            return await self.store.start_turn(
                thread.id, message, claim=claim, personality=personality, output_schema=schema,
                caller_chain=chain,
            )  # fmt: skip
        except StateConflict as exc:
            current = exc.thread
            if current.status == "needs_approval" and await self._resume_decided(current):
                raise Conflict(
                    f"thread {current.id!r} is carrying out the calls decided before its run"
                    " stopped; call get_thread to wait for its result"
                ) from None
            if current.status != "running" or await self._live(current):
                raise await busy(self.store, current) from None
        await self._settle_orphan(current)
        try:
            return await self.store.start_turn(
                thread.id, message, claim=claim, personality=personality, output_schema=schema,
                caller_chain=chain,
            )  # fmt: skip
        except StateConflict as exc:
            raise await busy(self.store, exc.thread) from None

    async def _settle_orphan(self, root: Thread) -> None:
        """A thread left ``running`` by a run that is gone: settle it now and resume it
        when decided calls are still to run (if its agent is still configured)."""
        spec = self.agents.get(root.agent)
        claim = self._claim() if spec is not None else None
        with self.runs.reserving(claim):  # claimed: started
            settled = await self.store.settle(
                root.id, claim=root.claim, cancel=root.stop_requested, resume=claim
            )
            if settled is not None and settled.status == "running" and spec and claim:
                self._resume(root, spec, claim)
        if settled is not None:
            await self._forward(settled)

    async def _follow(self, root: Thread, wait: float, progress: Progress | None) -> None:
        """Wait up to ``wait`` for the tree's run, wherever it runs, to end or ask a question."""
        asking = functools.partial(self.asking.waiting, root.id)
        if self.runs.running(root.id):
            await self.runs.wait(root.id, wait, progress, until=asking)
            return
        if root.status != "running":
            return
        if not await self._live(root):
            await self._settle_orphan(root)
            if self.runs.running(root.id):
                await self.runs.wait(root.id, wait, progress, until=asking)
            return
        with anyio.move_on_after(wait):  # it runs in another process: watch the store
            while not await self.store.pending_questions([root.id]):
                await self.store.wait_changed(root.id, POLL_SECONDS)
                current = await self.store.thread(root.id)
                if current is None or current.status != "running":
                    return
                if not await self._live(current):
                    await self._settle_orphan(current)
                    return

    async def _forward(self, settled: Settled) -> None:
        """Cancel on other agents-mcp servers what was relayed there (see ``peers``)."""
        await cancel_relayed(self.store, self.agents, settled)

    async def _root(self, thread: Thread, owner: str) -> Thread:
        if thread.parent_id is None:
            return thread
        return await self.store.get_thread(await self.store.root_of(thread.id), owner)

    async def _summary(self, thread_id: str, owner: str) -> TurnSummary:
        kept = self._transcripts.get(thread_id)
        if kept is not None:
            # The run's own copy of the turn, when the thread has not changed since (the
            # revision counts every message change): no need to read and decode it again.
            thread = await self.store.get_thread(thread_id, owner)
            if thread.revision == kept.revision:
                return await summarize(self.store, thread, current_turn(kept.messages))
        thread, turn = await self.store.thread_turn(thread_id, owner)
        return await summarize(self.store, thread, turn)

    async def _transcript(self, thread_id: str, spec: Agent) -> Transcript:
        cached = self._transcripts.pop(thread_id, None)
        if cached is None:
            cached = await Transcript.load(self.store, thread_id, spec.tool_result_budget)
        else:
            await cached.refresh()
        self._keep(cached)
        return cached

    def _keep(self, transcript: Transcript) -> None:
        self._transcripts.pop(transcript.thread_id, None)
        self._transcripts[transcript.thread_id] = transcript
        while len(self._transcripts) > TRANSCRIPTS_KEPT:
            self._transcripts.popitem(last=False)

    async def _wait_local(
        self, thread_id: str, spec: Agent, wait: float, progress: Progress | None
    ) -> None:
        stop = spec.on_cancel == "stop"
        asking = functools.partial(self.asking.waiting, thread_id)
        await self.runs.wait(thread_id, wait, progress, stop_on_cancel=stop, until=asking)

    def _resume(self, thread: Thread, spec: Agent, claim: Claim) -> None:
        """Run the paused or orphaned ``thread`` again, asked as its latest turn was."""
        incoming = tuple(Link(instance, agent) for instance, agent in thread.caller_chain)
        spend = Spend.of(self.store, spec, thread.owner, thread.id, self.budgets, None)
        self._launch(thread, spec, claim, thread.personality, incoming, schema=thread.output_schema, spend=spend)  # fmt: skip

    def _launch(
        self,
        thread: Thread,
        spec: Agent,
        claim: Claim,
        personality: str | None,
        incoming: tuple[Link, ...] = (),
        new: Transcript | None = None,
        *,
        schema: Mapping[str, Any] | None = None,
        spend: Spend,
    ) -> None:
        """Run the thread this process has just claimed; ``new``: a new thread's transcript;
        ``schema``, ``spend``: the turn's output schema and what it may spend."""
        thread_id, owner = thread.id, thread.owner
        chain = (*incoming, Link(self.delegation.instance, spec.name))
        budget = Budget(self.max_total_llm_requests)
        if new is not None:
            self._keep(new)

        async def make(progress: Progress, reads_text: Callable[[], bool]) -> Run:
            transcript = new or await self._transcript(thread_id, spec)
            return Run(
                agent=spec,
                thread_id=thread_id,
                store=self.store,
                claim=claim,
                progress=progress,
                personality=personality,
                chain=chain,
                budget=budget,
                delegate=self.delegation,
                state=RunState(transcript=transcript),
                reads_text=reads_text,
                output_schema=schema,
                owner=owner,
                ask=self.asking.ask,
                spend=spend.starting(current_turn(transcript.messages)),
            )

        self.runs.launch(thread_id, claim, make, self._forward)


def _stored(chain: tuple[Link, ...]) -> tuple[tuple[str, str], ...]:
    """``chain`` as the store keeps it (``Thread.caller_chain``)."""
    return tuple((link.instance, link.agent) for link in chain)
