"""Peer frameworks, each in its own virtual environment under ``benchmarks/.venvs/``.

The harness creates them with ``python -m venv`` and installs the pinned requirement with
pip from the configured package index. A peer that cannot be installed is reported (with
pip's last lines) and its row is skipped; the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import BENCH, ECHO_SERVER

VENVS = BENCH / ".venvs"


@dataclass(frozen=True)
class Peer:
    key: str
    label: str
    requirement: str
    module: str
    dists: tuple[str, ...]
    """Distributions whose versions go into the report."""

    @property
    def venv(self) -> Path:
        return VENVS / self.key

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def argv(self, base_url: str) -> list[str]:
        return [
            str(self.python),
            "-m",
            self.module,
            "--base-url",
            base_url,
            "--python",
            sys.executable,
            "--echo-server",
            ECHO_SERVER,
        ]


PEERS = (
    Peer(
        key="openai-agents",
        label="openai-agents (in-process)",
        requirement="openai-agents==0.24.0",
        module="benchmarks.drivers.openai_agents",
        dists=("openai-agents", "openai", "mcp", "httpx2", "pydantic"),
    ),
    Peer(
        key="pydantic-ai",
        label="pydantic-ai (in-process)",
        requirement="pydantic-ai-slim[openai,mcp]==2.68.0",
        module="benchmarks.drivers.pydantic_ai",
        dists=("pydantic-ai-slim", "openai", "fastmcp-slim", "mcp", "httpx2", "pydantic"),
    ),
)


def installed(peer: Peer) -> bool:
    marker = peer.venv / ".requirement"
    return peer.python.exists() and marker.exists() and marker.read_text() == peer.requirement


async def _run(*argv: str, limit_s: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"timed out after {limit_s:.0f}s"
    return int(proc.returncode or 0), out.decode(errors="replace")


async def install(peer: Peer, *, log: Path) -> str | None:
    """Create or refresh the peer's venv; returns None on success, else why it failed."""
    if installed(peer):
        return None
    VENVS.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    code, out = await _run(base, "-m", "venv", "--clear", str(peer.venv), limit_s=300)
    if code == 0:
        code, out = await _run(
            str(peer.python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            peer.requirement,
            limit_s=900,
        )
    _save(log, out)
    if code != 0:
        lines = [line for line in out.splitlines() if not line.startswith("WARNING: Location")]
        return f"pip failed ({code}): " + " | ".join(lines[-4:])[-600:]
    (peer.venv / ".requirement").write_text(peer.requirement)
    return None


def _save(path: Path, text: str) -> None:
    path.write_text(text)


_VERSIONS = """
import json, sys
from importlib.metadata import version, PackageNotFoundError
out = {"python": sys.version.split()[0]}
for d in sys.argv[1:]:
    try:
        out[d] = version(d)
    except PackageNotFoundError:
        pass
print(json.dumps(out))
"""


async def versions(python: str, dists: tuple[str, ...]) -> dict[str, str]:
    code, out = await _run(python, "-c", _VERSIONS, *dists, limit_s=120)
    if code != 0:
        return {"error": out[-300:]}
    result: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    return result
