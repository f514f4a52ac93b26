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
import concurrent.futures
import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import anyio

from agents_mcp.errors import StoreError
from agents_mcp.store.database import Database
from agents_mcp.store.records import now

log = logging.getLogger("agents_mcp.store.leases")

CLOSE_SECONDS = 10.0
"""How long closing waits for the renewal thread to remove the lease and end."""

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

    ``renewals`` opens the database the renewals run on (PostgreSQL: a connection of
    their own), in a thread of their own with its own event loop: neither the workload's
    transactions queuing for the pool's connections nor work that holds up the event loop
    (imports on first use, a large result encoded, a loaded host) delays a renewal, so a
    busy replica is never taken for a dead one. Without it (SQLite without ``flock``),
    the renewals are a task on ``db``.
    """

    def __init__(
        self,
        db: Database,
        seconds: float,
        *,
        renewals: Callable[[], Awaitable[Database]] | None = None,
    ) -> None:
        self.id = new_runner_id()
        self._db = db
        self._seconds = seconds
        self._renewals = renewals
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stop: Callable[[], None] | None = None
        self._closing = threading.Event()
        self.on_lost: Callable[[], None] | None = None
        """Called when this process finds its own lease expired: the others may have
        settled its threads, so its runs must stop (their writes are refused anyway)."""

    async def start(self) -> None:
        if self._renewals is None:
            await self._renew(self._db)
            self._task = asyncio.get_running_loop().create_task(
                self._heartbeat(self._db, self._lost)
            )
            return
        main = asyncio.get_running_loop()
        started: concurrent.futures.Future[None] = concurrent.futures.Future()

        def lost() -> None:
            with contextlib.suppress(RuntimeError):  # the event loop has ended
                main.call_soon_threadsafe(self._lost)

        renewing = self._renewing(self._renewals, started, lost)
        self._thread = threading.Thread(
            target=asyncio.run, args=(renewing,), name=f"lease {self.id}", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(started)

    async def _renewing(
        self,
        open_db: Callable[[], Awaitable[Database]],
        started: concurrent.futures.Future[None],
        lost: Callable[[], None],
    ) -> None:
        """The renewal thread: its database, the first renewal (what ``start`` waits
        for), then one every third of the lease until ``close``; then the lease is gone."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop_soon() -> None:
            loop.call_soon_threadsafe(stop.set)

        self._stop = stop_soon
        if self._closing.is_set():
            stop.set()
        try:
            db = await open_db()
        except BaseException as exc:
            started.set_exception(exc)
            return
        try:
            try:
                await self._renew(db)
            except BaseException as exc:
                started.set_exception(exc)
                return
            started.set_result(None)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat, db, lost)
                await stop.wait()
                tg.cancel_scope.cancel()
            await self._remove(db)
        finally:
            await db.close()

    async def _renew(self, db: Database) -> bool:
        """Renew the lease; False when it had expired (others may have taken over)."""
        epoch = db.dialect.epoch

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

        live: bool = await db.transaction("lease", body)
        return live

    async def _heartbeat(self, db: Database, lost: Callable[[], None]) -> None:
        while True:
            await anyio.sleep(self._seconds / 3)
            try:
                live = await self._renew(db)
            except StoreError as exc:
                log.warning("could not renew this process's lease: %s", exc)
                continue
            if not live:
                log.error(
                    "this process's lease expired before it was renewed (stalled for over"
                    " %g s?): other processes may have settled its threads; stopping its runs",
                    self._seconds,
                )
                lost()

    def _lost(self) -> None:
        if self.on_lost is not None:
            self.on_lost()

    async def alive(self, runner: str | None) -> bool:
        if runner is None:
            return False
        if runner == self.id:
            return True
        epoch = self._db.dialect.epoch
        rows = await self._db.query(
            "alive", f"SELECT 1 AS live FROM runners WHERE id=? AND expires_at > {epoch}", (runner,)
        )
        return bool(rows)

    async def close(self) -> None:
        """Stop renewing and remove the lease (gone at once, rather than on expiry)."""
        if self._thread is not None:
            self._closing.set()
            if self._stop is not None:
                with contextlib.suppress(RuntimeError):  # its event loop has ended
                    self._stop()
            await anyio.to_thread.run_sync(self._thread.join, CLOSE_SECONDS)
            return
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._remove(self._db)

    async def _remove(self, db: Database) -> None:
        async def body(tx: Any) -> None:
            await tx.execute("DELETE FROM runners WHERE id=?", (self.id,))

        with contextlib.suppress(StoreError):
            await db.transaction("lease", body)
