"""What a client refused at ``/mcp`` is told: how to get in.

fastmcp answers a request without a token with an empty 401 and ``WWW-Authenticate:
Bearer``, and one with a bad token with advice for OAuth clients ("re-register and obtain
new tokens"). With static tokens there is nothing to register with, and an OAuth-capable
client (a host's SDK with an auth provider) probes the well-known documents and then
``POST /register``, which answer 404, and ends with an unreadable "Invalid OAuth error
response". So :class:`Challenge`, around the app:

* rewrites a 401 from the MCP endpoint: a JSON body and an ``error_description`` saying
  what to send (``Authorization: Bearer <token>``, a token of ``[server.tokens]``), or why
  the token was refused when we know (a JWT's owner claim, see ``auth.refusal``); the
  metadata link of ``[server.jwt]`` stays in the header;
* with static tokens only, answers ``POST /register`` (where such clients end up) with an
  OAuth-shaped error whose description says the same, so they show it.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents_mcp.server.auth import refusal

_SEND = "send the header 'Authorization: Bearer <token>' with a token configured under"
STATIC_MISSING = (
    f"this agents-mcp server needs a bearer token: {_SEND} [server.tokens.<owner>] in its"
    " config (the operator of the server gives it out)"
)
STATIC_INVALID = (
    f"the bearer token is not one this agents-mcp server knows: {_SEND}"
    " [server.tokens.<owner>] in its config"
)
JWT_MISSING = (
    "this agents-mcp server needs a bearer token: send the header 'Authorization: Bearer"
    " <token>' with an access token of the authorization server named in the document at"
    " resource_metadata, or a token configured under [server.tokens.<owner>] in its config"
)
JWT_INVALID = (
    "the bearer token is invalid or expired: get a new access token from the authorization"
    " server named in the document at resource_metadata, or send 'Authorization: Bearer"
    " <token>' with a token configured under [server.tokens.<owner>] in this server's config"
)
NO_REGISTRATION = (
    "this agents-mcp server takes static bearer tokens, not a login: configure the client"
    f" to {_SEND} [server.tokens.<owner>] in the server's config"
)
_METADATA = re.compile(r'resource_metadata="[^"]*"')


class Challenge:
    """ASGI middleware: the 401s of ``mcp_path`` rewritten, and ``/register`` answered
    when ``static`` (no ``[server.jwt]``)."""

    def __init__(self, app: ASGIApp, *, mcp_path: str, static: bool) -> None:
        self.app = app
        self.mcp_path = mcp_path.rstrip("/")
        self.static = static

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"]).rstrip("/")
        if self.static and path == "/register" and scope["method"] == "POST":
            body = {"error": "invalid_request", "error_description": NO_REGISTRATION}
            await _send_json(send, 404, body, [])
            return
        if path != self.mcp_path:
            await self.app(scope, receive, send)
            return
        bearer = any(
            name.lower() == b"authorization" and value[:7].lower() == b"bearer "
            for name, value in scope["headers"]
        )
        await self.app(scope, receive, _Rewrite(send, bearer=bearer, static=self.static))


class _Rewrite:
    """A ``send`` that replaces a 401 response (its headers and body) with ours."""

    def __init__(self, send: Send, *, bearer: bool, static: bool) -> None:
        self._send = send
        self._bearer = bearer
        self._static = static
        self._replacing = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 401:
            self._replacing = True
            await self._unauthorized(dict(message.get("headers", [])))
            return
        if self._replacing:
            return  # fastmcp's body: ours went with the headers
        await self._send(message)

    async def _unauthorized(self, headers: dict[bytes, bytes]) -> None:
        original = headers.get(b"www-authenticate", b"").decode("latin-1")
        params = ['realm="agents-mcp"']
        if self._bearer:
            why = refusal() or (STATIC_INVALID if self._static else JWT_INVALID)
            error = "invalid_token"
            params += [f'error="{error}"', f'error_description="{_quotable(why)}"']
        else:
            why = STATIC_MISSING if self._static else JWT_MISSING
            error = "invalid_request"  # RFC 6750 3.1: no error code in the header here
        params += _METADATA.findall(original)
        challenge = ("Bearer " + ", ".join(params)).encode("latin-1", "replace")
        body = {"error": error, "error_description": why}
        await _send_json(self._send, 401, body, [(b"www-authenticate", challenge)])


def _quotable(text: str) -> str:
    """``text`` for a quoted-string of a header: no quotes, backslashes or non-ASCII."""
    return text.replace("\\", "/").replace('"', "'").encode("ascii", "replace").decode()


async def _send_json(
    send: Send, status: int, body: dict[str, str], headers: list[tuple[bytes, bytes]]
) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
