"""Which processes using a database are alive, so recovery never touches a live run.

Every process that opens the store holds a lease named by its runner id; a running
thread records the runner (and the run's claim). Recovery settles only threads whose
runner no longer holds its lease.

* SQLite (:class:`FileLeases`): the MCP server and ``agents-mcp chat`` share one file on
  one machine. Each process holds an exclusive ``flock`` on its own file in
  ``<db>.runners/``; the kernel drops it when the process dies, however it dies, so a
  crash is seen at once. Without ``fcntl`` (Windows) every other process counts as gone.
* PostgreSQL (``postgres.TableLeases``): replicas on several machines renew a row of the
  ``runners`` table; a lease that is not renewed expires.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Protocol

from agents_mcp.errors import StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def new_runner_id() -> str:
    return "run_" + secrets.token_hex(8)


class Leases(Protocol):
    id: str
    """This process's runner id."""

    async def alive(self, runner: str | None) -> bool:
        """Whether the process ``runner`` still holds its lease."""
        ...

    async def close(self) -> None: ...


class FileLeases:
    """This process's flock on a file next to the database; ``alive()`` asks about others."""

    def __init__(self, db_path: str) -> None:
        self.id = new_runner_id()
        self._dir = None if db_path == ":memory:" else Path(db_path + ".runners")
        self._fd: int | None = None
        if self._dir is not None and fcntl is not None:
            try:
                self._dir.mkdir(exist_ok=True)
                self._fd = os.open(self._dir / f"{self.id}.lock", os.O_CREAT | os.O_RDWR, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                raise StoreError(
                    f"cannot write next to the thread database ({self._dir}:"
                    f" {exc.strerror or exc}); make its directory writable or choose another --db"
                ) from exc

    async def alive(self, runner: str | None) -> bool:
        return self.holds(runner)

    def holds(self, runner: str | None) -> bool:
        if runner is None or self._dir is None or fcntl is None:
            return runner == self.id
        if runner == self.id:
            return True
        path = self._dir / f"{runner}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True  # its owner still holds it
        finally:
            os.close(fd)  # closing drops a lock we may have taken
        with contextlib.suppress(OSError):
            path.unlink()
        return False

    async def close(self) -> None:
        if self._fd is not None and self._dir is not None:
            with contextlib.suppress(OSError):
                (self._dir / f"{self.id}.lock").unlink()
            os.close(self._fd)
            self._fd = None
