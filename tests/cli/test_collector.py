"""The garbage collector while a command loads (``agents_mcp.cli.collector``): off until
the command's event loop starts, then on, with what loaded frozen out of collections; and
as it was once ``main`` returns, for a caller in the same process."""

from __future__ import annotations

import gc

import pytest

from agents_mcp import cli
from agents_mcp.cli import collector, commands


def test_a_command_loads_with_the_collector_off(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def command(argv: object) -> int:
        seen.append(gc.isenabled())
        return 0

    monkeypatch.setattr(commands, "main", command)
    assert cli.main(["threads"]) == 0
    assert seen == [False]
    assert gc.isenabled()


def test_the_loop_starts_with_the_collector_on_and_what_loaded_frozen() -> None:
    async def state() -> tuple[bool, int]:
        return gc.isenabled(), gc.get_freeze_count()

    gc.disable()
    try:
        enabled, frozen = collector.run(state)
    finally:
        gc.enable()
        gc.unfreeze()
    assert enabled
    assert frozen > 10_000  # this process has loaded pytest, fastmcp, pydantic…
