"""A replica's lease on PostgreSQL stays renewed however busy the replica is."""

from __future__ import annotations

import threading

import anyio
import pytest

from agents_mcp.store import open_store
from agents_mcp.store.database import Tx
from agents_mcp.store.points import on_every_store
from agents_mcp.store.postgres import POOL_SIZE
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio


async def test_a_busy_replica_keeps_its_lease(pg_cluster: str) -> None:
    """Every connection of the pool taken by the workload (hundreds of runs wait for one
    on a loaded replica), and then the event loop itself held up (as by work that does
    not await, on a starved host): the lease is still renewed, in its own thread on its
    own connection, so the others never take a busy replica for a dead one."""
    url = await fresh_database(pg_cluster)
    store = await open_store(url, lease_seconds=10)
    held, all_held, release = 0, anyio.Event(), anyio.Event()
    renewed = threading.Event()

    async def hold(tx: Tx) -> None:
        nonlocal held
        await tx.execute("SELECT 1")
        held += 1
        if held == POOL_SIZE:
            all_held.set()
        await release.wait()

    async def renewal(point: str) -> None:  # called in the lease's thread
        if point == "after:lease":
            renewed.set()

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(POOL_SIZE):
                tg.start_soon(store.db.transaction, "hold", hold)
            with anyio.fail_after(30):
                await all_held.wait()
            stop_watching = on_every_store(renewal)
            try:
                # Blocks this event loop, the store's, until a renewal: every third of
                # the lease, so well before it would expire.
                assert renewed.wait(timeout=10)
            finally:
                stop_watching()
            release.set()
        other = await open_store(url, lease_seconds=10)
        try:
            assert await other.alive(store.runner)
        finally:
            await other.close()
    finally:
        release.set()
        await store.close()
    after = await open_store(url, lease_seconds=10)
    try:
        assert not await after.alive(store.runner)  # closing removed the lease at once
    finally:
        await after.close()
