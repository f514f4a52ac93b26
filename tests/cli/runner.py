"""Running ``agents-mcp`` as users do: a subprocess, in a scratch home.

Models are scripted behind a Chat Completions fake on loopback that lives in the test's
event loop (so the CLI runs with ``anyio.run_process``, never a blocking call), and the
downstream server is the real tests/downstream_server.py over stdio.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from tests.conftest import DOWNSTREAM
from tests.processes import ROOT

THREAD = re.compile(r"th_[A-Za-z0-9_-]{24}")


def scratch_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """The environment for a CLI run: the user's, with data, state and config in tmp_path."""
    environ = {
        **{k: v for k, v in os.environ.items() if k != "AGENTS_MCP_CONFIG"},
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path / "home"),
        **env,
    }
    return environ


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def agents_mcp(
    *args: str, tmp_path: Path, input: str | None = None, cwd: Path = ROOT, **env: str
) -> Ran:
    """Run ``python -m agents_mcp ARGS`` to completion (bounded); never in the user's dirs."""
    environ = scratch_env(tmp_path, **env)
    with anyio.fail_after(90):
        proc = await anyio.run_process(
            [sys.executable, "-m", "agents_mcp", *args],
            input=None if input is None else input.encode(),
            check=False,
            cwd=cwd,
            env=environ,
        )
    return Ran(proc.returncode or 0, proc.stdout.decode(), proc.stderr.decode())


async def all_of(runs: dict[str, Awaitable[Ran]]) -> dict[str, Ran]:
    """Run several commands at once (each is a process: they overlap well)."""
    done: dict[str, Ran] = {}

    async def one(key: str, run: Awaitable[Ran]) -> None:
        done[key] = await run

    async with anyio.create_task_group() as tg:
        for key, run in runs.items():
            tg.start_soon(one, key, run)
    return {k: done[k] for k in runs}


def scrub(text: str, *known: tuple[str, str]) -> str:
    """Replace what changes between runs: ids, times, paths, ports."""
    for value, name in known:
        text = text.replace(value, name)
    text = re.sub(r"/\S*/pytest-of-[^/]+/pytest-\d+/[^/\s]+", "<tmp>", text)
    # Same lengths as the originals, so columns stay aligned.
    text = re.sub(r"th_[A-Za-z0-9_-]{24}", "th_" + "x" * 24, text)
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z", _zeros, text)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)


def _zeros(m: re.Match[str]) -> str:
    return re.sub(r"\d", "0", m[0])


def helper_config(base_url: str, *, policy: Any = "read_only", **extra: Any) -> dict[str, Any]:
    return {
        "mcpServers": {
            "notes": {"command": sys.executable, "args": [DOWNSTREAM, "--name", "notes"]},
            **extra.pop("servers", {}),
        },
        "models": {"main": {"base_url": base_url, "model": "fake-model"}},
        "agents": {
            "helper": {
                "description": "Takes notes",
                "model": "main",
                "servers": ["notes"],
                "require_approval": policy,
                **extra,
            }
        },
    }
