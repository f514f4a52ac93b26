from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from agents_mcp.config import Config, config_from_dict
from agents_mcp.testing import block_real_llms
from tests.preloader import launched
from tests.reading import text_of

TESTS = Path(__file__).parent
DOWNSTREAM = str(TESTS / "downstream_server.py")


def stdio_downstream(*args: str, **more: Any) -> dict[str, Any]:
    """``tests/downstream_server.py ARGS`` as an ``[mcpServers]`` stdio entry, the process
    forked from this test process's preloader (``tests/preloader.py``); ``more``: other
    keys of the entry. The stdio client's own tests start new interpreters instead."""
    python, *rest = launched(DOWNSTREAM, *args)
    return {"command": python, "args": rest, **more}


USER_DIRS = {
    "HOME": "home",
    "XDG_CONFIG_HOME": "home/.config",
    "XDG_DATA_HOME": "home/.local/share",
    "XDG_STATE_HOME": "home/.local/state",
    "XDG_CACHE_HOME": "home/.cache",
}
"""Where tests, and every process they start, find the user's directories: a temporary
home (see ``pytest_configure``)."""


def pytest_configure(config: pytest.Config) -> None:
    """A temporary home for the whole run, set before any fixture or process starts:
    nothing a test starts writes in the user's home (servers' logs, a default thread
    database, client configs, a browser's profile). Tests that need a home of their own
    still set one (``tmp_path``)."""
    home = Path(tempfile.mkdtemp(prefix="agents-mcp-tests-"))
    config.stash[_HOME] = home
    for name, sub in USER_DIRS.items():
        os.environ[name] = str(home / sub)


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


_HOME = pytest.StashKey[Path]()


SLOW = (  # the longest first
    "tests/test_benchmarks.py",  # the benchmark's smoke run: every driver, every scenario
    "tests/test_crashes.py",  # the kill matrix: two server processes per kill
    "tests/test_races.py",  # every request racing every other at every point
    "tests/test_replicas.py",  # replica processes on PostgreSQL, under load
    "tests/cli/",  # agents-mcp run as users run it: a subprocess per command
    "tests/downstream/test_conformance.py",  # the conformance suite: Node.js per scenario
    "tests/test_e2e.py",  # real servers, restarts, providers
    "tests/downstream/test_remote.py",  # agents-mcp servers as each other's downstreams
    "tests/server/test_stdio.py",  # every way serving over stdio ends
)
"""What ``-m slow`` selects (and ``-m "not slow"`` leaves out, for a quick local run): the
tests that start many processes. The README's command runs everything."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tests, and start them first, the longest first: a parallel run
    (``-n``, ``--dist load``) then spreads them over its workers and fills in with the
    quick ones, rather than finishing on one worker's long tail."""
    root = Path(str(config.rootpath))
    rank: dict[str, int] = {}
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        rank[item.nodeid] = next(
            (i for i, slow in enumerate(SLOW) if where.startswith(slow)), len(SLOW)
        )
        if rank[item.nodeid] < len(SLOW):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: rank[item.nodeid])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # fastmcp's client is asyncio-only


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the whole session (see ``tests/postgres.py``)."""
    from tests.postgres import cluster

    with cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh thread database of each kind: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "threads.db")
    from tests.postgres import fresh_database

    return await fresh_database(request.getfixturevalue("pg_cluster"))


@pytest.fixture(autouse=True)
def _no_real_llms() -> Iterator[None]:
    with block_real_llms():
        yield


@pytest.fixture(autouse=True)
def _scratch_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Downstream servers' stderr goes to log files under the state dir: not the user's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def make_config(
    tmp_path: Path,
    *,
    agents: dict[str, Any] | None = None,
    servers: dict[str, Any] | None = None,
    models: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
) -> Config:
    """A config with a scripted-friendly model named ``main`` and the given agents."""
    data: dict[str, Any] = {
        "mcpServers": servers
        if servers is not None
        else {"notes": stdio_downstream("--name", "notes")},
        "models": models
        if models is not None
        else {"main": {"base_url": "http://127.0.0.1:9/v1", "model": "test-model"}},
        "agents": agents
        if agents is not None
        else {
            "helper": {
                "description": "A helpful agent with a notes server",
                "instructions": "You are helpful.",
                "model": "main",
                "servers": ["notes"],
                "require_approval": "never",
            }
        },
    }
    if server is not None:
        data["server"] = server
    return config_from_dict(data, path=tmp_path / "agents.toml")


async def call(client: Client[Any], tool: str, **args: Any) -> dict[str, Any]:
    """Call an MCP tool (bounded wait) and return its ``structuredContent``.

    A failed run is an error result that still has its ``structuredContent``: it is
    returned like any other (and checked to be marked as an error); any other error
    raises ``ToolError`` as the client would.
    """
    with anyio.fail_after(60):
        result = await client.call_tool(tool, args, raise_on_error=False)
    if result.is_error and result.structured_content is None:
        raise ToolError(text_of(result.content[0]))
    assert result.structured_content is not None
    assert result.is_error == (
        result.structured_content.get("status") in ("failed", "budget_exceeded")
    )
    return result.structured_content
