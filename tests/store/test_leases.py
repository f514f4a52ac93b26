"""A replica's lease on PostgreSQL stays renewed however busy the replica is."""

from __future__ import annotations

import anyio
import pytest

from agents_mcp.store import open_store
from agents_mcp.store.database import Tx
from agents_mcp.store.postgres import POOL_SIZE
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio


async def test_a_busy_pool_does_not_hold_up_the_lease(pg_cluster: str) -> None:
    """Every connection of the pool taken by the workload (hundreds of runs wait for one
    on a loaded replica): the heartbeat still renews the lease, on a connection of its
    own, so the others never take a busy replica for a dead one and settle its runs."""
    store = await open_store(await fresh_database(pg_cluster), lease_seconds=10)
    held, all_held, release, renewed = 0, anyio.Event(), anyio.Event(), anyio.Event()

    async def hold(tx: Tx) -> None:
        nonlocal held
        await tx.execute("SELECT 1")
        held += 1
        if held == POOL_SIZE:
            all_held.set()
        await release.wait()

    async def after_renewal(point: str) -> None:
        renewed.set()

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(POOL_SIZE):
                tg.start_soon(store.db.transaction, "hold", hold)
            with anyio.fail_after(30):
                await all_held.wait()
            store.points.set("after:lease", after_renewal)
            # The heartbeat renews every third of the lease; before it expires, then:
            with anyio.fail_after(10):
                await renewed.wait()
            release.set()
    finally:
        release.set()
        await store.close()
