"""Helpers for the sign-in tests: the OAuth-protected server and a headless browser."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2

from tests.conftest import TESTS
from tests.processes import _stop

OAUTH_SERVER = str(TESTS / "oauth_server.py")


@dataclass(frozen=True)
class Protected:
    """A running ``tests/oauth_server.py``."""

    base: str
    log: Path

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def calls(self) -> list[dict[str, Any]]:
        """Every tool call it ran, with whose token it carried."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    async def test_route(self, path: str) -> str:
        async with httpx2.AsyncClient() as http:
            r = await http.get(self.base + path)
            r.raise_for_status()
            return r.text


@contextmanager
def protected_server(tmp_path: Path) -> Iterator[Protected]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    log = tmp_path / f"protected-{port}.jsonl"
    proc = subprocess.Popen(
        [sys.executable, OAUTH_SERVER, str(port), str(log), str(sock.fileno())],
        pass_fds=[sock.fileno()],
        stderr=subprocess.DEVNULL,
    )
    sock.close()
    try:
        yield Protected(f"http://127.0.0.1:{port}", log)
    finally:
        _stop(proc)


async def consent(server: Protected, url: str, user: str) -> str:
    """What a browser does with a sign-in link when ``user`` is signed in at the
    authorization server (which approves at once): the redirect it answers with, to
    agents-mcp's callback."""
    await server.test_route(f"/test/login?user={user}")
    async with httpx2.AsyncClient() as http:
        r = await http.get(url, follow_redirects=False)
    assert r.status_code in (302, 303), r.text
    return r.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def browse(url: str) -> httpx2.Response:
    async with httpx2.AsyncClient() as http:
        return await http.get(url, follow_redirects=False)
