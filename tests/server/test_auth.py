"""Who is calling, over real HTTP: hashed and plain static tokens, JWTs of an OAuth 2.1
authorization server (with a JWKS served by the test), the metadata document, and tokens
kept out of the database and the logs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.server.auth.providers.jwt import RSAKeyPair
from inline_snapshot import snapshot
from joserfc import jwk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agents_mcp.config import Config
from agents_mcp.errors import ConfigError
from agents_mcp.server.auth import token_owner
from agents_mcp.server.transports import http_auth
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config
from tests.processes import ROOT, agents_mcp_in_process, asgi_on_loopback
from tests.server.test_results import sdk_missing

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.com"
AUDIENCE = "agents-mcp"
RESOURCE = "https://agents.example.com/mcp"
HASHED = "hashed-script-token-1"
PLAIN = "plain-script-token-2"
LEGACY = "legacy-token-3"
CLIENT = {"name": "test", "version": "1"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class Keys:
    """The authorization server's signing key (published as a JWKS) and a stranger's."""

    def __init__(self) -> None:
        self.signing = RSAKeyPair.generate()
        self.stranger = RSAKeyPair.generate()

    def jwks(self) -> dict[str, Any]:
        key = jwk.import_key(self.signing.public_key, "RSA").as_dict(private=False)
        return {"keys": [{**key, "kid": "k1", "alg": "RS256", "use": "sig"}]}

    def token(
        self,
        subject: str = "dana",
        *,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        expires_in: int = 600,
        pair: RSAKeyPair | None = None,
        **claims: Any,
    ) -> str:
        return (pair or self.signing).create_token(
            subject=subject,
            issuer=issuer,
            audience=audience,
            expires_in_seconds=expires_in,
            additional_claims=claims,
            kid="k1",
        )

    def unsigned(self) -> str:
        now = int(time.time())
        claims = {"sub": "dana", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
        return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{b64(claims)}."


def config(tmp_path: Path, jwks_url: str) -> Config:
    agent = {"model": "main", "servers": ["notes"], "require_approval": "always"}
    return make_config(
        tmp_path,
        servers={"notes": {"url": "http://127.0.0.1:9/mcp"}},
        agents={
            "helper": {"description": "Open to everyone", **agent},
            "secret": {"description": "Researchers", "access": ["role:research"], **agent},
        },
        server={
            "tokens": {
                "alice": {"sha256": sha256(HASHED)},
                "dana": {"token": PLAIN},
            },
            "auth_tokens": [LEGACY],
            "jwt": {
                "jwks_url": jwks_url,
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "authorization_servers": [ISSUER],
                "resource_url": RESOURCE,
            },
        },
    )


@asynccontextmanager
async def serving(tmp_path: Path, keys: Keys, llm: ScriptedLLM | None = None) -> AsyncIterator[str]:
    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(keys.jwks())

    app = Starlette(routes=[Route("/jwks.json", jwks)])
    async with asgi_on_loopback(app) as auth_server:
        cfg = config(tmp_path, f"{auth_server}/jwks.json")
        llms = {"main": llm or ScriptedLLM()}
        db = tmp_path / "threads.db"
        transports = {"notes": notes()}
        async with agents_mcp_in_process(cfg, db, llms=llms, transports=transports) as url:
            yield url


def client(url: str, token: str, mode: str = "auto") -> Client[Any]:
    return Client(StreamableHttpTransport(url, auth=token), mode=mode)


async def post(url: str, token: str | None) -> httpx2.Response:
    """A raw MCP request with this bearer token (or none)."""
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    async with httpx2.AsyncClient() as http:
        with anyio.fail_after(30):
            return await http.post(url, headers=headers, json=body)


async def test_jwts_are_verified_as_an_oauth_resource_server(tmp_path: Path) -> None:
    keys = Keys()
    now = int(time.time())
    refused = {
        "expired": keys.token(expires_in=-60),
        "not yet valid": keys.token(nbf=now + 3600),
        "wrong audience": keys.token(audience="another-service"),
        "wrong issuer": keys.token(issuer="https://evil.example.com"),
        "wrong key": keys.token(pair=keys.stranger),
        "alg=none": keys.unsigned(),
        "no exp": keys.token(exp=None),
        "no owner": keys.token(subject=""),
        "garbage": "not-a-token",
        "missing": None,
    }
    async with serving(tmp_path, keys) as url:
        answers = {why: await post(url, token) for why, token in refused.items()}
        accepted = await post(url, keys.token())
        async with httpx2.AsyncClient() as http:
            metadata = await http.get(
                url.removesuffix("/mcp") + "/.well-known/oauth-protected-resource/mcp"
            )
    challenges = {why: r.headers.get("www-authenticate", "") for why, r in answers.items()}
    assert {why: r.status_code for why, r in answers.items()} == dict.fromkeys(refused, 401)
    where = (
        'resource_metadata="https://agents.example.com/.well-known/oauth-protected-resource/mcp"'
    )
    assert all(c.startswith("Bearer ") and where in c for c in challenges.values())
    assert 'error="invalid_token"' in challenges["expired"]
    assert "error=" not in challenges["missing"]  # RFC 6750: no error without credentials
    assert accepted.status_code == 200
    assert metadata.status_code == 200
    # The issuer as tokens carry it in iss: not "https://auth.example.com/".
    assert metadata.json()["authorization_servers"] == [ISSUER]
    assert metadata.json() == snapshot(
        {
            "resource": "https://agents.example.com/mcp",
            "authorization_servers": ["https://auth.example.com"],
            "scopes_supported": [],
            "resource_name": "agents-mcp",
            "bearer_methods_supported": ["header"],
        }
    )


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_jwt_names_its_owner_and_roles(tmp_path: Path, mode: str) -> None:
    keys = Keys()
    llm = ScriptedLLM("for dana", "for the researcher", "dana again")
    async with serving(tmp_path, keys, llm) as url:
        async with client(url, keys.token("dana"), mode) as dana:
            tools = {t.name: t for t in await dana.list_tools()}
            first = await call(dana, "chat_with_agent", agent="helper", message="hi")
        async with client(url, keys.token("erin", roles=["research"]), mode) as erin:
            listed = {t.name: t for t in await erin.list_tools()}
            research = await call(erin, "chat_with_agent", agent="secret", message="hi")
            theirs = await call(erin, "list_threads")
        # A static token and a JWT naming the same owner are the same owner.
        async with client(url, PLAIN, mode) as script:
            again = await call(
                script,
                "chat_with_agent",
                agent="helper",
                message="hi",
                thread_id=first["thread_id"],
            )
    assert tools["chat_with_agent"].input_schema["properties"]["agent"]["enum"] == ["helper"]
    assert listed["chat_with_agent"].input_schema["properties"]["agent"]["enum"] == [
        "helper",
        "secret",
    ]
    assert research["reply"] == "for the researcher"
    assert [t["agent"] for t in theirs["threads"]] == ["secret"]
    assert again["reply"] == "dana again"


@contextmanager
def every_log_line() -> Iterator[list[str]]:
    """Every log record of every logger (fastmcp's do not propagate), at DEBUG, formatted
    with its traceback."""
    lines: list[str] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    handler = Collect(logging.DEBUG)
    loggers = [logging.getLogger(), logging.getLogger("fastmcp")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def notes() -> FastMCP:
    mcp = FastMCP("notes")

    @mcp.tool
    def write(text: str) -> str:
        """Write a note."""
        return f"saved {text}"

    return mcp


def database_bytes(where: Path) -> bytes:
    """The database with its WAL and shared-memory files, as stored."""
    return b"".join(p.read_bytes() for p in sorted(where.glob("threads.db*")) if p.is_file())


async def test_tokens_reach_neither_the_database_nor_the_logs(tmp_path: Path) -> None:
    keys = Keys()
    jwt = keys.token("dana")
    llm = ScriptedLLM()
    for i in range(4):
        llm.add(Call("notes__write", {"text": "x"}, id=f"w{i}"), f"done {i}")
    seen: dict[str, int] = {}
    with every_log_line() as lines:
        async with serving(tmp_path, keys, llm) as url:
            for token in (HASHED, PLAIN, LEGACY, jwt):
                async with client(url, token) as c:
                    paused = await call(c, "chat_with_agent", agent="helper", message="write")
                    tid = paused["thread_id"]
                    pending = paused["pending_approvals"][0]["call_id"]
                    await call(c, "approve_call", thread_id=tid, call_id=pending, approve=True)
                    await call(c, "get_thread", thread_id=tid, include_messages=True)
                    await c.read_resource(f"agents-mcp://threads/{tid}")
                    listed = await call(c, "list_threads")
                    seen[token] = len(listed["threads"])
            wrong = await post(url, HASHED + "x")
    stored = database_bytes(tmp_path)
    logged = "\n".join(lines)
    assert wrong.status_code == 401
    assert len(lines) > 100  # DEBUG logging was on
    for token in (HASHED, PLAIN, LEGACY, jwt):
        assert token.encode() not in stored
        assert token not in logged
    assert sha256(HASHED) not in logged
    # Each owner saw its own thread; the script token and the JWT of dana share an owner.
    assert list(seen.values()) == [1, 1, 1, 2]
    assert token_owner(LEGACY).encode() in stored


def agents_mcp_config(tmp_path: Path, **server: Any) -> Config:
    return make_config(
        tmp_path, servers={}, agents={"a": {"description": "d", "model": "main"}}, server=server
    )


async def test_static_tokens_and_require_tokens(tmp_path: Path) -> None:
    cfg = agents_mcp_config(
        tmp_path, tokens={"alice": {"sha256": sha256(HASHED).upper()}}, require_tokens=True
    )
    async with agents_mcp_in_process(cfg, tmp_path / "threads.db") as url:
        anonymous = await post(url, None)
        wrong = await post(url, HASHED[:-1])
        right = await post(url, HASHED)
    assert (anonymous.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    with pytest.raises(ConfigError) as info:
        agents_mcp_config(tmp_path, require_tokens=True)
    assert str(info.value).split(": ", 1)[1] == snapshot(
        'server.require_tokens: needs tokens to require: add [server.tokens.<owner>] (token = "${VAR}" or sha256), auth_tokens or [server.jwt]'
    )


def test_loopback_without_tokens_says_everyone_is_local(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "agents_mcp"):
        assert http_auth(agents_mcp_config(tmp_path), host="127.0.0.1", port=8765) is None
        http_auth(agents_mcp_config(tmp_path, tokens={"a": {"token": "t"}}), host="::1", port=1)
    assert [r.getMessage() for r in caplog.records] == snapshot(
        [
            "HTTP without tokens: every local user and program on this machine is the same owner 'local', with the same threads and every agent; on a shared host add [server.tokens.<owner>] and set [server] require_tokens = true"
        ]
    )


def test_token_config_errors(tmp_path: Path) -> None:
    def errors(**server: Any) -> list[str]:
        with pytest.raises(ConfigError) as info:
            agents_mcp_config(tmp_path, **server)
        return [line.split(": ", 1)[1] for line in str(info.value).splitlines()]

    assert errors(
        tokens={
            "alice": {"token": "same"},
            "bob": {"sha256": sha256("same")},
            "local": {"token": "other"},
            "carol": {"token": "x", "sha256": sha256("x")},
            "dave": {"sha256": "abc"},
        },
        jwt={
            "issuer": "not-a-url",
            "audience": "a",
            "jwks_url": "https://x/j",
            "public_key": "k",
        },
    ) == snapshot(
        [
            "server.jwt: has both jwks_url and public_key; set jwks_url or public_key (PEM), not both",
            'server.tokens.carol: has both token and sha256; use token = "${VAR}" or sha256 = "<64 hex digits>"',
            "server.tokens.dave.sha256: expected the 64 hex digits of the token's SHA-256",
        ]
    )
    assert errors(
        tokens={
            "alice": {"token": "same"},
            "bob": {"sha256": sha256("same")},
            "local": {"token": "x"},
        }
    ) == snapshot(
        [
            "server.tokens.bob: the same token as owner 'alice'",
            "server.tokens.local: the owner name 'local' is reserved for stdio, the CLI and loopback HTTP without tokens",
        ]
    )


def test_roles_come_from_the_roles_claim_whatever_its_shape() -> None:
    from agents_mcp.config import JWTConfig
    from agents_mcp.server.auth import ROLES_CLAIM, _claims_to_owner

    jwt = JWTConfig(public_key="-----BEGIN PUBLIC KEY-----", issuer=ISSUER, audience=AUDIENCE)
    base = {"sub": "dana", "exp": time.time() + 60}
    shapes: list[Any] = ["a b", ["a", 1, "b"], {"a": True}, 7, None]
    found = []
    for shape in shapes:
        token = _claims_to_owner("t", {**base, "roles": shape}, jwt)
        assert token is not None and token.subject == "dana"
        found.append(token.claims[ROLES_CLAIM])
    assert found == [["a", "b"], ["a", "b"], [], [], []]


def refused_because(response: httpx2.Response) -> str:
    """The 401's description, checked to be the same in the body and the header."""
    assert response.status_code == 401
    description: str = response.json()["error_description"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="agents-mcp"')
    if "error=" in challenge:
        assert f'error_description="{description}"' in challenge
    return description


async def test_a_jwt_owner_claim_must_be_an_owner_name(tmp_path: Path) -> None:
    keys = Keys()
    bad = {
        "space": "a b",
        "long": "a" * 5000,
        "nul": "a\x00b",
        "role": "role:admin",
        "local": "local",
    }
    async with serving(tmp_path, keys) as url:
        refused = {why: await post(url, keys.token(sub)) for why, sub in bad.items()}
        longest = await post(url, keys.token("a" * 128))
    reasons = {why: refused_because(r) for why, r in refused.items()}
    assert set(reasons.values()) == {
        "the token's 'sub' claim is not a usable owner name: it must be 1 to 128 characters,"
        " without spaces or control characters, not 'local' and not starting with 'role:'"
    }
    assert longest.status_code == 200


async def test_a_static_token_401_says_what_to_send(tmp_path: Path) -> None:
    cfg = agents_mcp_config(tmp_path, tokens={"alice": {"sha256": sha256(HASHED)}})
    async with agents_mcp_in_process(cfg, tmp_path / "threads.db") as url:
        missing = await post(url, None)
        wrong = await post(url, "not-a-token")
        async with httpx2.AsyncClient() as http:
            register = await http.post(url.removesuffix("/mcp") + "/register", json={})
        node = await sdk_refusals(url)
    told = [refused_because(missing), refused_because(wrong), register.json()["error_description"]]
    assert missing.headers["www-authenticate"] == 'Bearer realm="agents-mcp"'
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert register.status_code == 404
    for text in [*told, *node.values()]:
        assert "'Authorization: Bearer <token>' with a token configured under" in text
        assert "[server.tokens.<owner>]" in text
        assert not any(w in text.lower() for w in ("oauth", "register", "http 404"))
    # What the official TypeScript SDK's client says, with or without an OAuth provider.
    assert node == snapshot(
        {
            "none": 'Error: Streamable HTTP error: Error POSTing to endpoint: {"error": "invalid_request", "error_description": "this agents-mcp server needs a bearer token: send the header \'Authorization: Bearer <token>\' with a token configured under [server.tokens.<owner>] in its config (the operator of the server gives it out)"}',
            "wrong": 'Error: Streamable HTTP error: Error POSTing to endpoint: {"error": "invalid_token", "error_description": "the bearer token is not one this agents-mcp server knows: send the header \'Authorization: Bearer <token>\' with a token configured under [server.tokens.<owner>] in its config"}',
            "provider": "InvalidRequestError: this agents-mcp server takes static bearer tokens, not a login: configure the client to send the header 'Authorization: Bearer <token>' with a token configured under [server.tokens.<owner>] in the server's config",
        }
    )


async def sdk_refusals(url: str) -> dict[str, str]:
    """The errors of the TypeScript SDK's client (tests/browser/sdk_auth.mjs) refused by
    ``url``: without a token, with a wrong one, and with an OAuth auth provider."""
    if missing := sdk_missing():
        if os.environ.get("AGENTS_MCP_SKIP_BROWSER") == "1" and not os.environ.get("CI"):
            pytest.skip(f"AGENTS_MCP_SKIP_BROWSER=1 and missing: {', '.join(missing)}")
        pytest.fail(f"this test needs {', '.join(missing)}; .ci/run installs them")
    script = ROOT / "tests" / "browser" / "sdk_auth.mjs"
    with anyio.fail_after(60):
        done = await anyio.run_process(["node", str(script), url], check=False)
    assert done.returncode == 0, done.stderr.decode()
    report: dict[str, str] = json.loads(done.stdout)
    return report
