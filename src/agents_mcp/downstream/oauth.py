"""OAuth on the HTTP requests to a downstream server: whose token, and consent that waits.

The SDK (``mcp.client.auth.OAuthClientProvider``) does the protocol: protected-resource
and authorization-server discovery with their issuer checks, client registration
(dynamic, or a Client ID Metadata Document), scope selection and step-up, the
``resource`` parameter, and the authorization URL. What is ours:

* **Whose token.** One :class:`OwnerOAuth` per server sits on its HTTP client; for each
  request it makes a fresh SDK provider for the owner in :data:`OWNER` (set by the run:
  :func:`acting_for`), whose token storage is the owner's row in the store
  (:class:`~agents_mcp.downstream.signin.OwnerStorage`). Alice's token is never sent on
  Bob's request, even on a client they share.
* **Consent that waits.** The SDK would hold the request open until a browser comes
  back. Instead our ``redirect_handler`` takes the URL it built, puts our own PKCE pair
  and ``state`` in it (the SDK keeps its verifier to itself), stores what the callback
  needs (``oauth_pending``), and raises :class:`AuthorizationRequired`: the run pauses,
  and the callback, in any process, finishes the exchange (``signin.complete``).
* **Failing soft.** An exception raised inside an ``httpx2.Auth`` flow ends the whole
  streamable-HTTP session, with every other owner's calls on it. So :class:`FailSoft`
  puts it in the caller's box (:func:`auth_box`) and sends the request without a
  token: the server's own 401 fails that one MCP request, before any tool runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import aclosing
from contextvars import ContextVar
from typing import TYPE_CHECKING

import httpx2

from agents_mcp.toolsets import SignIn, ToolOutput

if TYPE_CHECKING:
    import mcp_types as mt

    from agents_mcp.downstream.signin import Accounts

log = logging.getLogger("agents_mcp.downstream.oauth")

OWNER: ContextVar[str | None] = ContextVar("agents_mcp_downstream_owner", default=None)
"""The owner whose run makes the downstream requests of this context."""
_BOX: ContextVar[list[BaseException] | None] = ContextVar("agents_mcp_auth_box", default=None)
_RETRY: ContextVar[bool] = ContextVar("agents_mcp_auth_retry", default=False)


class AuthorizationRequired(Exception):
    """The owner must sign in to ``server`` at ``url`` before the request can go on."""

    def __init__(self, server: str, owner: str, url: str) -> None:
        super().__init__(f"sign-in to {server!r} required")  # never the URL: it goes to logs
        self.server = server
        self.owner = owner
        self.url = url


class TokenChanged(Exception):
    """The token was replaced (refreshed here or by another process) after this request
    went out with the old one: send it again, rather than ask for consent."""


class NoOwner(Exception):
    """A request to an OAuth server made outside any owner's run."""


@contextlib.contextmanager
def acting_for(owner: str | None) -> Iterator[None]:
    """Downstream requests made inside carry ``owner``'s tokens."""
    token = OWNER.set(owner)
    try:
        yield
    finally:
        OWNER.reset(token)


@contextlib.contextmanager
def auth_box(*, retry: bool = False) -> Iterator[list[BaseException]]:
    """Collects what the auth flows of the requests made inside failed with (the
    requests themselves then fail with the server's refusal). ``retry``: this is the
    second attempt after :class:`TokenChanged`; ask for consent rather than refresh."""
    box: list[BaseException] = []
    token, again = _BOX.set(box), _RETRY.set(retry)
    try:
        yield box
    finally:
        _RETRY.reset(again)
        _BOX.reset(token)


def retrying() -> bool:
    return _RETRY.get()


class FailSoft(httpx2.Auth):
    """Runs another auth flow; what it raises goes to the caller's box, never into the
    transport (see the module's docs)."""

    requires_response_body = True  # the SDK's flow reads discovery bodies

    def __init__(self, server: str) -> None:
        self.server = server

    async def inner(self) -> httpx2.Auth:
        """The auth flow to run for this request (may raise: that goes to the box)."""
        raise NotImplementedError

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        try:
            flow = (await self.inner()).async_auth_flow(request)
        except Exception as exc:
            self._note(exc)
            yield request
            return
        async with aclosing(flow):
            response: httpx2.Response | None = None
            while True:
                try:
                    outgoing = await flow.asend(response)  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    self._note(exc)
                    if response is not None:  # sent and refused: send it again, refused again
                        request.headers.pop("Authorization", None)
                    yield request
                    return
                response = yield outgoing

    def _note(self, exc: Exception) -> None:
        box = _BOX.get()
        if box is not None:
            box.append(exc)
        elif not isinstance(exc, AuthorizationRequired | TokenChanged):
            log.info("%s: authorization failed outside a call: %s", self.server, exc)


class OwnerOAuth(FailSoft):
    """``auth = "oauth"``: each request carries the token of the owner in :data:`OWNER`."""

    def __init__(self, accounts: Accounts, server: str) -> None:
        super().__init__(server)
        self.accounts = accounts

    async def inner(self) -> httpx2.Auth:
        owner = OWNER.get()
        if owner is None:
            raise NoOwner(f"{self.server}: a request outside any owner's run")
        return await self.accounts.provider(self.server, owner)


class Shared(FailSoft):
    """``auth = "client_credentials"``: one provider (agents-mcp's own token), failing soft."""

    def __init__(self, server: str, provider: httpx2.Auth) -> None:
        super().__init__(server)
        self.provider = provider

    async def inner(self) -> httpx2.Auth:
        return self.provider


class _QuietPauses(logging.Filter):
    """The SDK logs every exception of its flow with a traceback at ERROR, and a pause
    for consent is one: those records are dropped (the run reports the pause)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, AuthorizationRequired | TokenChanged)


_QUIET = _QuietPauses()


def quiet_sdk_pauses() -> None:
    """Install the filter (once) on the SDK's OAuth logger."""
    sdk = logging.getLogger("mcp.client.auth.oauth2")
    if _QUIET not in sdk.filters:
        sdk.addFilter(_QUIET)


class NotAuthorized(Exception):
    """A server's tools cannot be listed: the owner must sign in first (``sign_in``), or
    authorizing failed (``reason`` says why)."""

    def __init__(self, reason: str, sign_in: SignIn | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sign_in = sign_in


def sign_in_of(box: list[BaseException]) -> AuthorizationRequired | None:
    """The sign-in a failed request waits for, if that is why it failed."""
    return next((e for e in box if isinstance(e, AuthorizationRequired)), None)


def wants_retry(box: list[BaseException]) -> bool:
    return any(isinstance(e, TokenChanged) for e in box)


def auth_error(box: list[BaseException], server: str) -> str:
    """Why authorizing a request to ``server`` failed, for the model and the caller."""
    exc = box[0]
    if isinstance(exc, NoOwner):
        return (
            f'server {server!r} signs each person in (auth = "oauth"), and this request'
            " is nobody's"
        )
    if isinstance(exc, TokenChanged):
        return f"server {server!r} refused the token again after it was renewed"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"authorization with server {server!r} failed: {text}"


async def signed(server: str, call: Callable[[], Awaitable[ToolOutput]]) -> ToolOutput:
    """Make a call to an OAuth server: once more when the token was replaced meanwhile;
    when the owner must sign in, an output saying where (the call did not run)."""
    for retry in (False, True):
        with auth_box(retry=retry) as box:
            out = await call()
        if out.ok or not box:
            return out
        if (need := sign_in_of(box)) is not None:
            text = f"Error: {server} needs the user to sign in first; the call did not run"
            return ToolOutput(text=text, ok=False, sign_in=SignIn(server=server, url=need.url))
        if not (wants_retry(box) and not retry):
            break
    return ToolOutput(text=f"Error: {auth_error(box, server)}", ok=False)


async def listed(server: str, fetch: Callable[[], Awaitable[list[mt.Tool]]]) -> list[mt.Tool]:
    """List an OAuth server's tools as :func:`signed` makes a call; raises
    :class:`NotAuthorized` when the owner must sign in first, or authorizing failed."""
    for retry in (False, True):
        with auth_box(retry=retry) as box:
            try:
                return await fetch()
            except Exception as exc:
                if not box:
                    raise
                if (need := sign_in_of(box)) is not None:
                    sign_in = SignIn(server=server, url=need.url)
                    raise NotAuthorized("the user has not signed in to it yet", sign_in) from None
                if not (wants_retry(box) and not retry):
                    raise NotAuthorized(auth_error(box, server)) from exc
    raise AssertionError("unreachable")
