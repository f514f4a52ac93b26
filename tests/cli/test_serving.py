"""``agents-mcp serve``, through the real entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from inline_snapshot import snapshot

from tests.cli.runner import agents_mcp, helper_config, scrub
from tests.processes import write_config

pytestmark = pytest.mark.anyio


async def test_serve_keeps_stdout_for_the_protocol(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "agents.json", helper_config("http://127.0.0.1:9/v1"))
    db = tmp_path / "threads.db"
    ran = await agents_mcp(
        "serve", "--config", str(cfg), "--db", str(db), input="", tmp_path=tmp_path
    )
    assert (ran.code, ran.out) == (0, "")
    assert scrub(ran.err, (str(db), "<db>")) == snapshot(
        "agents-mcp 0.1.0: 1 agent(s) (helper) on stdio; threads in <db>\n"
    )
