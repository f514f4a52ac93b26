"""Who is calling: bearer tokens and JWTs turned into an owner name and roles.

Part of the server layer (only ``server`` imports it). Over HTTP every request carries a
bearer token, checked by :class:`OwnerVerifier`, a fastmcp ``TokenVerifier``:

* static tokens, ``[server.tokens.<owner>]`` (``token`` or its ``sha256``), and the older
  ``auth_tokens`` (each its own owner, named by :func:`token_owner`). Only SHA-256 digests
  are kept; a presented token is hashed and compared with every digest in constant time;
* JWT access tokens (``[server.jwt]``), checked by fastmcp's ``JWTVerifier`` (signature,
  algorithm, ``exp``, issuer, audience) plus what it leaves out: ``nbf``, a required
  ``exp`` and the owner claim, which must be an owner name as in ``[server.tokens]``.

Why a token was refused, when it is worth telling the client, is kept for the request
(:func:`refusal`) so that the 401 says it (see ``challenge``).

Both give a fastmcp ``AccessToken`` whose ``subject`` is the owner and whose
``claims[ROLES_CLAIM]`` are the roles, so ``get_access_token()`` and :func:`current_caller`
work anywhere in a request. Without a token (stdio, loopback HTTP without tokens) the
caller is the ``local`` owner.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from fastmcp.server.auth import AccessToken, AuthProvider, RemoteAuthProvider, TokenVerifier
from fastmcp.server.dependencies import get_access_token
from pydantic import AnyHttpUrl, ConfigDict, TypeAdapter, ValidationError

from agents_mcp.config import JWTConfig, OwnerName, ServerSettings
from agents_mcp.store import LOCAL_OWNER

log = logging.getLogger("agents_mcp.server.auth")

OWNER_CLAIM = "agents-mcp/owner"
ROLES_CLAIM = "agents-mcp/roles"
"""Where an ``AccessToken`` of ours carries the owner and the roles."""


@dataclass(frozen=True)
class Caller:
    """The owner of a request and the roles it holds."""

    owner: str
    roles: frozenset[str] = frozenset()

    @property
    def local(self) -> bool:
        """stdio, the CLI, or loopback HTTP without tokens: the operator's own machine."""
        return self.owner == LOCAL_OWNER


LOCAL = Caller(LOCAL_OWNER)

_REFUSAL: ContextVar[str | None] = ContextVar("agents_mcp_refusal", default=None)
_OWNER_NAME: TypeAdapter[str] = TypeAdapter(OwnerName)


def refusal() -> str | None:
    """Why the bearer token of this request was refused, when the client should know."""
    return _REFUSAL.get()


def _refuse(why: str) -> None:
    log.info("JWT refused: %s", why)
    _REFUSAL.set(why)


def current_caller() -> Caller:
    """The caller of the request being handled (``local`` without a token)."""
    token = get_access_token()
    if token is None:
        return LOCAL
    # The person (subject) owns threads, not the OAuth client they came through.
    owner = token.subject or token.client_id or LOCAL_OWNER
    roles = token.claims.get(ROLES_CLAIM) or ()
    return Caller(owner, frozenset(str(r) for r in roles))


def token_owner(token: str) -> str:
    """The owner of an ``auth_tokens`` entry: stable, without storing the token."""
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _access_token(
    token: str, owner: str, roles: Sequence[str], claims: Mapping[str, Any] | None = None
) -> AccessToken:
    return AccessToken(
        token=token,
        client_id=owner,
        scopes=[],
        subject=owner,
        claims={**(claims or {}), OWNER_CLAIM: owner, ROLES_CLAIM: list(roles)},
    )


@dataclass(frozen=True)
class _Static:
    owner: str
    digest: bytes
    roles: tuple[str, ...]


class OwnerVerifier(TokenVerifier):
    """Static tokens first (constant time), then JWTs when ``[server.jwt]`` is set."""

    def __init__(self, settings: ServerSettings) -> None:
        super().__init__()
        static = [
            _Static(owner, bytes.fromhex(entry.digest()), tuple(entry.roles))
            for owner, entry in settings.tokens.items()
        ]
        for secret in settings.auth_tokens:
            token = secret.get_secret_value()
            static.append(_Static(token_owner(token), hashlib.sha256(token.encode()).digest(), ()))
        self._static = static
        self._jwt = OwnerJWT(settings.jwt) if settings.jwt is not None else None

    def _match(self, token: str) -> _Static | None:
        presented = hashlib.sha256(token.encode()).digest()
        found = None
        for entry in self._static:  # no early exit: every comparison costs the same
            if hmac.compare_digest(presented, entry.digest):
                found = entry
        return found

    async def verify_token(self, token: str) -> AccessToken | None:
        _REFUSAL.set(None)
        entry = self._match(token)
        if entry is not None:
            return _access_token(token, entry.owner, entry.roles)
        if self._jwt is not None and token.count(".") == 2:
            return await self._jwt.verify_token(token)
        return None


class OwnerJWT(TokenVerifier):
    """fastmcp's ``JWTVerifier`` (signature, algorithm, ``exp``, issuer, audience), then
    ``nbf``, a required ``exp`` and the owner and roles from the configured claims."""

    def __init__(self, config: JWTConfig) -> None:
        super().__init__()
        # Imported on demand: it pulls in joserfc and cryptography.
        from fastmcp.server.auth.providers.jwt import JWTVerifier

        self._config = config
        self._jwt = JWTVerifier(
            jwks_uri=config.jwks_url,
            public_key=config.public_key,
            issuer=config.issuer,
            audience=config.audience,
            algorithm=config.algorithm,
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            checked = await self._jwt.verify_token(token)
        except Exception as exc:  # e.g. the JWKS endpoint is down: refuse, never crash
            log.warning("JWT refused: cannot verify it: %s", type(exc).__name__)
            return None
        if checked is None:
            return None
        return _claims_to_owner(token, checked.claims, self._config)


def _claims_to_owner(
    token: str, claims: Mapping[str, Any], config: JWTConfig
) -> AccessToken | None:
    """The verified claims as our access token, or None for what ``JWTVerifier`` lets by."""
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float):
        _refuse("the token has no exp claim (access tokens must expire)")
        return None
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > now):
        _refuse("the token is not valid yet (nbf)")
        return None
    owner = claims.get(config.owner_claim)
    if not _usable_owner(owner):
        name = config.owner_claim.replace('"', "'")
        _refuse(
            f"the token's {name!r} claim is not a usable owner name: it must be 1 to 128"
            " characters, without spaces or control characters, not 'local' and not"
            " starting with 'role:'"
        )
        return None
    assert isinstance(owner, str)
    raw = claims.get(config.roles_claim)
    if isinstance(raw, str):  # some servers send "a b c", like the scope claim
        roles = raw.split()
    else:
        roles = [r for r in raw if isinstance(r, str)] if isinstance(raw, list) else []
    checked = _access_token(token, owner, roles, claims)
    return checked.model_copy(update={"expires_at": int(exp)})


def _usable_owner(owner: object) -> bool:
    """Whether a JWT's owner claim is an owner name, as ``[server.tokens.<owner>]`` keys are."""
    if not isinstance(owner, str) or owner == LOCAL_OWNER:
        return False
    try:
        _OWNER_NAME.validate_python(owner)
    except ValidationError:
        return False
    return True


_ISSUER_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(
    AnyHttpUrl, config=ConfigDict(url_preserve_empty_path=True)
)
"""An http(s) URL kept as written: ``https://auth.example.com`` gets no ``/`` added, so the
metadata document names the issuer exactly as tokens carry it in ``iss``."""


def server_auth(settings: ServerSettings, *, host: str, port: int) -> AuthProvider | None:
    """The auth provider for HTTP, or None when no tokens are configured.

    With ``[server.jwt]`` it also serves the protected-resource metadata document
    (RFC 9728) naming the authorization servers, so MCP clients can find where to log in.
    """
    if not settings.authenticates:
        return None
    verifier = OwnerVerifier(settings)
    jwt = settings.jwt
    if jwt is None:
        return verifier
    resource = jwt.resource_url or f"http://{_url_host(host)}:{port}/mcp"
    base = resource.rstrip("/").removesuffix("/mcp")
    return RemoteAuthProvider(
        token_verifier=verifier,
        authorization_servers=[_ISSUER_URL.validate_python(str(s)) for s in jwt.servers],
        base_url=base,
        resource_name="agents-mcp",
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
