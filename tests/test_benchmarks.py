"""The benchmark keeps working: ``python -m benchmarks smoke`` (tiny sizes; the provider
adapters, S1 per provider, then every scenario with the agents-mcp and floor drivers, no
results file) exits 0, so no driver failed and no conversation errored.

It runs as a person runs it, in a process of its own, beside the rest of the suite:
nothing here asserts a time, and its figures under the suite's load are only a smoke
signal (``benchmarks/README.md`` says how the real runs are made).
"""

from __future__ import annotations

import sys

import anyio
import pytest

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
