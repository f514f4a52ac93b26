"""A real OAuth-protected MCP server for tests: fastmcp's in-memory authorization server
(discovery, dynamic registration, PKCE, refresh; ``/authorize`` approves at once) in
front of a FastMCP server whose tools say whose token they got.

``python tests/oauth_server.py PORT LOG [FD]``: streamable HTTP at ``/mcp`` (on the
listening socket FD when given, bound to PORT by the caller). Every tool
call appends ``{"tool", "subject", "client_id", "scopes"}`` to LOG (JSON lines), so a
test counts executions and sees whose token each carried. Test-only routes stand in for
the person at the browser and the operator:

* ``GET /test/login?user=alice``: who signs in at the next ``/authorize``;
* ``GET /test/require?scope=write``: demand one more scope from now on (a step-up);
* ``GET /test/forget``: forget every access token it issued, as a server restarted
  without them would (their refresh tokens still work).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.auth import AccessToken
from fastmcp.server.auth.providers.in_memory import InMemoryOAuthProvider
from fastmcp.server.dependencies import get_access_token
from mcp.server.auth.settings import ClientRegistrationOptions
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse

BROWSER = {"user": "nobody"}


class SubjectProvider(InMemoryOAuthProvider):
    """The in-memory provider, with the signed-in person as each token's subject."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.subject_of: dict[str, str] = {}

    async def authorize(self, client: Any, params: Any) -> str:
        url = await super().authorize(client, params)
        code = list(self.auth_codes)[-1]
        self.subject_of[code] = BROWSER["user"]
        return url

    async def exchange_authorization_code(self, client: Any, authorization_code: Any) -> Any:
        subject = self.subject_of.pop(authorization_code.code, None)
        token = await super().exchange_authorization_code(client, authorization_code)
        self._stamp(token, subject)
        return token

    async def exchange_refresh_token(self, client: Any, refresh_token: Any, scopes: Any) -> Any:
        subject = self.subject_of.get(refresh_token.token)
        token = await super().exchange_refresh_token(client, refresh_token, scopes)
        self._stamp(token, subject)
        return token

    def _stamp(self, token: Any, subject: str | None) -> None:
        old = self.access_tokens[token.access_token]
        fields = old.model_dump(exclude={"claims", "subject"})
        self.access_tokens[token.access_token] = AccessToken(
            **fields, subject=subject, claims={"sub": subject}
        )
        if token.refresh_token:
            self.subject_of[token.refresh_token] = subject or ""


def make_app(port: int, log: str | None) -> Any:
    provider = SubjectProvider(
        base_url=f"http://127.0.0.1:{port}",
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=["read", "write"], default_scopes=["read"]
        ),
        required_scopes=["read"],
    )
    mcp = FastMCP("protected", auth=provider)

    def record(tool: str) -> dict[str, Any]:
        token = get_access_token()
        assert token is not None
        seen = {
            "tool": tool,
            "subject": token.subject,
            "client_id": token.client_id,
            "scopes": sorted(token.scopes),
        }
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps(seen) + "\n")
        return seen

    @mcp.tool
    def whoami() -> dict[str, Any]:
        """Who the token that called this belongs to."""
        return record("whoami")

    @mcp.tool
    def send(text: str) -> str:
        """Send a message as the signed-in person (changes something)."""
        seen = record("send")
        return f"sent {text!r} as {seen['subject']}"

    @mcp.custom_route("/test/login", methods=["GET"])
    async def login(request: Request) -> PlainTextResponse:
        BROWSER["user"] = request.query_params["user"]
        return PlainTextResponse("ok")

    @mcp.custom_route("/test/require", methods=["GET"])
    async def require(request: Request) -> PlainTextResponse:
        provider.required_scopes.append(request.query_params["scope"])
        return PlainTextResponse(" ".join(provider.required_scopes))

    @mcp.custom_route("/test/forget", methods=["GET"])
    async def forget(request: Request) -> JSONResponse:
        forgotten = len(provider.access_tokens)
        provider.access_tokens.clear()
        return JSONResponse({"forgotten": forgotten})

    return mcp.http_app(path="/mcp")


if __name__ == "__main__":
    port, log = int(sys.argv[1]), sys.argv[2] or os.environ.get("DOWNSTREAM_LOG")
    app = make_app(port, log)
    if len(sys.argv) > 3:
        uvicorn.run(app, fd=int(sys.argv[3]), log_level="warning")
    else:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
