"""How a run's events reach a waiting MCP request: readable messages, rate-limited.

Hosts use ``notifications/progress`` to show what a tool call is doing and to reset
their idle timers; nobody reads eleven statuses in fifty milliseconds. The MCP
specification asks senders to rate-limit them, so a :class:`ProgressRelay` sends at
most one message per ``interval``: the newest status, once an interval has passed since
the previous message (or since the request began); the older ones it replaced are
dropped. A step that lasts longer than the interval is therefore always reported, at
most one interval late, and a call answered within the first interval sends none. The
run never waits on a slow client: it only posts, and the request's own task does the
sending. Nothing is sent after the relay closes, so no notification trails the result.

``interval == 0`` keeps every message, each sent before the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

from agents_mcp.loop import Progress, RunEvent

log = logging.getLogger("agents_mcp.progress")

Send = Callable[[int, str], Awaitable[None]]
"""Sends one notification: a count that increases with each one, and the message."""

_TEXT_EVERY = 200  # streamed characters between two "writing" messages
_TEXT_SHOWN = 120  # characters of streamed text in a message


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
    """One request's view of a run: the latest message, sent at most once per interval."""

    def __init__(self, send: Send, interval: float) -> None:
        self._send = send
        self._interval = interval
        self._messages = Messages()
        self._count = 0
        self._latest: str | None = None
        self._posted = anyio.Event()
        self._broken = False

    async def __call__(self, event: RunEvent) -> None:
        """The run's listener: remembers the message and returns at once."""
        message = self._messages(event)
        if message is None or self._broken:
            return
        self._latest = message
        self._posted.set()

    async def pump(self) -> None:
        """Send the latest message whenever there is one and the interval allows."""
        last = anyio.current_time()
        while not self._broken:
            await self._posted.wait()
            if (delay := last + self._interval - anyio.current_time()) > 0:
                await anyio.sleep(delay)
            self._posted = anyio.Event()
            message, self._latest = self._latest, None
            if message is None:
                continue
            last = anyio.current_time()
            await self._deliver(message)

    async def _deliver(self, message: str) -> None:
        self._count += 1
        try:
            await self._send(self._count, message)
        except Exception as exc:  # a gone client must not break the run or the wait
            log.debug("progress notification failed: %s", exc)
            self._broken = True


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
    try:
        yield relay
    finally:
        pump.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(pump, return_exceptions=True)
