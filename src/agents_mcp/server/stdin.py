"""stdin that the server itself can close, so that a signal ends serving over stdio.

fastmcp's ``run_stdio_async`` serves through the SDK's ``stdio_server``, which reads
``sys.stdin`` line by line in a worker thread. A thread blocked in ``read()`` cannot be
cancelled, so cancelling the server would wait for the client's next line. While
:func:`closable_stdin` is open, ``sys.stdin`` is the same input (fd 0) read through a
stream that also watches a pipe of ours: once closed, it reads end-of-file, as if the
client had closed stdin, and the server shuts down the way it does then. POSIX only
(``select`` on pipes, sockets and terminals).
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import sys
from collections.abc import Callable, Iterator


class _ClosableInput(io.RawIOBase):
    """fd 0, except that it reads end-of-file once ``wake`` is readable. It has no
    ``fileno``: the SDK then reads this stream rather than fd 0 itself."""

    def __init__(self, wake: int) -> None:
        self._wake = wake

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        ready, _, _ = select.select([0, self._wake], [], [])
        if self._wake in ready:
            return 0
        return os.readv(0, [buffer])


@contextlib.contextmanager
def closable_stdin() -> Iterator[Callable[[], None]]:
    """While open, ``sys.stdin`` reads fd 0 until the function given is called (from the
    event loop's thread, e.g. on a signal); from then on it reads end-of-file."""
    wake, woken = os.pipe()
    stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(
        io.BufferedReader(_ClosableInput(wake)), encoding="utf-8", errors="replace"
    )
    closed: list[bool] = []

    def close() -> None:
        if not closed:  # once: the pipe stays readable
            closed.append(True)
            os.write(woken, b"x")

    try:
        yield close
    finally:
        sys.stdin = stdin
        os.close(wake)
        os.close(woken)


__all__ = ["closable_stdin"]
