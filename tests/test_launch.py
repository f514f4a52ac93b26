"""``tests/launch.py`` ends as the program it launched ended: the kill matrix and the
replica tests read a killed server's end from its launcher's."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest

from tests.preloader import launched

pytestmark = pytest.mark.anyio

BOUND = 60


@pytest.mark.parametrize(
    ("ending", "returncode"),
    [
        ("raise SystemExit(3)", 3),
        ("os.kill(os.getpid(), signal.SIGTERM)", -signal.SIGTERM),
        ("os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
    ],
)
async def test_the_launcher_ends_as_its_program_did(
    tmp_path: Path, ending: str, returncode: int
) -> None:
    script = tmp_path / "program.py"
    script.write_text(f"import os, signal\n{ending}\n")
    with anyio.fail_after(BOUND):
        done = await anyio.run_process(launched(str(script)), check=False)
    assert done.returncode == returncode, done.stderr.decode()
    assert done.stderr == b""
