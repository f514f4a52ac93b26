"""The runs in flight in this process: at most one per top-level thread.

The database says who holds a thread (its claim); this registry is how this process
reaches the runs it holds: to relay their progress, to wait for them, to stop them.

Runs are asyncio tasks rather than children of an anyio task group: they outlive the
request that started them, and FastMCP closes its lifespan under a shielded cancel scope
that a task group opened inside the lifespan could not exit from. A run ends its claim
whatever happens to its task: it records its own end; a stop (``cancel_run``) or a
shutdown cancels the run's own cancel scope, never the task, so the task always gets to
record what happened (``cancelled``, or interrupted at shutdown). A task cancelled
before it ever ran still leaves the registry (a done callback), and its thread, claimed
by a run that no longer exists here, is an orphan that is settled when next touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from agents_mcp.downstream.oauth import acting_for
from agents_mcp.engine.agent import Progress, Run, RunEvent
from agents_mcp.engine.loop import run
from agents_mcp.errors import (
    LostClaim,
    StopRequested,
    StoreError,
    internal_error,
    store_failure,
)
from agents_mcp.store import Claim, Settled, Store

log = logging.getLogger("agents_mcp.threads.runs")

SETTLE_SECONDS = 10.0
"""How long a run that ends abnormally may take to record it."""
CLOSE_SECONDS = 10.0
"""How long shutting down waits for runs to record that they were interrupted."""

Ended = Literal["done", "stopped", "interrupted", "lost"]
Why = tuple[str, str] | None
"""Why a run ended early when it was not the server stopping: (error type, message)."""
OnSettled = Callable[[Settled], Awaitable[None]]


@dataclass(eq=False)
class _Active:
    claim: Claim
    done: anyio.Event = field(default_factory=anyio.Event)
    listeners: set[Progress] = field(default_factory=set[Progress])
    scope: anyio.CancelScope | None = None
    stopping: bool = False
    nudged: anyio.Event = field(default_factory=anyio.Event)
    """Set (and replaced) when something a waiting request may answer with happened."""

    def nudge(self) -> None:
        self.nudged.set()
        self.nudged = anyio.Event()


class Runs:
    """This process's runs, by top-level thread id."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._active: dict[str, _Active] = {}
        """The newest run of each thread here."""
        self._runs: set[_Active] = set()
        """Every run still ending here: a run that has just ended its claim (its last
        write committed) may still be finishing when a new run of the thread starts."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._reserved: set[str] = set()
        """Claims a write in flight may be taking, for runs not launched yet."""
        self._closing = False

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """Run ``fn`` in the background until it ends or ``aclose()``."""
        task = asyncio.get_running_loop().create_task(fn())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def running(self, thread_id: str) -> bool:
        return thread_id in self._active

    def running_count(self) -> int:
        return len(self._active)

    def holds(self, claim: str | None) -> bool:
        """Whether a live run of this process holds ``claim`` (or is about to)."""
        if claim is None:
            return False
        return claim in self._reserved or any(a.claim.token == claim for a in self._runs)

    @contextlib.contextmanager
    def reserving(self, claim: Claim | None) -> Iterator[None]:
        """While a write that may claim a thread with ``claim`` is in flight and until its
        run is launched, the claim counts as held here: nobody may settle the thread as an
        orphan in between (on PostgreSQL, the commit and the launch are awaits apart).
        Shielded: once the write commits, its run must start, so nothing may cancel the
        request in between (the thread would be claimed by no run)."""
        with anyio.CancelScope(shield=True):
            if claim is None:
                yield
                return
            self._reserved.add(claim.token)
            try:
                yield
            finally:
                self._reserved.discard(claim.token)

    def claim_of(self, thread_id: str) -> Claim | None:
        active = self._active.get(thread_id)
        return None if active is None else active.claim

    def launch(
        self,
        thread_id: str,
        claim: Claim,
        make: Callable[[Progress, Callable[[], bool]], Awaitable[Run]],
        on_settled: OnSettled,
    ) -> None:
        """Start the run of a thread this process has just claimed with ``claim``.

        ``make(progress, reads_text)`` builds the run: ``progress`` reaches every listener
        of the moment, and ``reads_text()`` says whether one of them shows streamed text.
        """
        active = self._active[thread_id] = _Active(claim)
        self._runs.add(active)

        async def progress(event: RunEvent) -> None:
            for listener in list(active.listeners):
                try:
                    await listener(event)
                except Exception as exc:  # a gone client must not break the run
                    log.debug("progress listener failed: %s", exc)
                    active.listeners.discard(listener)

        def reads_text() -> bool:
            return any(getattr(listener, "shows_text", False) for listener in active.listeners)

        async def build(progress: Progress) -> Run:
            return await make(progress, reads_text)

        async def body() -> None:
            try:
                ended, why = await self._drive(active, build, progress)
                if ended in ("stopped", "interrupted"):
                    with anyio.CancelScope(shield=True), anyio.move_on_after(SETTLE_SECONDS):
                        await self._settle(thread_id, claim, ended == "stopped", why, on_settled)
            finally:
                self._release(thread_id, active)

        task = self.spawn(body)
        task.add_done_callback(lambda _: self._release(thread_id, active))

    async def _drive(
        self, active: _Active, make: Callable[[Progress], Awaitable[Run]], progress: Progress
    ) -> tuple[Ended, Why]:
        try:
            with anyio.CancelScope() as scope:
                active.scope = scope
                if active.stopping or self._closing:  # stopped before its first step
                    scope.cancel()
                    await anyio.lowlevel.checkpoint()  # ends here: nothing runs inline first
                r = await make(progress)
                with acting_for(r.owner):  # its downstream requests carry the owner's tokens
                    await run(r)
                return "done", None
            return ("stopped" if active.stopping else "interrupted"), None
        except StopRequested:
            return "stopped", None
        except LostClaim as exc:
            log.info("run ended: %s", exc)
            return "lost", None
        except StoreError as exc:  # record it if the database lets us
            return "interrupted", ("store_error", store_failure(exc, "run stopped"))
        except Exception as exc:  # a bug outside the steps
            return "interrupted", ("internal_error", str(internal_error(exc, "a run")))

    async def _settle(
        self, thread_id: str, claim: Claim, stop: bool, why: Why, on: OnSettled
    ) -> None:
        try:
            settled = await self.store.settle(thread_id, claim=claim.token, cancel=stop, error=why)
        except StoreError as exc:  # left for recovery: an orphan once this run is gone
            log.error("could not record the end of thread %s: %s", thread_id, exc)
            return
        if settled is not None:
            await on(settled)

    def _release(self, thread_id: str, active: _Active) -> None:
        if self._active.get(thread_id) is active:
            del self._active[thread_id]
        self._runs.discard(active)
        active.done.set()
        active.nudge()

    def nudge(self, thread_id: str) -> None:
        """Something happened that requests waiting on the thread's run here may answer
        with (a question was asked or answered): they look again (``wait``'s ``until``)."""
        active = self._active.get(thread_id)
        if active is not None:
            active.nudge()

    async def stop(self, thread_id: str, wait: float) -> None:
        """Stop the thread's run here: durably requested first (so a crash cannot let
        it go on after a restart), then its cancel scope; wait up to ``wait`` for it."""
        active = self._active.get(thread_id)
        if active is None:
            return
        if not active.stopping:
            active.stopping = True
            try:  # written down first, and whatever happens to this request
                with anyio.CancelScope(shield=True):
                    await self.store.request_stop(thread_id, active.claim.token)
            except StoreError as exc:  # stopped all the same; the run records it if it can
                log.error("could not record the stop of thread %s: %s", thread_id, exc)
            finally:
                if active.scope is not None:
                    active.scope.cancel()
        with anyio.move_on_after(wait):
            await active.done.wait()

    async def wait(
        self,
        thread_id: str,
        seconds: float,
        progress: Progress | None,
        *,
        stop_on_cancel: bool = False,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Wait up to ``seconds`` for the thread's run to end, relaying its progress, or
        until ``until()`` is true (looked at again whenever the run is nudged).

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
                while True:
                    nudged = active.nudged
                    if active.done.is_set() or (until is not None and until()):
                        break
                    await nudged.wait()
        except anyio.get_cancelled_exc_class():
            if stop_on_cancel:
                with anyio.CancelScope(shield=True):
                    await self.stop(thread_id, SETTLE_SECONDS)
            raise
        finally:
            if progress is not None:
                active.listeners.discard(progress)

    def interrupt_all(self) -> None:
        """Stop every run here at its next await (this process lost its lease): each ends
        as interrupted, and writes nothing the claims it lost would refuse anyway."""
        for active in list(self._runs):
            if active.scope is not None:
                active.scope.cancel()

    async def aclose(self) -> None:
        """Shut down: every run records that it was interrupted, then the tasks end."""
        self._closing = True
        self.interrupt_all()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(CLOSE_SECONDS):
                for active in list(self._runs):
                    await active.done.wait()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            with anyio.move_on_after(CLOSE_SECONDS):
                await asyncio.gather(*tasks, return_exceptions=True)
