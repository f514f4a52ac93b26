"""A throwaway PostgreSQL cluster for the tests, from the machine's PostgreSQL binaries.

``initdb`` and ``pg_ctl`` (as the ``postgres`` user when we are root) in a temporary
directory, listening on a free port on 127.0.0.1; each test gets a database of its own.
A machine without PostgreSQL fails these tests rather than skipping them: CI has it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.processes import free_port

BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"))]


def _bin(name: str) -> str:
    for d in BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed (looked in /usr/lib/postgresql/*/bin and"
            " PATH); install PostgreSQL 15 server binaries (apt install postgresql-15)"
        )
    return found


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _quietly(command: list[str]) -> None:
    """Run ``command``; its errors (on stderr) are in the exception if it fails."""
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """Start a cluster; yields the URL of its ``postgres`` database."""
    root = Path(tempfile.mkdtemp(prefix="agents-mcp-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    _quietly(_as_postgres([_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]))
    options = f"-k {data} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = _bin("pg_ctl")
    _quietly(
        _as_postgres(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
        )
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(root, ignore_errors=True)


async def fresh_database(admin_url: str) -> str:
    """A new empty database in the cluster; returns its URL."""
    import asyncpg

    name = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name
