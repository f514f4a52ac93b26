"""The key sign-ins are kept encrypted with: AGENTS_MCP_SECRET_KEY (rotated by a list,
newest first), a key file beside a SQLite database, none on PostgreSQL without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from agents_mcp.errors import ConfigError
from agents_mcp.store import open_store
from agents_mcp.store.secrets import ENV, Undecryptable, keys_for
from agents_mcp.store.tokens import TokenStore

pytestmark = pytest.mark.anyio
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_a_key_file_is_made_beside_a_sqlite_database_for_its_owner_only(tmp_path: Path) -> None:
    db = str(tmp_path / "threads.db")
    first = keys_for(db, {})
    blob = first.encrypt({"access_token": "secret"})
    again = keys_for(db, {})  # another process: the same key
    assert (tmp_path / "threads.db.key").stat().st_mode & 0o777 == 0o600
    assert again.decrypt(blob) == {"access_token": "secret"}
    assert "secret" not in blob
    with pytest.raises(Undecryptable):
        keys_for(str(tmp_path / "other.db"), {}).decrypt(blob)


def test_postgresql_keeps_no_sign_in_without_the_key() -> None:
    keys = keys_for("postgresql://u@h/db", {})
    assert not keys.usable
    with pytest.raises(ConfigError) as refused:
        keys.encrypt({"access_token": "x"})
    assert f"{ENV} is not set" in str(refused.value)
    assert "Fernet.generate_key()" in str(refused.value)


def test_a_bad_key_says_how_to_make_one() -> None:
    with pytest.raises(ConfigError) as refused:
        keys_for("postgresql://u@h/db", {ENV: f"{NEW},not-a-key"})
    assert str(refused.value).startswith(f"{ENV}: key 2 is not a Fernet key")


async def test_a_new_key_in_front_rotates_every_secret(tmp_path: Path) -> None:
    db = str(tmp_path / "threads.db")
    store = await open_store(db)
    try:
        old = TokenStore(store.db, keys_for(db, {ENV: OLD}))
        await old.put_token(
            owner="alice", server="s", issuer="https://as", client_ref=None,
            token={"access_token": "at", "refresh_token": "rt"}, expires_at=None,
            token_endpoint="https://as/token", resource=None, scope="read",
        )  # fmt: skip
        await old.add_registration("s", "http://cb", "https://as", {"client_id": "c"})
        both = TokenStore(store.db, keys_for(db, {ENV: f"{NEW},{OLD}"}))
        rotated = await both.rotate()
        again = await both.rotate()
        new_only = TokenStore(store.db, keys_for(db, {ENV: NEW}))
        token = await new_only.token("alice", "s")
        lost = await TokenStore(store.db, keys_for(db, {ENV: OLD})).token("alice", "s")
    finally:
        await store.close()
    assert (rotated, again) == (2, 0)
    assert token is not None and token.token == {"access_token": "at", "refresh_token": "rt"}
    assert lost is None  # the old key alone opens nothing any more: sign in again
