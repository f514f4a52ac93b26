"""Sign-ins to downstream servers: one :class:`Accounts` per process, over the store.

It makes the per-request SDK provider of an owner (:meth:`Accounts.provider`, used by
``oauth.OwnerOAuth``), turns the SDK's wish to send a browser somewhere into a stored
pending sign-in and a pause (:meth:`Accounts._ask`), and finishes a sign-in when the
browser comes back (:meth:`Accounts.callback`, from the HTTP server's
``/oauth/callback`` or the loopback listener), then tells whoever waits
(``on_signed_in``: the runs resume).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import httpx2
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, PKCEParameters
from mcp.client.auth.utils import union_scopes
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream.exchange import SignedIn, SignInFailed, TokenEndpoint, expired
from agents_mcp.downstream.oauth import (
    AuthorizationRequired,
    OwnerOAuth,
    Shared,
    TokenChanged,
    quiet_sdk_pauses,
    retrying,
)
from agents_mcp.errors import ConfigError
from agents_mcp.store.tokens import TokenStore

log = logging.getLogger("agents_mcp.downstream.oauth")

PENDING_TTL = 24 * 3600.0
"""How long a sign-in link stays good (the state and PKCE verifier are kept that long)."""
_SAME_LINK = ("client_id", "scope", "resource", "redirect_uri")

SignedInHook = Callable[[SignedIn], Awaitable[None]]
RefusedHook = Callable[[SignInFailed], Awaitable[None]]


class OwnerStorage:
    """The SDK's ``TokenStorage`` for one owner and server, over the store: the owner's
    token (refreshed first when it expired) and the server's client registration."""

    def __init__(self, accounts: Accounts, server: str, owner: str) -> None:
        self.accounts = accounts
        self.server = server
        self.owner = owner
        self.sent_version: int | None = None
        """The version of the token handed to the SDK for this request."""
        self.client_ref: str | None = None
        """The registration in use (None: the configured client, or none yet)."""

    async def get_tokens(self) -> OAuthToken | None:
        stored = await self.accounts.endpoint.fresh(self.owner, self.server)
        if stored is None:
            return None
        self.sent_version = stored.version
        return OAuthToken.model_validate(stored.token)

    async def set_tokens(self, tokens: OAuthToken) -> None:
        # Only the SDK's own refresh would call this, and it never refreshes a token it
        # loaded (it does not know its expiry): tokens are stored by the callback.
        log.debug("%s: the SDK offered a token to store; ignored", self.server)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        a = self.accounts
        configured = await a.endpoint.client(self.server, None)
        if configured is not None:
            return configured
        reg = await a.tokens.registration(self.server, a.redirect_uri)
        if reg is None:
            return None
        self.client_ref = reg.id
        return OAuthClientInformationFull.model_validate(reg.info)

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        info = client_info.model_dump(mode="json", exclude_none=True)
        a = self.accounts
        self.client_ref = await a.tokens.add_registration(
            self.server, a.redirect_uri, client_info.issuer, info
        )
        log.info("%s: registered client %s", self.server, client_info.client_id)


async def _no_callback() -> AuthorizationCodeResult:
    raise AssertionError("unreachable: the redirect handler always raises")


class Accounts:
    """The sign-ins of every owner to every ``auth = "oauth"`` server, in the store."""

    def __init__(
        self,
        tokens: TokenStore,
        configs: Mapping[str, DownstreamServerConfig],
        redirect_uri: str,
        *,
        client_name: str = "agents-mcp",
    ) -> None:
        self.tokens = tokens
        self.configs = dict(configs)
        self.redirect_uri = redirect_uri
        self.client_name = client_name
        self.endpoint = TokenEndpoint(tokens, self.configs, redirect_uri)
        self.on_asked: Callable[[], Awaitable[None]] | None = None
        """Called when a sign-in is asked for (the CLI starts its loopback listener)."""
        self.on_signed_in: SignedInHook | None = None
        """Called when a sign-in landed (the runs waiting for it resume)."""
        self.on_refused: RefusedHook | None = None
        self._asking: dict[tuple[str, str], anyio.Lock] = {}
        quiet_sdk_pauses()

    async def aclose(self) -> None:
        await self.endpoint.aclose()

    def _metadata(self, config: DownstreamServerConfig) -> OAuthClientMetadata:
        host = urlsplit(self.redirect_uri).hostname or ""
        loopback = host in ("127.0.0.1", "localhost", "::1")
        return OAuthClientMetadata(
            redirect_uris=[self.redirect_uri],
            client_name=self.client_name,
            token_endpoint_auth_method="none",  # a public client, with PKCE
            grant_types=["authorization_code", "refresh_token"],
            scope=" ".join(config.scopes) or None,
            application_type="native" if loopback else "web",
        )

    async def provider(self, server: str, owner: str) -> OAuthClientProvider:
        """A fresh SDK provider for one request of ``owner`` to ``server``."""
        config = self.configs[server]
        assert config.url is not None
        storage = OwnerStorage(self, server, owner)

        async def redirect_handler(url: str) -> None:
            await self._ask(provider, storage, url)

        provider = OAuthClientProvider(
            config.url,
            self._metadata(config),
            storage,
            redirect_handler=redirect_handler,
            callback_handler=_no_callback,
            client_metadata_url=config.client_metadata_url,
        )
        return provider

    async def _ask(self, provider: OAuthClientProvider, storage: OwnerStorage, url: str) -> None:
        """The SDK wants the owner at ``url``: retry if a token arrived meanwhile, else
        pause with a link of our own (same one while the same sign-in is asked)."""
        server, owner = storage.server, storage.owner
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        if not retrying():
            await self._instead_of_consent(storage, query.get("scope"))
        async with self._asking.setdefault((owner, server), anyio.Lock()):  # one link at once
            await self._link(provider, storage, parts, query)

    async def _link(
        self,
        provider: OAuthClientProvider,
        storage: OwnerStorage,
        parts: SplitResult,
        query: dict[str, str],
    ) -> None:
        server, owner = storage.server, storage.owner
        scope = union_scopes(query.get("scope"), " ".join(self.configs[server].scopes) or None)
        if scope:
            query["scope"] = scope
        live = await self.tokens.live_pending(owner, server)
        if live is not None and _same_link(live[1].url, parts, query):
            raise AuthorizationRequired(server, owner, live[1].url)
        pkce = PKCEParameters.generate()
        state = secrets.token_urlsafe(32)
        query.update(state=state, code_challenge=pkce.code_challenge, code_challenge_method="S256")
        ours = urlunsplit(parts._replace(query=urlencode(query)))
        context = provider.context  # what the SDK just discovered and checked
        metadata = context.oauth_metadata
        secret: dict[str, Any] = {
            "code_verifier": pkce.code_verifier,
            "redirect_uri": query.get("redirect_uri", self.redirect_uri),
            "client_ref": storage.client_ref,
            "resource": query.get("resource"),
            "scope": scope,
            "as_metadata": metadata.model_dump(mode="json", exclude_none=True)
            if metadata is not None
            else None,
            "authorize_origin": f"{parts.scheme}://{parts.netloc}",
            "issuer": context.client_info.issuer if context.client_info else None,
        }
        await self.tokens.put_pending(state, owner, server, ours, secret, PENDING_TTL)
        log.info("%s: sign-in asked of %s", server, owner)
        if self.on_asked is not None:
            await self.on_asked()
        raise AuthorizationRequired(server, owner, ours)

    async def _instead_of_consent(self, storage: OwnerStorage, scope: str | None) -> None:
        """Raise :class:`TokenChanged` when a retry may do instead of a sign-in: a newer
        token is there (signed in or refreshed elsewhere meanwhile), or the one refused
        still refreshes and covers ``scope``."""
        current = await self.tokens.token(storage.owner, storage.server)
        if current is None or expired(current):
            return
        if current.version != storage.sent_version:
            raise TokenChanged(storage.server)
        wanted = set((scope or "").split())
        covered = wanted <= set((current.scope or "").split())
        if covered and current.token.get("refresh_token") and await self.endpoint.refresh(current):
            raise TokenChanged(storage.server)

    async def callback(self, params: Mapping[str, str]) -> tuple[bool, str]:
        """The browser came back (``/oauth/callback``): finish the sign-in and tell who
        waits. Returns whether it worked and what to tell the person."""
        state = params.get("state")
        if not state:
            return False, "This page finishes a sign-in; it was opened without one."
        try:
            signed = await self.endpoint.complete(
                state, params.get("code"), params.get("iss"), params.get("error")
            )
        except SignInFailed as exc:
            if exc.owner is not None and self.on_refused is not None:
                await self.on_refused(exc)
            return False, str(exc)
        if self.on_signed_in is not None:
            await self.on_signed_in(signed)
        return True, f"Signed in to {signed.server}. You can close this tab: the agent goes on."

    async def sign_out(self, owner: str, server: str) -> bool:
        """Forget ``owner``'s sign-in to ``server``; False when there was none."""
        gone = await self.tokens.delete_tokens(owner, server)
        if gone:
            log.info("%s signed out of %s", owner, server)
        return gone > 0


def _same_link(live: str, parts: SplitResult, query: Mapping[str, str]) -> bool:
    """Whether the link already shown asks for the same thing (client, scope, resource,
    redirect, authorization endpoint): after a new registration or a step-up it does not."""
    old = urlsplit(live)
    asked = dict(parse_qsl(old.query))
    same_endpoint = (old.scheme, old.netloc, old.path) == (parts.scheme, parts.netloc, parts.path)
    return same_endpoint and all(asked.get(k) == query.get(k) for k in _SAME_LINK)


def http_auth(
    name: str, config: DownstreamServerConfig, accounts: Accounts | None
) -> httpx2.Auth | None:
    """What authenticates the requests to the server ``name`` (None: its own headers)."""
    if config.auth == "client_credentials":
        return Shared(name, client_credentials(config))
    if config.auth != "oauth":
        return None
    if accounts is None:
        raise ConfigError(
            f'server {name!r} signs each person in (auth = "oauth"): it answers a run of a'
            f" signed-in owner, not here; `agents-mcp login {name}` signs you in"
        )
    return OwnerOAuth(accounts, name)


def client_credentials(config: DownstreamServerConfig) -> httpx2.Auth:
    """fastmcp's client-credentials provider: a client secret, or a private-key JWT."""
    from fastmcp.client.auth import (
        ClientCredentialsOAuthProvider,
        PrivateKeyJWTOAuthProvider,
        SignedJWTParameters,
    )

    assert config.client_id is not None and config.url is not None
    scopes = list(config.scopes) or None
    if config.private_key is not None:
        signed = SignedJWTParameters(
            issuer=config.client_id,
            subject=config.client_id,
            signing_key=config.private_key.get_secret_value(),
            signing_algorithm=config.signing_algorithm,
        )
        return PrivateKeyJWTOAuthProvider(
            mcp_url=config.url,
            client_id=config.client_id,
            assertion_provider=signed.create_assertion_provider(),
            scopes=scopes,
            issuer=config.issuer,
        )
    assert config.client_secret is not None
    return ClientCredentialsOAuthProvider(
        mcp_url=config.url,
        client_id=config.client_id,
        client_secret=config.client_secret.get_secret_value(),
        scopes=scopes,
        issuer=config.issuer,
    )
