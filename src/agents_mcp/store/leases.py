"""Which processes using a database are alive, so recovery never touches a live run.

Every process that opens the store holds a lease named by its runner id; a running
thread records the runner (and the run's claim). Recovery settles only threads whose
runner no longer holds its lease.

* SQLite (:class:`FileLeases`): the MCP server and ``agents-mcp chat`` share one file on
  one machine. Each process holds an exclusive ``flock`` on its own file in
  ``<db>.runners/``; the kernel drops it when the process dies, however it dies, so a
  crash is seen at once. Without ``fcntl`` (Windows) every other process counts as gone.
* PostgreSQL, and SQLite where there is no ``flock`` (Windows) (:class:`TableLeases`):
  each process renews a row of the ``runners`` table; a lease that is not renewed
  expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import anyio

from agents_mcp.errors import StoreError
from agents_mcp.store.database import Database
from agents_mcp.store.records import now

log = logging.getLogger("agents_mcp.store.leases")

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def has_flock() -> bool:
    """Whether processes can hold file locks here (not on Windows)."""
    return fcntl is not None


def new_runner_id() -> str:
    return "run_" + secrets.token_hex(8)


class Leases(Protocol):
    id: str
    """This process's runner id."""
    on_lost: Callable[[], None] | None
    """Called if this process finds its own lease gone (the others may have settled its
    threads): its runs must stop."""

    async def alive(self, runner: str | None) -> bool:
        """Whether the process ``runner`` still holds its lease."""
        ...

    async def close(self) -> None: ...


class FileLeases:
    """This process's flock on a file next to the database; ``alive()`` asks about others."""

    def __init__(self, db_path: str) -> None:
        self.id = new_runner_id()
        self.on_lost: Callable[[], None] | None = None  # a lock the kernel holds is never lost
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


class TableLeases:
    """This replica's row in ``runners``, renewed in the background; others' rows expire.

    ``renew_on``: the database the renewals run on, when not ``db``: a connection of their
    own (PostgreSQL), so that a renewal never queues behind the workload's transactions
    for one of the pool's connections; a busy replica is still alive. Closed with the
    lease.
    """

    def __init__(self, db: Database, seconds: float, *, renew_on: Database | None = None) -> None:
        self.id = new_runner_id()
        self._db = db
        self._renew_on = renew_on
        self._seconds = seconds
        self._task: asyncio.Task[None] | None = None
        self.on_lost: Callable[[], None] | None = None
        """Called when this process finds its own lease expired: the others may have
        settled its threads, so its runs must stop (their writes are refused anyway)."""

    async def start(self) -> None:
        await self._renew()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _renew(self) -> bool:
        """Renew the lease; False when it had expired (others may have taken over)."""
        epoch = self._db.dialect.epoch

        async def body(tx: Any) -> bool:
            row = await tx.fetchrow(
                f"SELECT expires_at > {epoch} AS live FROM runners WHERE id=?", (self.id,)
            )
            if row is None:
                await tx.execute(
                    "INSERT INTO runners (id, host, pid, started_at, expires_at)"
                    f" VALUES (?, ?, ?, ?, {epoch} + ?)",
                    (self.id, socket.gethostname(), os.getpid(), now(), self._seconds),
                )
            else:
                await tx.execute(
                    f"UPDATE runners SET expires_at = {epoch} + ? WHERE id=?",
                    (self._seconds, self.id),
                )
            # Leases long gone tell nobody anything any more.
            await tx.execute(f"DELETE FROM runners WHERE expires_at < {epoch} - 3600")
            return row is None or bool(row["live"])

        live: bool = await (self._renew_on or self._db).transaction("lease", body)
        return live

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self._seconds / 3)
            try:
                live = await self._renew()
            except StoreError as exc:
                log.warning("could not renew this process's lease: %s", exc)
                continue
            if not live and self.on_lost is not None:
                log.error(
                    "this process's lease expired before it was renewed (stalled for over"
                    " %g s?): other processes may have settled its threads; stopping its runs",
                    self._seconds,
                )
                self.on_lost()

    async def alive(self, runner: str | None) -> bool:
        if runner is None:
            return False
        if runner == self.id:
            return True
        epoch = self._db.dialect.epoch

        async def body(tx: Any) -> bool:
            row = await tx.fetchrow(
                f"SELECT 1 AS live FROM runners WHERE id=? AND expires_at > {epoch}", (runner,)
            )
            return row is not None

        live: bool = await self._db.read("alive", body)
        return live

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

        async def body(tx: Any) -> None:
            await tx.execute("DELETE FROM runners WHERE id=?", (self.id,))

        try:
            with contextlib.suppress(StoreError):  # gone at once, rather than on expiry
                await (self._renew_on or self._db).transaction("lease", body)
        finally:
            if self._renew_on is not None:
                await self._renew_on.close()
