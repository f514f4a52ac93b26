"""``agents-mcp login``/``logout`` and a terminal chat that waits for a sign-in, as
subprocesses against a real OAuth-protected server (``tests/oauth_server.py``)."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from agents_mcp.testing.chat_server import FakeChatServer
from tests.cli.runner import agents_mcp, scratch_env
from tests.oauth_helpers import Protected, consent, protected_server
from tests.processes import ROOT, free_port, write_config
from tests.test_signin import Model

pytestmark = pytest.mark.anyio


@pytest.fixture
def protected(tmp_path: Path) -> Iterator[Protected]:
    with protected_server(tmp_path) as server:
        yield server


def config_file(tmp_path: Path, protected: Protected, model_url: str, port: int) -> Path:
    return write_config(
        tmp_path / "agents.json",
        {
            "mcpServers": {"prot": {"url": protected.url, "auth": "oauth"}},
            "models": {"main": {"base_url": model_url, "model": "m"}},
            "agents": {
                "messenger": {
                    "description": "Sends messages as you",
                    "model": "main",
                    "servers": ["prot"],
                    "require_approval": "never",
                }
            },
            "server": {"db": str(tmp_path / "threads.db"), "oauth_callback_port": port},
        },
    )


async def started(tmp_path: Path, *args: str) -> Process:
    return await anyio.open_process(
        [sys.executable, "-m", "agents_mcp", *args],
        env=scratch_env(tmp_path),
        cwd=ROOT,
    )


async def lines_until(stream: Any, marker: str) -> str:
    """Read ``stream`` until a line containing ``marker``; returns everything read."""
    seen = ""
    async for text in TextReceiveStream(stream):
        seen += text
        if marker in seen and seen.endswith("\n"):
            return seen
    raise AssertionError(f"{marker!r} never came: {seen}")


async def come_back(protected: Protected, url: str) -> str:
    """The browser: sign in at ``url`` as local, then follow the redirect to agents-mcp."""
    location = await consent(protected, url, "local")
    async with httpx2.AsyncClient() as http:
        page = await http.get(location)
    assert page.status_code == 200, page.text
    return page.text


async def test_login_and_logout(tmp_path: Path, protected: Protected) -> None:
    port = free_port()
    config = config_file(tmp_path, protected, "http://127.0.0.1:9/v1", port)
    with anyio.fail_after(120):
        proc = await started(tmp_path, "login", "prot", "--no-browser", "--config", str(config))
        async with proc:
            assert proc.stdout is not None and proc.stderr is not None
            url = (await lines_until(proc.stdout, "/authorize?")).strip()
            page = await come_back(protected, url)
            err = "".join([text async for text in TextReceiveStream(proc.stderr)])
            await proc.wait()
        again = await agents_mcp("login", "prot", "--config", str(config), tmp_path=tmp_path)
        rows = sqlite3.connect(tmp_path / "threads.db").execute(
            "SELECT owner, server FROM oauth_tokens"
        )
        stored = list(rows)
        out = await agents_mcp("logout", "prot", "--config", str(config), tmp_path=tmp_path)
        gone = list(sqlite3.connect(tmp_path / "threads.db").execute("SELECT * FROM oauth_tokens"))
        twice = await agents_mcp("logout", "prot", "--config", str(config), tmp_path=tmp_path)
        unknown = await agents_mcp("login", "nope", "--config", str(config), tmp_path=tmp_path)
    assert url.startswith(protected.base + "/authorize?")
    assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Foauth%2Fcallback" in url
    assert "Signed in to prot" in page
    assert proc.returncode == 0 and "Signed in to prot (owner local" in err
    assert (again.code, again.err.strip()) == (
        0,
        "Already signed in to prot (owner local); logout first to sign in again.",
    )
    assert stored == [("local", "prot")]
    assert out.code == 0 and "Signed out of prot" in out.err
    assert gone == []
    assert twice.code == 0 and "Not signed in to prot" in twice.err
    assert unknown.code == 2 and "no server 'nope'" in unknown.err


async def test_a_terminal_chat_waits_for_the_sign_in(tmp_path: Path, protected: Protected) -> None:
    port = free_port()
    async with FakeChatServer(Model()).serve() as model_url:
        config = config_file(tmp_path, protected, model_url, port)
        with anyio.fail_after(120):
            proc = await started(tmp_path, "chat", "messenger", "hello", "--config", str(config))
            async with proc:
                assert proc.stdout is not None and proc.stderr is not None
                asked = await lines_until(proc.stderr, "/authorize?")
                url = asked.strip().splitlines()[-1].strip()
                await come_back(protected, url)
                out = await lines_until(proc.stdout, "done:")
                await proc.wait()
        pending = await agents_mcp("pending", "--config", str(config), tmp_path=tmp_path)
    assert "needs you to sign in" in asked
    assert out.strip() == "done: sent 'hello' as local"
    assert proc.returncode == 0
    assert [(c["tool"], c["subject"]) for c in protected.calls()] == [("send", "local")]
    assert pending.err.strip() == "Nothing waits for approval."
