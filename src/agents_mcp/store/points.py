"""Named points in the store's operations, where a test can pause or fail one.

Every operation of the store has a name (``decide``, ``append``, ``settle`` …) and passes
three points: ``before:<op>`` (nothing done yet), ``commit:<op>`` (all of its writes made,
not yet committed) and ``after:<op>`` (committed). Reads pass ``before`` and ``after``.

Tests use them to drive racing requests deterministically (pause one request at a
point, run another to the end, let the first go on) and to fail an operation as the
database would (a full disk, a lock held too long): ``store.points.set(point, hook)``.

:func:`on_every_store` registers a hook for every store of the process, opened before or
after: a test's server process (``tests/killable_server.py``) uses it to kill itself at
a point, or to note every point it reaches. Nothing here reads the environment. With no
hook set, a point costs one check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Hook = Callable[[str], Awaitable[None]]
"""Called with the point's name when an operation reaches it; may wait or raise."""

_every_store: list[Hook] = []


def on_every_store(hook: Hook) -> Callable[[], None]:
    """Call ``hook`` at every point of every store this process has open or opens later,
    before the store's own hooks; returns the function that removes it."""
    _every_store.append(hook)

    def remove() -> None:
        if hook in _every_store:
            _every_store.remove(hook)

    return remove


class Points:
    """The hooks of one store."""

    def __init__(self) -> None:
        self._hooks: dict[str, Hook] = {}
        self.trace: list[str] | None = None
        """When a list, every point reached is appended to it (tests enumerate them)."""

    def set(self, point: str, hook: Hook) -> None:
        """Call ``hook`` whenever an operation reaches ``point`` (``"*"``: every point)."""
        self._hooks[point] = hook

    def clear(self, point: str | None = None) -> None:
        if point is None:
            self._hooks.clear()
        else:
            self._hooks.pop(point, None)

    @property
    def active(self) -> bool:
        return bool(self._hooks) or self.trace is not None or bool(_every_store)

    async def reach(self, point: str) -> None:
        """An operation is at ``point``."""
        if self.trace is not None:
            self.trace.append(point)
        for every in list(_every_store):
            await every(point)
        hook = self._hooks.get(point) or self._hooks.get("*")
        if hook is not None:
            await hook(point)
