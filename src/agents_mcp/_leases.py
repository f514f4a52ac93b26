"""Which processes using a database are alive, so recovery never touches a live run.

The MCP server and ``agents-mcp chat`` may share one database. Each process that opens
it holds an exclusive ``flock`` on its own file in ``<db>.runners/`` for as long as it
runs; the kernel drops the lock when the process dies, however it dies. A running
thread records the process running it, and recovery settles only threads whose process
no longer holds its lock.

Without ``fcntl`` (Windows) every other process counts as gone, as if it had crashed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class Lease:
    """This process's claim on a database; ``alive()`` asks about another one."""

    def __init__(self, db_path: str) -> None:
        self.id = "run_" + secrets.token_hex(8)
        self._dir = None if db_path == ":memory:" else Path(db_path + ".runners")
        self._fd: int | None = None
        if self._dir is not None and fcntl is not None:
            self._dir.mkdir(exist_ok=True)
            self._fd = os.open(self._dir / f"{self.id}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def alive(self, runner: str | None) -> bool:
        """Whether the process ``runner`` still holds its lease."""
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

    def release(self) -> None:
        if self._fd is not None and self._dir is not None:
            with contextlib.suppress(OSError):
                (self._dir / f"{self.id}.lock").unlink()
            os.close(self._fd)
            self._fd = None
