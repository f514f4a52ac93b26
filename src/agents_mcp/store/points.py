"""Named points in the store's operations, where a test can pause or fail one.

Every operation of the store has a name (``decide``, ``append``, ``settle`` …) and passes
three points: ``before:<op>`` (nothing done yet), ``commit:<op>`` (all of its writes made,
not yet committed) and ``after:<op>`` (committed). Reads pass ``before`` and ``after``.

Tests use them to drive racing requests deterministically (pause one request at a
point, run another to the end, let the first go on) and to fail an operation as the
database would (a full disk, a lock held too long). A real process can be made to kill
itself at a point: ``AGENTS_MCP_KILL_AT=commit:decide`` (or ``…#3`` for the third time it
gets there) sends it SIGKILL, for the crash tests; ``AGENTS_MCP_TRACE=<file>`` appends
every point it reaches to that file, so the tests know the points there are. With no hook
set, a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable

Hook = Callable[[str], Awaitable[None]]
"""Called with the point's name when an operation reaches it; may wait or raise."""

KILL_ENV = "AGENTS_MCP_KILL_AT"
TRACE_ENV = "AGENTS_MCP_TRACE"


class Points:
    """The hooks of one store."""

    def __init__(self) -> None:
        self._hooks: dict[str, Hook] = {}
        self._threaded: set[str] = set()
        self.trace: list[str] | None = None
        """When a list, every point reached is appended to it (tests enumerate them)."""
        self._kill_at, self._kill_count = _kill_target(os.environ.get(KILL_ENV))
        self._trace_file = os.environ.get(TRACE_ENV) or None

    def set(self, point: str, hook: Hook) -> None:
        """Call ``hook`` whenever an operation reaches ``point`` (``"*"``: every point)."""
        self._hooks[point] = hook

    def clear(self, point: str | None = None) -> None:
        if point is None:
            self._hooks.clear()
            self._threaded.clear()
        else:
            self._hooks.pop(point, None)

    def on_thread(self, op: str, forced: bool = True) -> None:
        """Make operation ``op`` (``"*"``: every one) run on the database thread (SQLite),
        as when the database is busy."""
        if forced:
            self._threaded.add(op)
        else:
            self._threaded.discard(op)

    def threaded(self, op: str) -> bool:
        return bool(self._threaded) and (op in self._threaded or "*" in self._threaded)

    @property
    def active(self) -> bool:
        return (
            bool(self._hooks)
            or self.trace is not None
            or self._kill_at is not None
            or self._trace_file is not None
        )

    async def reach(self, point: str) -> None:
        """An operation is at ``point``."""
        if self.trace is not None:
            self.trace.append(point)
        if self._trace_file is not None:
            _append_line(self._trace_file, point)
        if self._kill_at == point:
            self._kill_count -= 1
            if self._kill_count <= 0:
                os.kill(os.getpid(), signal.SIGKILL)
        hook = self._hooks.get(point) or self._hooks.get("*")
        if hook is not None:
            await hook(point)


def _kill_target(value: str | None) -> tuple[str | None, int]:
    if not value:
        return None, 0
    point, _, nth = value.partition("#")
    return point, int(nth) if nth else 1


def _append_line(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
