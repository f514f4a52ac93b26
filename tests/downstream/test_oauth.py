"""Sign-ins to a real OAuth-protected server (fastmcp's in-memory authorization server),
at the level of one downstream server: whose token goes out, consent that waits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream import DownstreamServer
from agents_mcp.downstream.oauth import acting_for
from agents_mcp.downstream.signin import Accounts
from agents_mcp.store import SQLStore, open_store
from agents_mcp.store.secrets import keys_for
from agents_mcp.store.tokens import TokenStore
from tests.oauth_helpers import Protected, consent, protected_server, query_of

pytestmark = pytest.mark.anyio
REDIRECT = "http://127.0.0.1:9/oauth/callback"


@pytest.fixture
def protected(tmp_path: Path) -> AsyncIterator[Protected]:
    with protected_server(tmp_path) as server:
        yield server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    s = await open_store(tmp_path / "threads.db")
    yield s
    await s.close()


def accounts_for(store: SQLStore, tmp_path: Path, config: DownstreamServerConfig) -> Accounts:
    tokens = TokenStore(store.db, keys_for(str(tmp_path / "threads.db")))
    return Accounts(tokens, {"prot": config}, REDIRECT)


async def sign_in(accounts: Accounts, protected: Protected, url: str, user: str) -> None:
    location = await consent(protected, url, user)
    assert location.startswith(REDIRECT)
    ok, text = await accounts.callback(query_of(location))
    assert ok, text


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_each_owner_calls_with_their_own_token(
    protected: Protected, store: SQLStore, tmp_path: Path, protocol: str
) -> None:
    config = DownstreamServerConfig(url=protected.url, auth="oauth", protocol=protocol)
    accounts = accounts_for(store, tmp_path, config)
    server = DownstreamServer("prot", config, accounts=accounts)
    try:
        with anyio.fail_after(60):
            for owner in ("alice", "bob"):
                with acting_for(owner):
                    out = await server.call("whoami", {})
                assert not out.ok and out.sign_in is not None, out.text
                assert protected.calls() == [] or owner == "bob"
                await sign_in(accounts, protected, out.sign_in.url, owner)
            for owner in ("alice", "bob", "alice"):
                with acting_for(owner):
                    out = await server.call("whoami", {})
                assert out.ok, out.text
                assert out.structured is not None and out.structured["subject"] == owner
    finally:
        await server.aclose()
        await accounts.aclose()
    assert [c["subject"] for c in protected.calls()] == ["alice", "bob", "alice"]
