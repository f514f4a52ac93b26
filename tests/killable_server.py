"""``agents-mcp`` (any command, e.g. ``serve``) that a test can kill at a store point.

``python tests/killable_server.py serve --config … --db …`` runs the CLI exactly as
``python -m agents_mcp`` does, with one hook on every store the process opens
(``agents_mcp.store.points.on_every_store``), set from this process's environment:

* ``AGENTS_MCP_KILL_AT=commit:decide`` (or ``commit:decide#3``: the third time it gets
  there) sends the process SIGKILL at that point, for the crash tests;
* ``AGENTS_MCP_TRACE=<file>`` appends every point reached to that file, so the tests know
  the points there are.

The product never reads these variables: only this test entry point does.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

KILL_AT = "AGENTS_MCP_KILL_AT"
TRACE = "AGENTS_MCP_TRACE"
HERE = Path(__file__).resolve()


def command(*args: str) -> list[str]:
    """The command line running ``agents-mcp <args>`` through this entry point, forked
    from the test process's preloader (``tests/preloader.py``)."""
    from tests.preloader import launched

    return launched(str(HERE), *args)


def install(kill_at: str | None, trace: str | None) -> None:
    from agents_mcp.store.points import on_every_store

    point, _, nth = (kill_at or "").partition("#")
    left = int(nth) if nth else 1

    async def hook(reached: str) -> None:
        nonlocal left
        if trace:
            _note(trace, reached)  # before a kill: the point is reached either way
        if reached == point:
            left -= 1
            if left <= 0:
                os.kill(os.getpid(), signal.SIGKILL)

    if point or trace:
        on_every_store(hook)


def _note(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def main() -> int:
    install(os.environ.get(KILL_AT), os.environ.get(TRACE))
    from agents_mcp.cli import main as cli

    return cli(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
