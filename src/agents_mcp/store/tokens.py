"""Sign-ins to downstream servers, kept in the thread database, their secrets encrypted.

Three tables (migration 16):

* ``oauth_tokens``: one token per (owner, server, issuer), the token itself (access and
  refresh) encrypted; beside it what refreshing it needs in the clear (the token
  endpoint, the resource, the scope granted, its expiry) and a ``version`` that every
  write bumps, so two replicas refreshing at once cannot both win;
* ``oauth_clients``: the client registrations agents-mcp made with an authorization
  server (dynamic registration), per (server, redirect URI), shared by every owner; a
  token names the registration it was issued to (a refresh must use the same client);
* ``oauth_pending``: the sign-ins asked for and not yet given, by the SHA-256 of their
  ``state`` (single use), with what the callback needs (the PKCE verifier...) encrypted.

Nothing here knows OAuth: values are JSON objects the caller shapes (``downstream.oauth``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents_mcp.store.database import Database, Tx
from agents_mcp.store.records import Approval, Row, approval_row, now
from agents_mcp.store.secrets import Keys, Undecryptable


@dataclass(frozen=True, kw_only=True)
class StoredToken:
    owner: str
    server: str
    issuer: str
    """The authorization server that issued it ('' when it was not discovered)."""
    client_ref: str | None
    """The registration (``oauth_clients.id``) it was issued to; None: the configured client."""
    token: dict[str, Any]
    expires_at: float | None
    token_endpoint: str
    resource: str | None
    scope: str | None
    version: int
    updated_at: str


@dataclass(frozen=True, kw_only=True)
class Registration:
    id: str
    server: str
    redirect_uri: str
    issuer: str | None
    info: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class PendingSignIn:
    owner: str
    server: str
    url: str
    secret: dict[str, Any]
    expires_at: float


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


_TOKEN_COLUMNS = (
    "owner, server, issuer, client_ref, token, expires_at, token_endpoint, resource, scope,"
    " version, updated_at"
)


class TokenStore:
    """The sign-in tables of one database, with the keys their secrets are encrypted with."""

    def __init__(self, db: Database, keys: Keys) -> None:
        self.db = db
        self.keys = keys

    # -- tokens ---------------------------------------------------------------------------

    async def token(self, owner: str, server: str) -> StoredToken | None:
        """The owner's newest token for the server; None without one (or when no key
        opens it: signing in again replaces it)."""
        rows = await self.db.query(
            "oauth_token",
            f"SELECT {_TOKEN_COLUMNS} FROM oauth_tokens WHERE owner=? AND server=?"
            " ORDER BY updated_at DESC LIMIT 1",
            (owner, server),
        )
        if not rows:
            return None
        row = rows[0]
        try:
            token = self.keys.decrypt(row["token"])
        except Undecryptable:
            return None
        return StoredToken(
            owner=row["owner"],
            server=row["server"],
            issuer=row["issuer"],
            client_ref=row["client_ref"],
            token=token,
            expires_at=row["expires_at"],
            token_endpoint=row["token_endpoint"],
            resource=row["resource"],
            scope=row["scope"],
            version=int(row["version"]),
            updated_at=row["updated_at"],
        )

    async def put_token(
        self,
        *,
        owner: str,
        server: str,
        issuer: str,
        client_ref: str | None,
        token: Mapping[str, Any],
        expires_at: float | None,
        token_endpoint: str,
        resource: str | None,
        scope: str | None,
        replaces: int | None = None,
    ) -> bool:
        """Store the owner's token. With ``replaces`` (a version read before), only if it
        is still that version (a refresh); False when another process changed it."""
        blob = self.keys.encrypt(token)
        values = (blob, expires_at, token_endpoint, resource, scope, client_ref, now())

        async def body(tx: Tx) -> bool:
            if replaces is not None:
                changed = await tx.execute(
                    "UPDATE oauth_tokens SET token=?, expires_at=?, token_endpoint=?,"
                    " resource=?, scope=?, client_ref=?, updated_at=?, version=version+1"
                    " WHERE owner=? AND server=? AND issuer=? AND version=?",
                    (*values, owner, server, issuer, replaces),
                )
                return bool(changed)
            # Signed in: this issuer's token replaces every other of the owner for the server.
            await tx.execute(
                "DELETE FROM oauth_tokens WHERE owner=? AND server=? AND issuer<>?",
                (owner, server, issuer),
            )
            await tx.execute(
                f"INSERT INTO oauth_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
                " ?, 1, ?) ON CONFLICT (owner, server, issuer) DO UPDATE SET"
                " token=excluded.token, expires_at=excluded.expires_at,"
                " token_endpoint=excluded.token_endpoint, resource=excluded.resource,"
                " scope=excluded.scope, client_ref=excluded.client_ref,"
                " updated_at=excluded.updated_at, version=oauth_tokens.version+1",
                (owner, server, issuer, client_ref, *values[:5], values[6]),
            )
            return True

        return await self.db.transaction("oauth_put_token", body)

    async def delete_tokens(self, owner: str, server: str) -> int:
        """Forget the owner's sign-in to the server (and any sign-in asked for)."""

        async def body(tx: Tx) -> int:
            await tx.execute(
                "DELETE FROM oauth_pending WHERE owner=? AND server=?", (owner, server)
            )
            return await tx.execute(
                "DELETE FROM oauth_tokens WHERE owner=? AND server=?", (owner, server)
            )

        return await self.db.transaction("oauth_delete_tokens", body)

    async def delete_token(self, token: StoredToken, *, version: int) -> bool:
        """Forget ``token`` if it is still ``version`` (its refresh was refused)."""

        async def body(tx: Tx) -> int:
            return await tx.execute(
                "DELETE FROM oauth_tokens WHERE owner=? AND server=? AND issuer=? AND version=?",
                (token.owner, token.server, token.issuer, version),
            )

        return bool(await self.db.transaction("oauth_delete_token", body))

    # -- client registrations -------------------------------------------------------------

    async def registration(self, server: str, redirect_uri: str) -> Registration | None:
        """The newest registration in use for the server and redirect URI."""
        return await self._registration(
            "SELECT * FROM oauth_clients WHERE server=? AND redirect_uri=? AND retired=0"
            " ORDER BY created_at DESC LIMIT 1",
            (server, redirect_uri),
        )

    async def registration_by_id(self, ref: str) -> Registration | None:
        """A registration, retired or not (tokens issued to it refresh through it)."""
        return await self._registration("SELECT * FROM oauth_clients WHERE id=?", (ref,))

    async def _registration(self, sql: str, params: tuple[Any, ...]) -> Registration | None:
        rows = await self.db.query("oauth_registration", sql, params)
        if not rows:
            return None
        row = rows[0]
        try:
            info = self.keys.decrypt(row["info"])
        except Undecryptable:
            return None
        return Registration(
            id=row["id"],
            server=row["server"],
            redirect_uri=row["redirect_uri"],
            issuer=row["issuer"],
            info=info,
        )

    async def add_registration(
        self, server: str, redirect_uri: str, issuer: str | None, info: Mapping[str, Any]
    ) -> str:
        ref = "oc_" + secrets.token_urlsafe(12)
        blob = self.keys.encrypt(info)

        async def body(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO oauth_clients (id, server, redirect_uri, issuer, info, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (ref, server, redirect_uri, issuer, blob, now()),
            )

        await self.db.transaction("oauth_add_registration", body)
        return ref

    async def retire_registration(self, ref: str) -> None:
        """Register anew next time (this one was refused); its tokens still refresh."""

        async def body(tx: Tx) -> None:
            await tx.execute("UPDATE oauth_clients SET retired=1 WHERE id=?", (ref,))

        await self.db.transaction("oauth_retire_registration", body)

    # -- sign-ins asked for ---------------------------------------------------------------

    async def live_pending(self, owner: str, server: str) -> tuple[str, PendingSignIn] | None:
        """The sign-in already asked of the owner for the server, if it is still valid:
        its state hash and what it holds."""
        rows = await self.db.query(
            "oauth_live_pending",
            "SELECT * FROM oauth_pending WHERE owner=? AND server=? AND expires_at>?"
            " ORDER BY created_at DESC LIMIT 1",
            (owner, server, time.time()),
        )
        if not rows:
            return None
        row = rows[0]
        found = self._pending(row)
        return None if found is None else (row["state_hash"], found)

    async def put_pending(
        self, state: str, owner: str, server: str, url: str, secret: Mapping[str, Any], ttl: float
    ) -> None:
        """Ask for a sign-in. Links asked before stay good until used or expired (a
        person may open any of them); expired ones go."""
        blob = self.keys.encrypt(secret)

        async def body(tx: Tx) -> None:
            await tx.execute("DELETE FROM oauth_pending WHERE expires_at<?", (time.time(),))
            await tx.execute(
                "INSERT INTO oauth_pending (state_hash, owner, server, url, secret, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (state_hash(state), owner, server, url, blob, now(), time.time() + ttl),
            )

        await self.db.transaction("oauth_put_pending", body)

    async def take_pending(self, state: str) -> PendingSignIn | None:
        """The sign-in asked for with ``state``, removed (it answers once); None when it is
        unknown, used or expired."""

        async def body(tx: Tx) -> Row | None:
            return await tx.fetchrow(
                "DELETE FROM oauth_pending WHERE state_hash=? RETURNING *", (state_hash(state),)
            )

        row = await self.db.transaction("oauth_take_pending", body)
        if row is None or float(row["expires_at"]) < time.time():
            return None
        return self._pending(row)

    def _pending(self, row: Row) -> PendingSignIn | None:
        try:
            secret = self.keys.decrypt(row["secret"])
        except Undecryptable:
            return None
        return PendingSignIn(
            owner=row["owner"],
            server=row["server"],
            url=row["url"],
            secret=secret,
            expires_at=float(row["expires_at"]),
        )

    # -- runs waiting for a sign-in -------------------------------------------------------

    async def waiting(self, owner: str, server: str | None = None) -> list[Approval]:
        """The owner's undecided sign-in items (of every thread, delegations included),
        for ``server`` or every server, oldest first."""
        where, params = ("", (owner,)) if server is None else (" AND a.server=?", (owner, server))
        rows = await self.db.query(
            "oauth_waiting",
            "SELECT a.* FROM approvals a JOIN threads t ON t.id = a.thread_id"
            " WHERE a.kind='authorization' AND a.status='pending' AND t.owner=?"
            f"{where} ORDER BY a.requested_at, a.seq",
            params,
        )
        return [approval_row(r) for r in rows]

    async def approve_waiting(self, owner: str, server: str, reason: str) -> int:
        """Record the owner's sign-in items for ``server`` as given, without running
        anything: a process that serves the threads resumes them (its sweep, or at its
        start), as after a restart. Returns how many."""

        async def body(tx: Tx) -> int:
            return await tx.execute(
                "UPDATE approvals SET status='approved', reason=?, decided_at=?"
                " WHERE kind='authorization' AND status='pending' AND server=?"
                " AND thread_id IN (SELECT id FROM threads WHERE owner=?)",
                (reason, now(), server, owner),
            )

        return await self.db.transaction("oauth_approve_waiting", body)

    async def rotate(self) -> int:
        """Rewrite every secret with the newest key (after a key was put in front of
        ``AGENTS_MCP_SECRET_KEY``); returns how many were rewritten."""
        if self.keys.count < 2:
            return 0
        tables = (("oauth_tokens", "token"), ("oauth_clients", "info"), ("oauth_pending", "secret"))

        async def body(tx: Tx) -> int:
            done = 0
            for table, column in tables:
                for row in await tx.fetch(f"SELECT {column} AS v FROM {table}"):
                    fresh = self.keys.rotate(row["v"])
                    if fresh is not None:
                        await tx.execute(
                            f"UPDATE {table} SET {column}=? WHERE {column}=?", (fresh, row["v"])
                        )
                        done += 1
            return done

        return await self.db.transaction("oauth_rotate", body)
