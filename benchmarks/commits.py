"""What a durable commit costs the store: writes per second on SQLite, by durability.

``python -m benchmarks.commits [--dir DIR] [--writers 1,50,400] [--seconds 4]`` opens a
fresh store in ``DIR`` for each durability (``full``, the default, and
``may-lose-last-commits``) and each number of concurrent writers; each writer holds a
thread of its own and appends one message to it (the write a run makes at each step:
one transaction) as fast as the store lets it. It prints one JSON line per case: writes
per second, writes per commit (the writes that shared one), and the disk's own syncs per
second measured right after in the same directory (``benchmarks.fsync``): the limit of
one commit at a time when durable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.fsync import rate

if TYPE_CHECKING:
    from agents_mcp.store.sqlite import Durability


async def writes_per_second(
    path: str, writers: int, durability: Durability, seconds: float
) -> tuple[float, float]:
    """Writes per second, and writes per commit."""
    from agents_mcp.messages import Message
    from agents_mcp.store import Claim, open_store
    from agents_mcp.store.sqlite import SQLiteDatabase

    store = await open_store(path, sqlite_durability=durability)
    try:
        held = []
        for _ in range(writers):
            claim = Claim.new(store.runner)
            thread = await store.create_thread(
                agent="a", owner="o", first_message="hi", claim=claim
            )
            held.append((thread.id, claim))
        assert isinstance(store.db, SQLiteDatabase)
        commits = store.db.commits
        count = 0
        stop = time.perf_counter() + seconds

        async def write(thread_id: str, claim: Claim) -> None:
            nonlocal count
            message = Message(role="assistant", content="x" * 200)
            while time.perf_counter() < stop:
                await store.append(thread_id, claim, message)
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(write(t, c) for t, c in held))
        elapsed = time.perf_counter() - start
        return count / elapsed, count / max(1, store.db.commits - commits)
    finally:
        await store.close()


def main() -> None:
    import platformdirs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(platformdirs.user_data_dir("agents-mcp")))
    parser.add_argument("--writers", default="1,50,400")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    for writers in [int(w) for w in args.writers.split(",")]:
        durabilities: tuple[Durability, ...] = ("full", "may-lose-last-commits")
        for durability in durabilities:
            with tempfile.TemporaryDirectory(dir=args.dir, prefix="commits-") as tmp:
                path = os.path.join(tmp, "threads.db")
                ops, shared = asyncio.run(
                    writes_per_second(path, writers, durability, args.seconds)
                )
            syncs = rate(args.dir, os.fdatasync, 2.0)
            out = {
                "writers": writers,
                "durability": durability,
                "writes_per_s": round(ops),
                "writes_per_commit": round(shared, 1),
                "disk_fdatasync_per_s": round(syncs),
            }
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
