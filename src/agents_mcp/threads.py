"""What callers do with threads: chat, decide approvals, look them up. Transport-free.

The MCP server and the CLI both call :class:`Threads`. Runs execute in the background,
in a task group owned by the process, independent of the request that started them; a
request waits up to its deadline and otherwise answers ``running``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from agents_mcp.delegation import Delegation
from agents_mcp.errors import Conflict, InvalidRequest, NotFound
from agents_mcp.loop import (
    Agent,
    Budget,
    Link,
    Progress,
    Run,
    RunEvent,
    RunState,
    TurnSummary,
    open_calls,
    pending_in_tree,
    run,
    stop_thread,
    summarize,
)
from agents_mcp.messages import Message
from agents_mcp.store import Approval, Store, StoredMessage, Thread, ThreadStatus
from agents_mcp.transcript import Transcript

log = logging.getLogger("agents_mcp.threads")

Scope = Literal["once", "thread"]
TRANSCRIPTS_KEPT = 64


@dataclass
class _Active:
    done: anyio.Event = field(default_factory=anyio.Event)
    listeners: set[Progress] = field(default_factory=set[Progress])
    task: asyncio.Task[None] | None = None
    stopping: bool = False


class Runs:
    """The runs in flight in this process, one at most per thread.

    Runs are asyncio tasks rather than children of an anyio task group: they must outlive
    the request that started them, and FastMCP closes its lifespan under a shielded cancel
    scope that a task group opened inside the lifespan cannot exit from. ``aclose()``
    cancels whatever is still running; those threads are marked interrupted on next start.
    """

    def __init__(self) -> None:
        self._active: dict[str, _Active] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """Run ``fn`` in the background until it ends or ``aclose()``."""
        task = asyncio.get_running_loop().create_task(fn())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        with anyio.move_on_after(10, shield=True):
            await asyncio.gather(*tasks, return_exceptions=True)

    def claim(self, thread_id: str) -> None:
        """Reserve the thread for a new run, or refuse if one is in flight."""
        if thread_id in self._active:
            raise Conflict(
                f"thread {thread_id!r} is running; call get_thread to wait for its result"
            )
        self._active[thread_id] = _Active()

    def release(self, thread_id: str) -> None:
        active = self._active.pop(thread_id, None)
        if active is not None:
            active.done.set()

    def launch(self, thread_id: str, make: Callable[[Progress], Run], store: Store) -> None:
        """Start the claimed thread's run in the background."""
        active = self._active[thread_id]

        async def progress(event: RunEvent) -> None:
            for listener in list(active.listeners):
                try:
                    await listener(event)
                except Exception as exc:  # a gone client must not break the run
                    log.debug("progress listener failed: %s", exc)
                    active.listeners.discard(listener)

        async def body() -> None:
            try:
                await run(make(progress))
            except asyncio.CancelledError:
                if active.stopping:  # stopped on purpose, not a shutdown: record it
                    with anyio.CancelScope(shield=True):
                        await stop_thread(store, thread_id)
                raise
            finally:
                self.release(thread_id)

        active.task = self.spawn(body)

    def running(self, thread_id: str) -> bool:
        return thread_id in self._active

    async def stop(self, thread_id: str) -> None:
        """Stop the thread's run (at its next await) and wait until it has ended."""
        active = self._active.get(thread_id)
        if active is None:
            return
        active.stopping = True
        if active.task is not None:
            active.task.cancel()
        with anyio.move_on_after(30, shield=True):
            await active.done.wait()

    async def wait(
        self,
        thread_id: str,
        seconds: float,
        progress: Progress | None,
        *,
        stop_on_cancel: bool = False,
    ) -> None:
        """Wait up to ``seconds`` for the thread's run to end, relaying its progress.

        When the waiting request is cancelled the run goes on (detach), unless
        ``stop_on_cancel``.
        """
        active = self._active.get(thread_id)
        if active is None:
            return
        if progress is not None:
            active.listeners.add(progress)
        try:
            with anyio.move_on_after(seconds):
                await active.done.wait()
        except anyio.get_cancelled_exc_class():
            if stop_on_cancel:
                with anyio.CancelScope(shield=True):
                    await self.stop(thread_id)
            raise
        finally:
            if progress is not None:
                active.listeners.discard(progress)


async def _silent(event: RunEvent) -> None:
    return None


class Threads:
    """Chat, approve, get and list, for one owner at a time."""

    def __init__(
        self,
        store: Store,
        agents: Mapping[str, Agent],
        runs: Runs,
        *,
        max_depth: int = 3,
        max_total_llm_requests: int = 100,
    ) -> None:
        self.store = store
        self.agents = dict(agents)
        self.runs = runs
        self.delegation = Delegation(store, self.agents, max_depth=max_depth)
        self.max_total_llm_requests = max_total_llm_requests
        # Transcripts of recently run threads, so a new turn does not re-read the whole
        # thread; each is checked against the store's revision before it is used.
        self._transcripts: OrderedDict[str, Transcript] = OrderedDict()

    def agent(self, name: str) -> Agent:
        try:
            return self.agents[name]
        except KeyError:
            valid = ", ".join(sorted(self.agents))
            raise NotFound(f"unknown agent {name!r}; valid agents: {valid}") from None

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
    ) -> TurnSummary:
        """Send ``message``; start a thread without ``thread_id``, else continue it.

        ``chain`` is the delegation chain of a caller that is itself an agent (another
        agents-mcp sends it in the request ``_meta``): too deep or a cycle is refused.
        """
        spec = self.agent(agent)
        refused = self.delegation.refusal(chain, spec.name)
        if refused is not None:
            raise Conflict(refused.removeprefix("Error: "))
        if not message.strip():
            raise InvalidRequest("message is empty; send the text the agent should act on")
        if personality is not None and personality not in spec.personalities:
            valid = (
                ", ".join(sorted(spec.personalities)) or "none (this agent has no personalities)"
            )
            raise InvalidRequest(
                f"unknown personality {personality!r} for agent {agent!r}; valid: {valid}"
            )
        if thread_id is None:
            thread = await self.store.create_thread(
                agent=spec.name, owner=owner, first_message=message, personality=personality
            )
            self.runs.claim(thread.id)
            first = StoredMessage(index=0, message=Message(role="user", content=message))
            new = Transcript(
                self.store, thread.id, [first], spec.tool_result_budget, thread.revision
            )
            return await self._run(thread.id, owner, spec, wait, progress, personality, chain, new)
        else:
            thread = await self.store.get_thread(thread_id, owner)
            if thread.parent_id is not None:
                raise InvalidRequest(
                    f"thread {thread_id!r} is a delegation inside thread {thread.parent_id!r};"
                    " continue that thread instead"
                )
            thread = await self._settle_orphan(thread)
            if thread.agent != spec.name:
                raise InvalidRequest(
                    f"thread {thread_id!r} belongs to agent {thread.agent!r}, not {agent!r};"
                    f" call chat_with_agent with agent={thread.agent!r}"
                )
            await self._refuse_if_waiting(thread)
            self.runs.claim(thread.id)
            try:
                await self.store.append_user(
                    thread.id,
                    message,
                    expect=("completed", "failed", "cancelled"),
                    personality=personality,
                )
            except BaseException:
                self.runs.release(thread.id)
                raise
        return await self._run(thread.id, owner, spec, wait, progress, personality, chain)

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
        """Record a decision on a pending call; resume the run once every call is decided.

        The call may belong to the thread or to any of its delegations; the run resumes
        from the top-level thread, which continues its children.
        """
        thread = await self.store.get_thread(thread_id, owner)
        matches: list[Approval] = []
        every: list[Approval] = []
        for t, _ in await self.store.tree(thread.id):
            found = await self.store.approvals(t.id)
            every += found
            matches += [a for a in found if a.call_id == call_id]
        if not matches:
            pending = [a.call_id for a in every if a.status == "pending"]
            hint = f"; pending calls: {', '.join(pending)}" if pending else "; nothing is pending"
            raise NotFound(f"call {call_id!r} not found in thread {thread_id!r}{hint}")
        if len(matches) > 1:  # two delegated agents' models chose the same call id
            where = ", ".join(f"thread_id={a.thread_id!r}" for a in matches)
            raise Conflict(
                f"call {call_id!r} exists in several delegated threads; call approve_call with"
                f" the thread_id of the one you mean: {where}"
            )
        target = matches[0]
        grant = _tool_name(target) if approve and scope == "thread" else None
        await self.store.decide(
            target.thread_id, call_id, approve=approve, reason=reason, grant_tool=grant
        )
        return await self._resume(thread, owner, wait, progress)

    async def get(
        self, *, owner: str, thread_id: str, wait: float = 0.0, progress: Progress | None = None
    ) -> TurnSummary:
        """The thread's current result, waiting up to ``wait`` seconds for a running turn.

        Read-only: it never starts or resumes a run (approve_call does).
        """
        thread = await self.store.get_thread(thread_id, owner)
        root = await self._root(thread, owner)
        if self.runs.running(root.id) and wait > 0:
            await self._wait(root, wait, progress)
        else:
            await self._settle_orphan(root)
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
        pending = {
            t.id: await pending_in_tree(self.store, t)
            for t in threads
            if t.status == "needs_approval"
        }
        return threads, pending, next_cursor

    async def children(self, thread_id: str) -> list[Thread]:
        """The direct child threads (delegations) of a thread."""
        return [t for t, via in await self.store.tree(thread_id) if t.parent_id == thread_id]

    async def transcript(self, *, owner: str, thread_id: str) -> tuple[Thread, list[StoredMessage]]:
        """The thread and every stored message (owner-checked)."""
        thread = await self.store.get_thread(thread_id, owner)
        return thread, await self.store.messages(thread.id)

    async def cancel(self, *, owner: str, thread_id: str) -> TurnSummary:
        """Stop a running thread, or drop the undecided calls of a paused one.

        A delegation's thread is cancelled through its top-level thread, with its
        siblings. Every completed step stays; calls that never ran get a "cancelled"
        result. Cancelling a thread that is neither running nor paused changes nothing.
        """
        thread = await self.store.get_thread(thread_id, owner)
        root = await self._root(thread, owner)
        if self.runs.running(root.id):
            await self.runs.stop(root.id)
        else:
            root = await self._settle_orphan(root)
            if root.status == "running":
                raise Conflict(
                    f"thread {root.id!r} is running in another agents-mcp process on this"
                    " database (agents-mcp chat?); stop it there"
                )
            if root.status == "needs_approval":
                self.runs.claim(root.id)
                try:
                    await stop_thread(self.store, root.id)
                finally:
                    self.runs.release(root.id)
        return await self._summary(thread_id, owner)

    async def recover(self) -> list[str]:
        """Settle what a crash left behind; returns the threads that can resume now."""
        for thread_id in await self.store.recover():
            await self._interrupted(thread_id)
        resumable: list[str] = []
        for thread_id in await self.store.waiting_threads():
            thread = await self.store.thread(thread_id)
            if thread is not None and not await pending_in_tree(self.store, thread):
                resumable.append(thread_id)
        return resumable

    async def _interrupted(self, thread_id: str) -> None:
        """A thread whose process died: ``failed`` (interrupted), unless its last answer
        still has calls that never started (decided approvals): those go back to
        ``needs_approval`` and resume, so a recorded decision is executed exactly once."""
        if open_calls(await self.store.messages(thread_id)):
            await self.store.set_status(thread_id, "needs_approval")
        else:
            await self.store.set_status(
                thread_id,
                "failed",
                error=(
                    "interrupted",
                    "the server stopped during this run; send a message to continue",
                ),
            )

    async def _settle_orphan(self, thread: Thread) -> Thread:
        """A thread left ``running`` by a process that is gone (e.g. an interrupted
        ``agents-mcp chat``) is settled now rather than at the next start."""
        if (
            thread.status != "running"
            or self.runs.running(thread.id)
            or self.store.lease.alive(thread.runner)
        ):
            return thread
        for t, _ in reversed(await self.store.tree(thread.id)):
            if t.status == "running":
                await self.store.fail_interrupted(t.id)
                await self._interrupted(t.id)
        settled = await self.store.thread(thread.id)
        return settled or thread

    async def _root(self, thread: Thread, owner: str) -> Thread:
        if thread.parent_id is None:
            return thread
        return await self.store.get_thread(await self.store.root_of(thread.id), owner)

    async def resume(self, thread_id: str) -> None:
        """Resume a paused thread whose calls are all decided (used after a restart)."""
        thread = await self.store.thread(thread_id)
        if thread is not None:
            await self._resume(thread, thread.owner, 0.0, None)

    # -- internals --------------------------------------------------------------------

    async def _refuse_if_waiting(self, thread: Thread) -> None:
        if self.runs.running(thread.id) or thread.status == "running":
            raise Conflict(
                f"thread {thread.id!r} is running; call get_thread to wait for its result"
            )
        if thread.status == "needs_approval":
            pending = await pending_in_tree(self.store, thread)
            listed = "; ".join(f"{a.call_id} ({_tool_name(a)} {a.arguments})" for a in pending)
            raise Conflict(
                f"thread {thread.id!r} has undecided tool calls: {listed}. Decide each with"
                " approve_call(thread_id, call_id, approve=true|false) before sending a new message"
            )

    async def _resume(
        self, thread: Thread, owner: str, wait: float, progress: Progress | None
    ) -> TurnSummary:
        """Continue a paused tree whose calls are all decided (also after a restart).

        Always from the top-level thread, which continues its delegations.
        """
        asked = thread
        thread = await self._root(thread, owner)
        if self.runs.running(thread.id):
            await self._wait(thread, wait, progress)
            return await self._summary(asked.id, owner)
        self.runs.claim(thread.id)  # before any await: a concurrent resume must see it
        try:
            thread = await self._settle_orphan(await self.store.get_thread(thread.id, owner))
            undecided = await pending_in_tree(self.store, thread)
            if thread.status != "needs_approval" or undecided:
                self.runs.release(thread.id)
                return await self._summary(asked.id, owner)
            spec = self.agent(thread.agent)
            await self.store.set_status(thread.id, "running", expect=("needs_approval",))
        except BaseException:
            self.runs.release(thread.id)
            raise
        await self._run(thread.id, owner, spec, wait, progress, thread.personality)
        return await self._summary(asked.id, owner)

    async def _summary(self, thread_id: str, owner: str) -> TurnSummary:
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

    async def _wait(self, thread: Thread, wait: float, progress: Progress | None) -> None:
        spec = self.agents.get(thread.agent)
        stop = spec is not None and spec.on_cancel == "stop"
        await self.runs.wait(thread.id, wait, progress, stop_on_cancel=stop)

    async def _run(
        self,
        thread_id: str,
        owner: str,
        spec: Agent,
        wait: float,
        progress: Progress | None,
        personality: str | None,
        incoming: tuple[Link, ...] = (),
        new: Transcript | None = None,
    ) -> TurnSummary:
        """Run the claimed thread; ``new``: the transcript of a thread just created."""
        chain = (*incoming, Link(self.delegation.instance, spec.name))
        budget = Budget(self.max_total_llm_requests)
        try:
            if new is not None:
                self._keep(new)
            transcript = new or await self._transcript(thread_id, spec)
            state = RunState(transcript=transcript)
        except BaseException:
            self.runs.release(thread_id)  # claimed by the caller; nothing was started
            raise
        self.runs.launch(
            thread_id,
            lambda p: Run(
                agent=spec,
                thread_id=thread_id,
                store=self.store,
                progress=p,
                personality=personality,
                chain=chain,
                budget=budget,
                delegate=self.delegation,
                state=state,
            ),
            self.store,
        )
        await self.runs.wait(thread_id, wait, progress, stop_on_cancel=spec.on_cancel == "stop")
        return await self._summary(thread_id, owner)


def _tool_name(a: Approval) -> str:
    return f"{a.server}__{a.tool}"
