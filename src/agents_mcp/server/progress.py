"""How a run's events reach a waiting MCP request: readable messages, rate-limited, and a
heartbeat while nothing new happens.

Hosts use ``notifications/progress`` to show what a tool call is doing, and some reset
their request timeout on each one (the TypeScript SDK's ``resetTimeoutOnProgress``);
nobody reads eleven statuses in fifty milliseconds. The MCP specification asks senders
to rate-limit them, so a :class:`ProgressRelay` sends exactly one message per
``interval`` while the request waits: the newest status, or, when no new status came in
that interval, a heartbeat repeating the current one with the time waited so far
(``calling fs__read · still working, 12 s``). The older statuses a newer one replaced
are dropped. So a step that lasts longer than the interval is always reported, at most
one interval late, a client that resets its timeout on progress keeps waiting as long
as the run goes on, and a call answered within the first interval sends none. The
progress value is the time waited, in seconds, so it increases as the specification
requires. The run never waits on a slow client: it only posts, and the request's own
task does the sending. Nothing is sent after the relay closes, so no notification
trails the result.

Progress is bounded for the whole process, not only per request: a message costs the
server and the client about 0.5 ms of CPU together (over HTTP), and 400 requests
waiting at once would otherwise get 400 a second. With more requests waiting
than :data:`RATE` × ``interval``, each one's interval stretches so they share
:data:`RATE` messages a second, never beyond :data:`MAX_INTERVAL`.

``interval == 0`` keeps every message, each sent before the run goes on (no heartbeat).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

from agents_mcp.engine.agent import Progress, RunEvent

log = logging.getLogger("agents_mcp.server.progress")

Send = Callable[[float, str], Awaitable[None]]
"""Sends one notification: a progress value that increases with each one, and the message."""

_TEXT_EVERY = 200  # streamed characters between two "writing" messages
_TEXT_SHOWN = 120  # characters of streamed text in a message

RATE = 100.0
"""Progress messages a second shared by every request waiting in this process."""
MAX_INTERVAL = 10.0
"""The longest a waiting request goes without a message, however many wait: well within
the 60 s after which clients that reset their timeout on progress give up."""


class _Waiting:
    """How many requests wait with a relay in this process."""

    count = 0


def waiting() -> int:
    """How many requests wait with a relay in this process now."""
    return _Waiting.count


def stretched(interval: float, waiting: int) -> float:
    """One request's interval while ``waiting`` requests wait: ``interval``, or longer when
    that many would exceed :data:`RATE` messages a second (at most :data:`MAX_INTERVAL`)."""
    return max(interval, min(waiting / RATE, MAX_INTERVAL))


class Messages:
    """Turns run events into the messages a person reads (streamed text shortened)."""

    def __init__(self) -> None:
        self._streamed = 0
        self._tail = ""

    def __call__(self, event: RunEvent) -> str | None:
        if event.kind != "text":
            self._streamed, self._tail = 0, ""
            return event.text
        before = self._streamed
        self._streamed += len(event.text)
        self._tail = (self._tail + event.text)[-_TEXT_SHOWN:]
        if self._streamed // _TEXT_EVERY == before // _TEXT_EVERY:
            return None
        return "writing: …" + " ".join(self._tail.split())


class ProgressRelay:
    """One request's view of a run: one message per interval, the latest or a heartbeat."""

    def __init__(self, send: Send, interval: float) -> None:
        self._send = send
        self._interval = interval
        self._messages = Messages()
        self._start = anyio.current_time()
        self._step: str | None = None
        """The latest status sent: what a heartbeat repeats (None: none seen yet, as
        when the request joined a run in another process)."""
        self._latest: str | None = None
        self._broken = False

    async def __call__(self, event: RunEvent) -> None:
        """The run's listener: remembers the message and returns at once."""
        message = self._messages(event)
        if message is None or self._broken:
            return
        self._latest = message

    async def pump(self) -> None:
        """Every interval: send the newest status, or a heartbeat when there is none."""
        while not self._broken:
            await anyio.sleep(stretched(self._interval, _Waiting.count))
            waited = anyio.current_time() - self._start
            message, self._latest = self._latest, None
            if message is None:
                message = f"still working, {_seconds(waited)}"
                if self._step is not None:
                    message = f"{self._step} · {message}"
            else:
                self._step = message
            await self._deliver(waited, message)

    async def _deliver(self, waited: float, message: str) -> None:
        try:
            await self._send(waited, message)
        except Exception as exc:  # a gone client must not break the run or the wait
            log.debug("progress notification failed: %s", exc)
            self._broken = True


def _seconds(t: float) -> str:
    return f"{t:.1f} s" if t < 10 else f"{t:.0f} s"


def direct(send: Send) -> Progress:
    """Every message, sent before the run goes on (``interval == 0``)."""
    messages = Messages()
    count = 0

    async def report(event: RunEvent) -> None:
        nonlocal count
        message = messages(event)
        if message is not None:
            count += 1
            await send(count, message)

    return report


@asynccontextmanager
async def relayed(send: Send, interval: float) -> AsyncIterator[Progress]:
    """A listener for the run while the block runs; pending messages die with the block."""
    if interval <= 0:
        yield direct(send)
        return
    relay = ProgressRelay(send, interval)
    # A plain task, not a task group: the block's own exceptions must leave unwrapped.
    pump = asyncio.get_running_loop().create_task(relay.pump())
    _Waiting.count += 1
    try:
        yield relay
    finally:
        _Waiting.count -= 1
        pump.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(pump, return_exceptions=True)
