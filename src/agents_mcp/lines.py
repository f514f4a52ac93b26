"""Newline-delimited JSON-RPC as both ends of our stdio pipes read it (our own server's
stdin, a downstream server's stdout): bytes cut into lines as they arrive, and what was
read kept for its one reader, with reading paused while too much waits unread."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, Protocol, TypeVar

import anyio

T = TypeVar("T")

HIGH_WATER = 64
"""Items waiting unread before reading is paused; it resumes below half of it."""


class Splitter:
    """Bytes as they arrive, cut into whole lines (without their newline)."""

    def __init__(self) -> None:
        self._partial: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        """The lines ``data`` completes, blank ones included."""
        *complete, rest = data.split(b"\n")
        if complete:  # a line may have come in many reads: join it only once
            complete[0] = b"".join([*self._partial, complete[0]])
            self._partial = []
        if rest:
            self._partial.append(rest)
        return complete

    def rest(self) -> bytes:
        """What came after the last newline; forgotten here."""
        rest, self._partial = b"".join(self._partial), []
        return rest


class Reading(Protocol):
    """Where the items come from: an asyncio read transport, a child process's stdout."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class Backlog(Generic[T]):
    """Items for one reader, in order. Reading :attr:`source` pauses once
    :data:`HIGH_WATER` wait unread and resumes once fewer than half do; after :meth:`end`,
    what is still waiting is taken, then :meth:`take` raises ``anyio.EndOfStream``."""

    def __init__(self) -> None:
        self.source: Reading | None = None
        """Set once known (a transport is made after its protocol)."""
        self._items: deque[T] = deque()
        self._paused = False
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: T) -> None:
        """Keep ``item`` for the reader (nothing is kept after :meth:`end`)."""
        if self._ended:
            return
        self._items.append(item)
        self._wake()
        if len(self._items) >= HIGH_WATER and not self._paused:
            self._paused = True
            if self.source is not None:
                self.source.pause_reading()

    def end(self) -> None:
        self._ended = True
        self._wake()

    async def take(self) -> T:
        while not self._items:
            if self._ended:
                raise anyio.EndOfStream
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if self._paused and not self._ended and len(self._items) < HIGH_WATER // 2:
            self._paused = False
            if self.source is not None:
                self.source.resume_reading()
        return item

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


__all__ = ["HIGH_WATER", "Backlog", "Reading", "Splitter"]
