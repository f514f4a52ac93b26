"""Sign-ins to a real OAuth-protected server (fastmcp's in-memory authorization server),
at the level of one downstream server: whose token goes out, consent that waits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream.oauth import acting_for
from agents_mcp.downstream.servers import DownstreamServer
from agents_mcp.downstream.signin import Accounts
from agents_mcp.store import SQLStore, open_store
from agents_mcp.store.secrets import keys_for
from agents_mcp.store.tokens import TokenStore
from tests.oauth_helpers import Protected, consent, protected_server, query_of

pytestmark = pytest.mark.anyio
REDIRECT = "http://127.0.0.1:9/oauth/callback"


@pytest.fixture
def protected(tmp_path: Path) -> Iterator[Protected]:
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


async def signed_in_server(
    protected: Protected, store: SQLStore, tmp_path: Path, owner: str = "alice"
) -> tuple[DownstreamServer, Accounts, list[str]]:
    """A server ``owner`` has signed in to; also the callback queries used (to replay)."""
    config = DownstreamServerConfig(url=protected.url, auth="oauth")
    accounts = accounts_for(store, tmp_path, config)
    server = DownstreamServer("prot", config, accounts=accounts)
    with acting_for(owner):
        out = await server.call("whoami", {})
    assert out.sign_in is not None
    location = await consent(protected, out.sign_in.url, owner)
    ok, text = await accounts.callback(query_of(location))
    assert ok, text
    return server, accounts, [location]


async def test_an_expired_token_is_refreshed_without_asking(
    protected: Protected, store: SQLStore, tmp_path: Path
) -> None:
    server, accounts, used = await signed_in_server(protected, store, tmp_path)
    try:
        with anyio.fail_after(60), acting_for("alice"):
            first = await accounts.tokens.token("alice", "prot")
            await store.db.transaction(  # our record says it expired: refreshed before use
                "test", lambda tx: tx.execute("UPDATE oauth_tokens SET expires_at=1")
            )
            by_us = await server.call("whoami", {})
            second = await accounts.tokens.token("alice", "prot")
            await protected.test_route("/test/forget")  # the server refuses it: refreshed
            by_server = await server.call("whoami", {})
            third = await accounts.tokens.token("alice", "prot")
            replayed = await accounts.callback(query_of(used[0]))
    finally:
        await server.aclose()
        await accounts.aclose()
    assert by_us.ok and by_us.sign_in is None, by_us.text
    assert by_server.ok and by_server.sign_in is None, by_server.text
    assert first is not None and second is not None and third is not None
    tokens = [t.token["access_token"] for t in (first, second, third)]
    assert len(set(tokens)) == 3 and [first.version, second.version, third.version] == [1, 2, 3]
    assert [c["subject"] for c in protected.calls()] == ["alice", "alice"]
    assert replayed == (
        False,
        "This sign-in link was already used, or it has expired. Go back to the"
        " conversation: the agent asks again when it needs to.",
    )


async def test_more_scope_is_asked_for_and_registered_anew(
    protected: Protected, store: SQLStore, tmp_path: Path
) -> None:
    """A step-up (403 insufficient_scope) asks for the old and the new scope together; an
    authorization server that registered the client for less refuses (invalid_scope):
    the registration is retired and the next sign-in registers anew, for both."""
    server, accounts, _ = await signed_in_server(protected, store, tmp_path)
    try:
        with anyio.fail_after(60), acting_for("alice"):
            await protected.test_route("/test/require?scope=write")
            refused = await server.call("whoami", {})
            assert refused.sign_in is not None
            first_link = query_of(refused.sign_in.url)
            location = await consent(protected, refused.sign_in.url, "alice")
            outcome = await accounts.callback(query_of(location))
            again = await server.call("whoami", {})
            assert again.sign_in is not None
            second_link = query_of(again.sign_in.url)
            location = await consent(protected, again.sign_in.url, "alice")
            assert (await accounts.callback(query_of(location)))[0]
            done = await server.call("whoami", {})
    finally:
        await server.aclose()
        await accounts.aclose()
    assert first_link["scope"] == "read write"
    assert query_of(location).get("error") is None
    assert outcome == (False, "The sign-in to prot was refused (invalid_scope).")
    assert second_link["scope"] == "read write"
    assert second_link["client_id"] != first_link["client_id"]
    assert done.ok and done.structured is not None
    assert done.structured["scopes"] == ["read", "write"]


async def test_a_request_of_nobody_fails_soft(
    protected: Protected, store: SQLStore, tmp_path: Path
) -> None:
    """Outside any owner's run nothing is sent with a token, and the shared session of a
    2026-07-28 client stays usable for the owners' calls."""
    config = DownstreamServerConfig(url=protected.url, auth="oauth", protocol="2026-07-28")
    accounts = accounts_for(store, tmp_path, config)
    server = DownstreamServer("prot", config, accounts=accounts)
    try:
        with anyio.fail_after(60):
            nobody = await server.call("whoami", {})
            with acting_for("alice"):
                asked = await server.call("whoami", {})
            assert asked.sign_in is not None
            await sign_in(accounts, protected, asked.sign_in.url, "alice")
            with acting_for("alice"):
                done = await server.call("whoami", {})
    finally:
        await server.aclose()
        await accounts.aclose()
    assert not nobody.ok and nobody.sign_in is None
    assert "is nobody's" in nobody.text
    assert done.ok and done.structured is not None and done.structured["subject"] == "alice"
