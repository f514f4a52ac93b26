"""How many durable commits a disk allows: its own fsyncs per second.

``python -m benchmarks.fsync [--dir DIR] [--seconds 3]`` appends 4 KiB to a file in
``DIR`` (default: the user data directory, where the thread database lives) and syncs it,
in a loop, the way SQLite in WAL mode syncs its log at each commit with
``synchronous=FULL``; it prints the syncs per second, with ``fdatasync`` (what SQLite
uses on Linux) and ``fsync``. A store whose commits wait for the disk cannot commit one at
a time faster than this; concurrent operations sharing one commit can.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def rate(directory: Path, sync: Callable[[int], None], seconds: float) -> float:
    """Syncs per second of 4 KiB appends to a fresh file in ``directory``."""
    block = os.urandom(4096)
    with tempfile.NamedTemporaryFile(dir=directory, prefix="fsync-", delete=True) as f:
        fd = f.fileno()
        count = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            os.write(fd, block)
            sync(fd)
            count += 1
    return count / elapsed


def main() -> None:
    import platformdirs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(platformdirs.user_data_dir("agents-mcp")))
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    out = {
        "dir": str(args.dir),
        "fdatasync_per_s": round(rate(args.dir, os.fdatasync, args.seconds)),
        "fsync_per_s": round(rate(args.dir, os.fsync, args.seconds)),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
