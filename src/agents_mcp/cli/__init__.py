"""The ``agents-mcp`` command line: one module per command family.

``commands`` parses the command line and dispatches; ``chat``, ``check``, ``history`` and
``starter`` implement the commands; ``terminal`` is where they write.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agents-mcp`` console script.

    The commands load here, not on import, so that a Ctrl-C at any moment, even while
    they load, ends the command with one line and exit code 130, never a traceback. They
    load with the garbage collector off, until their event loop starts
    (:mod:`agents_mcp.cli.collector`).
    """
    gc.disable()
    try:
        from agents_mcp.cli.commands import main as run

        return run(argv)
    except KeyboardInterrupt:
        print("agents-mcp: interrupted", file=sys.stderr)
        return 130
    finally:
        gc.enable()  # as it was, for a caller in the same process


__all__ = ["main"]
