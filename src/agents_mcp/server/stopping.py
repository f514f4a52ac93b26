"""Ctrl-C and SIGTERM while serving over HTTP, from the first moment to the last.

uvicorn handles these signals only while its server runs, and asyncio's runner before
that: a Ctrl-C while the database was being opened cancelled whatever was in flight, and
a start cancelled in uvicorn's lifespan printed a ``CancelledError`` traceback. Here one
handler owns them throughout (on POSIX):

- the first asks it to stop: what is in progress completes (nothing is cut off midway:
  a database being opened, a migration), then it stops: before listening, if it was
  still being prepared (the database checked, the app built); else uvicorn shuts down
  gracefully, after it finished starting if it was;
- the second forces it: no waiting for open connections, nor for a start or a
  preparation still in progress.

The server says it is listening (``on_listening``) once its socket accepts connections,
and not at all when it was asked to stop before then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator
from socket import socket
from types import FrameType
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:  # imported when serving over HTTP: stdio needs none of it
    import uvicorn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""End serving: Ctrl-C, and what clients and service managers send a server to stop it."""


class Stops:
    """The stop signals one ``serve`` received, and what each did."""

    def __init__(self, *, owned: bool) -> None:
        self.owned = owned
        """Whether our handler receives the signals (else uvicorn's own does)."""
        self.received: list[int] = []
        self._preparing: anyio.CancelScope | None = None
        self._server: uvicorn.Server | None = None
        self._serving: anyio.CancelScope | None = None

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C (SIGINT) was among them."""
        return signal.SIGINT in self.received

    def signalled(self, signum: int) -> None:
        self.received.append(signum)
        server = self._server
        if server is None:
            if len(self.received) > 1 and self._preparing is not None:
                self._preparing.cancel()
            return
        if len(self.received) == 1:
            server.should_exit = True
            return
        server.force_exit = True
        if not server.started and self._serving is not None:
            # Its lifespan, cut short, would only report that we cut it short.
            logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
            self._serving.cancel()

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """Around what comes before uvicorn runs: a second signal cancels it (after
        the first, the caller stops once it is done)."""
        with anyio.CancelScope() as scope:
            self._preparing = scope
            if len(self.received) > 1:
                scope.cancel()
            try:
                yield
            finally:
                self._preparing = None

    async def serve(self, config: uvicorn.Config, on_listening: Callable[[], None]) -> None:
        """Run uvicorn with ``config`` until a stop signal (none yet: it returns at once)."""
        if self.received:
            return
        import uvicorn

        stops = self

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                if stops.owned:
                    yield
                else:
                    with super().capture_signals():
                        yield

            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                stops.received.append(sig)  # where uvicorn's handler is the one called
                super().handle_exit(sig, frame)

            async def startup(self, sockets: list[socket] | None = None) -> None:
                await super().startup(sockets)
                if self.started and not self.should_exit:
                    on_listening()

        self._server = Server(config)
        with anyio.CancelScope() as self._serving:
            await self._server.serve()


def hold_stop_signals() -> None:
    """Hold SIGINT and SIGTERM back until ``serve`` has its handlers in place
    (:func:`release_stop_signals`): a Ctrl-C while the event loop is being created, before
    any handler of ours exists, would interrupt that half-way (and print a traceback)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_stop_signals() -> None:
    """Deliver the stop signals again (one that came while held arrives now)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def stop_signals() -> Iterator[Stops]:
    """Receive SIGINT and SIGTERM in :class:`Stops` while the block runs (on POSIX;
    elsewhere uvicorn's handler, as Python's ``KeyboardInterrupt`` before it runs)."""
    if os.name != "posix":
        release_stop_signals()
        yield Stops(owned=False)
        return
    stops = Stops(owned=True)
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stops.signalled, signum)
    release_stop_signals()
    try:
        yield stops
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
