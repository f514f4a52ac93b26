"""The benchmark keeps working: ``python -m benchmarks smoke`` (tiny sizes; the provider
adapters, S1 per provider, then every scenario with the agents-mcp and floor drivers, no
results file) exits 0, so no driver failed and no conversation errored.

It runs as a person runs it, in a process of its own, beside the rest of the suite:
nothing here asserts a time, and its figures under the suite's load are only a smoke
signal (``benchmarks/README.md`` says how the real runs are made).
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from benchmarks.__main__ import new_results_file

from tests.processes import ROOT

pytestmark = pytest.mark.anyio


async def test_the_benchmark_smoke_run_passes() -> None:
    with anyio.fail_after(900):
        done = await anyio.run_process(
            [sys.executable, "-m", "benchmarks", "smoke"], cwd=ROOT, check=False
        )
    report = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, report[-6000:]
    assert "## The run" in report, report[-6000:]


def test_a_complete_run_never_writes_over_another_runs_results(tmp_path: Path) -> None:
    assert new_results_file("2026-12-07", tmp_path) == tmp_path / "2026-12-07.md"
    (tmp_path / "2026-12-07.md").write_text("the morning's run, and notes added to it")
    assert new_results_file("2026-12-07", tmp_path) == tmp_path / "2026-12-07-2.md"
    (tmp_path / "2026-12-07-2.md").write_text("the afternoon's")
    assert new_results_file("2026-12-07", tmp_path) == tmp_path / "2026-12-07-3.md"
