"""The token endpoint: the code exchange that ends a sign-in, and refreshes.

Both are ours rather than the SDK's, because the two halves of a sign-in run apart (the
SDK keeps its PKCE verifier in a local variable, and never refreshes a token it loaded
from storage, whose expiry it does not know). They are a form POST each, with the
client authentication the SDK uses (RFC 6749 §2.3.1: ``client_secret_basic`` with the
id and secret URL-encoded, ``client_secret_post``, or ``none``), and the SDK's public
helpers for what comes back (the RFC 9207 ``iss`` check, the token response).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

import anyio
import httpx2
from mcp.client.auth import OAuthFlowError
from mcp.client.auth.utils import (
    handle_token_response_scopes,
    validate_authorization_response_iss,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken
from pydantic import ValidationError

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.store.tokens import StoredToken, TokenStore

log = logging.getLogger("agents_mcp.downstream.oauth")

REFRESH_SKEW = 60.0
"""Seconds before its expiry a token is refreshed rather than sent."""


@dataclass(frozen=True)
class SignedIn:
    """A sign-in that landed: whose, to which server, with which authorization server."""

    owner: str
    server: str
    issuer: str
    scope: str | None


class SignInFailed(Exception):
    """The callback could not finish the sign-in; the message is for the person."""

    def __init__(
        self,
        message: str,
        *,
        owner: str | None = None,
        server: str | None = None,
        refused: bool = False,
        again: bool = False,
    ) -> None:
        super().__init__(message)
        self.owner = owner
        self.server = server
        self.refused = refused
        """The person (or the authorization server) refused: the calls waiting do not run."""
        self.again = again
        """Asking again may work (a new registration with the scope asked for)."""


def expired(token: StoredToken) -> bool:
    return token.expires_at is not None and token.expires_at - REFRESH_SKEW <= time.time()


def configured_client(
    config: DownstreamServerConfig, redirect_uri: str
) -> OAuthClientInformationFull | None:
    """The client registered beforehand (``client_id``, ``client_secret``), if any."""
    if config.client_id is None:
        return None
    secret = config.client_secret.get_secret_value() if config.client_secret else None
    return OAuthClientInformationFull(
        client_id=config.client_id,
        client_secret=secret,
        redirect_uris=[redirect_uri],
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        grant_types=["authorization_code", "refresh_token"],
    )


def client_auth(
    info: OAuthClientInformationFull, data: dict[str, str], headers: dict[str, str]
) -> None:
    """Authenticate the client at the token endpoint, as the SDK does."""
    method = info.token_endpoint_auth_method
    if method == "client_secret_basic" and info.client_secret:
        pair = f"{quote(info.client_id, safe='')}:{quote(info.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif method == "client_secret_post" and info.client_secret:
        data["client_secret"] = info.client_secret
    elif method not in (None, "none", "client_secret_basic", "client_secret_post"):
        raise OAuthFlowError(f"unsupported token_endpoint_auth_method {method!r}")


class TokenEndpoint:
    """Refreshes and code exchanges for every server, on one HTTP client."""

    def __init__(
        self,
        tokens: TokenStore,
        configs: Mapping[str, DownstreamServerConfig],
        redirect_uri: str,
    ) -> None:
        self.tokens = tokens
        self.configs = configs
        self.redirect_uri = redirect_uri
        self.http = httpx2.AsyncClient(timeout=30.0, follow_redirects=False)
        self._locks: dict[tuple[str, str], anyio.Lock] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    async def client(self, server: str, ref: str | None) -> OAuthClientInformationFull | None:
        """The client a token was issued to: a registration, or the configured client."""
        if ref is None:
            return configured_client(self.configs[server], self.redirect_uri)
        found = await self.tokens.registration_by_id(ref)
        if found is None:
            return None
        return OAuthClientInformationFull.model_validate(found.info)

    async def _post(
        self, url: str, data: dict[str, str], info: OAuthClientInformationFull
    ) -> httpx2.Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        client_auth(info, data, headers)
        return await self.http.post(url, data=data, headers=headers)

    async def fresh(self, owner: str, server: str) -> StoredToken | None:
        """The owner's token for the server, refreshed first when it (nearly) expired;
        None without a usable one (the server's 401 then asks for a sign-in)."""
        stored = await self.tokens.token(owner, server)
        if stored is None or not expired(stored):
            return stored
        if not stored.token.get("refresh_token"):
            return None
        return await self.refresh(stored)

    async def refresh(self, stored: StoredToken) -> StoredToken | None:
        """Refresh ``stored`` (one refresh at a time per owner and server here, and a
        compare-and-swap against other processes); None when it cannot be refreshed."""
        key = (stored.owner, stored.server)
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            latest = await self.tokens.token(*key)
            if latest is None or latest.version != stored.version:
                return latest if latest is None or not expired(latest) else None
            info = await self.client(latest.server, latest.client_ref)
            refresh_token = latest.token.get("refresh_token")
            if info is None or not refresh_token:
                return None
            data = {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": info.client_id,
            }
            if latest.resource:
                data["resource"] = latest.resource
            try:
                response = await self._post(latest.token_endpoint, data, info)
                if response.status_code != 200:
                    log.info("%s: refresh for %s refused (%d)", *key[::-1], response.status_code)
                    if response.status_code in (400, 401):  # the grant is gone: sign in again
                        await self.tokens.delete_token(latest, version=latest.version)
                    return None
                fresh = OAuthToken.model_validate_json(await response.aread())
            except (httpx2.HTTPError, ValidationError, OAuthFlowError) as exc:
                log.info("%s: refresh for %s failed: %s", latest.server, latest.owner, exc)
                return None
            return await self._store_refreshed(latest, fresh)

    async def _store_refreshed(self, latest: StoredToken, fresh: OAuthToken) -> StoredToken | None:
        if fresh.refresh_token is None:  # not rotated: the old one still refreshes
            fresh.refresh_token = latest.token.get("refresh_token")
        scope = fresh.scope or latest.scope
        await self.tokens.put_token(
            owner=latest.owner,
            server=latest.server,
            issuer=latest.issuer,
            client_ref=latest.client_ref,
            token=_token_json(fresh, scope),
            expires_at=_expires_at(fresh),
            token_endpoint=latest.token_endpoint,
            resource=latest.resource,
            scope=scope,
            replaces=latest.version,
        )  # lost the race: another process refreshed; theirs is as good
        log.debug("%s: token of %s refreshed", latest.server, latest.owner)
        return await self.tokens.token(latest.owner, latest.server)

    async def complete(
        self, state: str, code: str | None, iss: str | None, error: str | None
    ) -> SignedIn:
        """The callback half of a sign-in (any process): exchange the code for a token
        with the verifier kept for ``state``, and store it encrypted."""
        pending = await self.tokens.take_pending(state)
        if pending is None:
            raise SignInFailed(
                "This sign-in link was already used, or it has expired. Go back to the"
                " conversation: the agent asks again when it needs to."
            )
        owner, server, s = pending.owner, pending.server, pending.secret
        if error is not None or not code:
            await self._refused(server, s, error)
            raise SignInFailed(
                f"The sign-in to {server} was refused ({error or 'no code'}).",
                owner=owner,
                server=server,
                refused=error == "access_denied",
                again=error == "invalid_scope",
            )
        metadata = OAuthMetadata.model_validate(s["as_metadata"]) if s.get("as_metadata") else None
        try:
            validate_authorization_response_iss(iss, metadata)  # RFC 9207
        except OAuthFlowError as exc:
            raise SignInFailed(f"The sign-in to {server} was refused: {exc}.") from None
        token_endpoint = (
            str(metadata.token_endpoint)
            if metadata is not None
            else urljoin(s["authorize_origin"], "/token")  # no metadata: 2025-03-26 defaults
        )
        token = await self._exchange(server, s, code, token_endpoint)
        scope = token.scope or s.get("scope")
        issuer = str(metadata.issuer) if metadata is not None else s.get("issuer") or ""
        await self.tokens.put_token(
            owner=owner,
            server=server,
            issuer=issuer,
            client_ref=s.get("client_ref"),
            token=_token_json(token, scope),
            expires_at=_expires_at(token),
            token_endpoint=token_endpoint,
            resource=s.get("resource"),
            scope=scope,
        )
        log.info("%s signed in to %s (issuer %s, scope %s)", owner, server, issuer, scope)
        return SignedIn(owner, server, issuer, scope)

    async def _exchange(
        self, server: str, s: Mapping[str, Any], code: str, token_endpoint: str
    ) -> OAuthToken:
        info = await self.client(server, s.get("client_ref"))
        if info is None:
            raise SignInFailed(f"The client registration for {server} is gone; sign in again.")
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": s["redirect_uri"],
            "client_id": info.client_id,
            "code_verifier": s["code_verifier"],
        }
        if s.get("resource"):
            data["resource"] = s["resource"]
        try:
            response = await self._post(token_endpoint, data, info)
        except httpx2.HTTPError as exc:
            why = f"{server}'s authorization server cannot be reached ({exc})."
            raise SignInFailed(why) from None
        if response.status_code not in (200, 201):
            why = _error_code(response)
            raise SignInFailed(f"{server}'s authorization server refused the sign-in ({why}).")
        return await handle_token_response_scopes(response)

    async def _refused(self, server: str, secret: Mapping[str, Any], error: str | None) -> None:
        ref = secret.get("client_ref")
        if error == "invalid_scope" and ref is not None:
            # Registered for less than is asked now (a step-up): register anew next time;
            # tokens issued to the old registration still refresh through it.
            await self.tokens.retire_registration(ref)
        log.info("%s: sign-in refused: %s", server, error)


def _token_json(token: OAuthToken, scope: str | None) -> dict[str, Any]:
    data = token.model_dump(mode="json", exclude_none=True, exclude={"expires_in"})
    if scope is not None:
        data["scope"] = scope
    return data


def _expires_at(token: OAuthToken) -> float | None:
    return None if token.expires_in is None else time.time() + token.expires_in


def _error_code(response: httpx2.Response) -> str:
    """The OAuth ``error`` of a refusal (never the rest of its body), else its status."""
    try:
        error = response.json().get("error")
    except ValueError:
        error = None
    return f"{error}, HTTP {response.status_code}" if error else f"HTTP {response.status_code}"
