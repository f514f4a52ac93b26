"""The conformance suite's client, played by agents-mcp's downstream client.

``conformance client --command "python tests/conformance/driver.py"`` starts this once
per scenario with the scenario's MCP server URL as the last argument
(``MCP_CONFORMANCE_SCENARIO``, ``MCP_CONFORMANCE_CONTEXT`` and, from 0.2,
``MCP_CONFORMANCE_PROTOCOL_VERSION`` in the environment). It configures that URL as an
``[mcpServers]`` entry (``auth = "oauth"``, or ``"client_credentials"`` with the
scenario's credentials), lists its tools and calls the first, as one owner's run would.
When a sign-in is asked, it plays the person's browser: it opens the link without
following the redirect (the scenario's authorization server approves at once) and hands
the query of the redirect to agents-mcp's callback, then tries again (at most 3 sign-ins).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx2

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream.oauth import NotAuthorized, acting_for
from agents_mcp.downstream.servers import DownstreamServer
from agents_mcp.downstream.signin import Accounts
from agents_mcp.store import open_store
from agents_mcp.store.secrets import keys_for
from agents_mcp.store.tokens import TokenStore

URL = sys.argv[-1]
SCENARIO = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
CONTEXT: dict[str, Any] = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
PROTOCOL = (
    "2026-07-28" if os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION") == "2026-07-28" else "legacy"
)
REDIRECT = "http://localhost:3000/callback"
CIMD = "https://conformance-test.local/client-metadata.json"
OWNER = "conformance"
log = logging.getLogger("conformance-driver")


async def issuer() -> str:
    """The authorization server the scenario's resource names (an operator knows it)."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(URL))
    path = urlsplit(URL).path
    async with httpx2.AsyncClient() as http:
        for where in (
            f"{origin}/.well-known/oauth-protected-resource{path}",
            f"{origin}/.well-known/oauth-protected-resource",
        ):
            r = await http.get(where)
            if r.status_code == 200:
                return str(r.json()["authorization_servers"][0])
    return origin


async def config() -> DownstreamServerConfig:
    if SCENARIO.startswith("auth/client-credentials"):
        secret = (
            {"client_secret": CONTEXT["client_secret"]}
            if "client_secret" in CONTEXT
            else {
                "private_key": CONTEXT["private_key_pem"],
                "signing_algorithm": CONTEXT.get("signing_algorithm", "ES256"),
            }
        )
        return DownstreamServerConfig(
            url=URL, auth="client_credentials", protocol=PROTOCOL, client_id=CONTEXT["client_id"],
            issuer=await issuer(), **secret,
        )  # fmt: skip
    pre = {"client_id": CONTEXT["client_id"]} if CONTEXT.get("client_id") else {}
    if CONTEXT.get("client_secret"):
        pre["client_secret"] = CONTEXT["client_secret"]
    return DownstreamServerConfig(
        url=URL, auth="oauth", protocol=PROTOCOL, client_metadata_url=CIMD, **pre
    )


async def browser(url: str) -> dict[str, str]:
    """Open the sign-in link; the query of where the authorization server sends us back."""
    async with httpx2.AsyncClient() as http:
        r = await http.get(url, follow_redirects=False)
    return dict(parse_qsl(urlsplit(r.headers["location"]).query))


async def session(server: DownstreamServer) -> str | None:
    """List the tools and call the first: None when done, else the sign-in link asked."""
    try:
        tools = await server.tools()
    except NotAuthorized as exc:
        if exc.sign_in is None:
            raise SystemExit(f"authorization failed: {exc.reason}") from None
        return exc.sign_in.url
    print("tools:", [t.name for t in tools])
    if tools:
        out = await server.call(tools[0].name, {})
        if out.sign_in is not None:
            return out.sign_in.url
        print("call:", tools[0].name, "ok" if out.ok else f"error: {out.text}")
    return None


async def main() -> None:
    store = await open_store(":memory:")
    tokens = TokenStore(store.db, keys_for(":memory:"))
    accounts = Accounts(tokens, {"s": await config()}, REDIRECT)
    server = DownstreamServer("s", accounts.configs["s"], accounts=accounts)
    try:
        with acting_for(OWNER):
            for attempt in range(3):  # scope-retry-limit: at most 3 sign-ins
                link = await session(server)
                if link is None:
                    print(f"done after {attempt} sign-in(s)")
                    return
                ok, text = await accounts.callback(await browser(link))
                print("callback:", text)
                if not ok:
                    raise SystemExit(1)
            raise SystemExit("giving up after 3 sign-ins")
    finally:
        await server.aclose()
        await accounts.aclose()
        await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    anyio.run(main)
