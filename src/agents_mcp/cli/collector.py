"""The garbage collector while a command loads.

What a command loads (fastmcp, mcp, pydantic and their schemas: about 200 000 objects for
``serve`` or ``chat``) lives as long as the process and leaves little garbage (about
3 000 objects, 1 MiB). With the collector on, it walks those objects again and again while
they load: about an eighth of the CPU a command takes to start (0.14 s of 1.1 s, measured
here). So :func:`agents_mcp.cli.main` turns it off, and :func:`loaded`, just before the
command's event loop starts, freezes what is there (out of every later collection, whose
walks then stay short: no collection pauses the loop for tens of milliseconds) and turns
it back on. A command that never starts a loop ends before garbage could matter.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def loaded() -> None:
    """The command has loaded what it needs: freeze it and collect from now on. Frozen
    without collecting first: that would take about 0.15 s, for the 1 MiB loading left."""
    gc.freeze()
    gc.enable()


def run(main: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run(main)``, once loaded (:func:`loaded`)."""
    loaded()
    return anyio.run(main)
