"""Sub-agents acting as the person who asked: sign-ins to an OAuth-protected downstream
server, per owner, end to end with real processes.

agents-mcp runs as ``agents-mcp serve --transport http`` (each owner with a bearer
token of their own); the downstream server is ``tests/oauth_server.py``, fastmcp behind
its in-memory OAuth authorization server, recording whose token each call carried; the
model is scripted behind a Chat Completions fake. The "browser" follows the sign-in
link the way a browser would: the authorization server redirects to agents-mcp's
``/oauth/callback`` with a code.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from cryptography.fernet import Fernet, InvalidToken
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse, ToolCall, Usage
from agents_mcp.testing.chat_server import FakeChatServer
from tests.oauth_helpers import Protected, consent, protected_server
from tests.postgres import fresh_database
from tests.processes import agents_mcp_http_process, free_port, write_config

pytestmark = pytest.mark.anyio

BOUND = 120.0
TOKENS = {"alice": "alice-" + "a" * 32, "bob": "bob-" + "b" * 32}


class Model:
    """Sends the caller's message with ``prot__send``, then reports what it got."""

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        last = request.messages[-1]
        if last.role == "user":
            args = json.dumps({"text": last.content})
            call = ToolCall(id="s1", name="prot__send", arguments=args)
            return LLMResponse(content=None, tool_calls=(call,), usage=Usage())
        return LLMResponse(content=f"done: {last.content}", usage=Usage())


@dataclass
class Setup:
    protected: Protected
    config: Path
    db: str
    env: dict[str, str]
    stack: AsyncExitStack

    async def serve(self, port: int | None = None, *, log: Path | None = None) -> str:
        """One more agents-mcp process on the setup's database (for the rest of the
        setup); returns its MCP URL."""
        port = port or free_port()
        await self.stack.enter_async_context(self.process(port, log=log))
        return f"http://127.0.0.1:{port}/mcp"

    def process(self, port: int, *, log: Path | None = None) -> Any:
        """An agents-mcp process (``--debug``, its stderr appended to ``log``)."""
        command = None
        if log is not None:
            argv = [sys.executable, "-m", "agents_mcp", "--debug", "serve", "--config"]
            argv += [str(self.config), "--transport", "http", "--port", str(port)]
            argv += ["--db", self.db]
            command = ["sh", "-c", f'exec {shlex.join(argv)} 2>>"$0"', str(log)]
        return agents_mcp_http_process(
            self.config, port=port, db=self.db, env=self.env, command=command
        )


@asynccontextmanager
async def setup(
    tmp_path: Path,
    db: str,
    *,
    public_url: str | None = None,
    protocol: str = "legacy",
    key: str | None = None,
    tokens: bool = True,
) -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        protected = stack.enter_context(protected_server(tmp_path))
        model_url = await stack.enter_async_context(FakeChatServer(Model()).serve())
        server: dict[str, Any] = {}
        if tokens:
            server["tokens"] = {owner: {"token": token} for owner, token in TOKENS.items()}
        if public_url is not None:
            server["public_url"] = public_url
        config = write_config(
            tmp_path / "agents.json",
            {
                "mcpServers": {
                    "prot": {"url": protected.url, "auth": "oauth", "protocol": protocol}
                },
                "models": {"main": {"base_url": model_url, "model": "m"}},
                "agents": {
                    "messenger": {
                        "description": "Sends messages as you",
                        "model": "main",
                        "servers": ["prot"],
                        "require_approval": "never",
                    }
                },
                "server": server,
            },
        )
        env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
        if key is not None:
            env["AGENTS_MCP_SECRET_KEY"] = key
        else:  # the key file beside a SQLite database
            os.environ.pop("AGENTS_MCP_SECRET_KEY", None)
        yield Setup(protected, config, db, env, stack)


def client(url: str, owner: str) -> Client[Any]:
    transport = StreamableHttpTransport(url, auth=TOKENS.get(owner))
    return Client(transport, timeout=BOUND)


async def tool(c: Client[Any], name: str, **args: Any) -> dict[str, Any]:
    with anyio.fail_after(BOUND):
        result = await c.call_tool(name, args, raise_on_error=False)
    assert result.structured_content is not None, result.content
    return result.structured_content


async def sign_in(s: Setup, result: dict[str, Any], owner: str) -> str:
    """The owner opens the link of ``result``'s sign-in: returns the page agents-mcp shows."""
    [item] = result["pending_authorizations"]
    location = await consent(s.protected, item["url"], owner)
    async with httpx2.AsyncClient() as http:
        page = await http.get(location)
    assert page.status_code == 200, page.text
    return page.text


async def test_alice_and_bob_each_sign_in_and_act_as_themselves(tmp_path: Path) -> None:
    async with setup(tmp_path, str(tmp_path / "threads.db")) as s:
        url = await s.serve()
        async with client(url, "alice") as alice, client(url, "bob") as bob:
            # Alice first: nobody signed in, so even the tool list waits for her.
            paused_a = await tool(alice, "chat_with_agent", agent="messenger", message="hi from A")
            assert s.protected.calls() == []
            shown = await sign_in(s, paused_a, "alice")
            done_a = await tool(
                alice, "get_thread", thread_id=paused_a["thread_id"], wait_seconds=60
            )
            # Bob: the tools are known, his call itself waits for his sign-in.
            paused_b = await tool(bob, "chat_with_agent", agent="messenger", message="hi from B")
            listed = await tool(bob, "list_threads", status="needs_approval")
            await sign_in(s, paused_b, "bob")
            done_b = await tool(bob, "get_thread", thread_id=paused_b["thread_id"], wait_seconds=60)
            # Each goes on with their own token, without asking again.
            again_a = await tool(
                alice, "chat_with_agent", agent="messenger", message="again A",
                thread_id=paused_a["thread_id"],
            )  # fmt: skip
            refused = await bob.call_tool(
                "get_thread", {"thread_id": paused_a["thread_id"]}, raise_on_error=False
            )
    assert paused_a["status"] == "needs_approval" and paused_a["pending_approvals"] == []
    [item_a] = paused_a["pending_authorizations"]
    assert (item_a["server"], item_a["tool"]) == ("prot", None)
    assert item_a["url"].startswith(s.protected.base + "/authorize?")
    assert "Signed in to prot" in shown
    assert (done_a["status"], done_a["reply"]) == ("completed", "done: sent 'hi from A' as alice")
    [item_b] = paused_b["pending_authorizations"]
    assert (item_b["server"], item_b["tool"]) == ("prot", "send")
    [waiting] = listed["threads"]
    assert waiting["pending_authorizations"][0]["url"] == item_b["url"]
    assert (done_b["status"], done_b["reply"]) == ("completed", "done: sent 'hi from B' as bob")
    assert again_a["status"] == "completed"
    assert refused.is_error and "not found" in str(refused.content)
    assert [(c["tool"], c["subject"]) for c in s.protected.calls()] == [
        ("send", "alice"),
        ("send", "bob"),
        ("send", "alice"),
    ]


def stored_tokens(db: Path, key: bytes) -> list[dict[str, Any]]:
    """The tokens in the database, decrypted with ``key`` (as only agents-mcp can)."""
    rows = sqlite3.connect(db).execute("SELECT owner, token FROM oauth_tokens ORDER BY owner")
    return [{"owner": o, **json.loads(Fernet(key).decrypt(t.encode()))} for o, t in rows]


async def test_a_restart_between_the_pause_and_the_sign_in(tmp_path: Path) -> None:
    """The sign-in waits in the database: a server started again on the same address
    finishes it, and the call that waited runs once. The tokens are encrypted with the
    key file made beside the database; nothing secret reaches the logs."""
    db = tmp_path / "threads.db"
    log = tmp_path / "agents-mcp.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    async with setup(tmp_path, str(db)) as s:
        async with (
            s.process(port, log=log),
            client(url, "alice") as alice,
            client(url, "bob") as bob,
        ):
            first = await tool(alice, "chat_with_agent", agent="messenger", message="one")
            location = await consent(
                s.protected, first["pending_authorizations"][0]["url"], "alice"
            )
            async with httpx2.AsyncClient() as http:
                assert (await http.get(location)).status_code == 200
            await tool(alice, "get_thread", thread_id=first["thread_id"], wait_seconds=60)
            paused = await tool(bob, "chat_with_agent", agent="messenger", message="two")
        assert [c["subject"] for c in s.protected.calls()] == ["alice"]
        async with s.process(port, log=log):  # the same server, started again
            shown = await sign_in(s, paused, "bob")
            async with client(url, "bob") as bob:
                done = await tool(bob, "get_thread", thread_id=paused["thread_id"], wait_seconds=60)
                again = await tool(bob, "chat_with_agent", agent="messenger", message="three",
                                   thread_id=paused["thread_id"])  # fmt: skip
    assert "Signed in to prot" in shown
    assert (done["status"], done["reply"]) == ("completed", "done: sent 'two' as bob")
    assert again["status"] == "completed"
    assert [(c["tool"], c["subject"]) for c in s.protected.calls()] == [
        ("send", "alice"),
        ("send", "bob"),
        ("send", "bob"),
    ]
    key_file = tmp_path / "threads.db.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    tokens = stored_tokens(db, key_file.read_bytes().strip())
    assert [t["owner"] for t in tokens] == ["alice", "bob"]
    wal = tmp_path / "threads.db-wal"
    raw = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    secrets = [t["access_token"] for t in tokens] + [t["refresh_token"] for t in tokens]
    secrets.append(dict(p.split("=", 1) for p in location.split("?", 1)[1].split("&"))["code"])
    assert all(secret.encode() not in raw for secret in secrets)
    with pytest.raises(InvalidToken):
        stored_tokens(db, Fernet.generate_key())
    logged = log.read_text()
    assert "signed in to prot" in logged  # the audit line, and nothing secret
    assert [secret for secret in secrets if secret in logged] == []


async def test_the_sign_in_lands_on_another_replica(tmp_path: Path, pg_cluster: str) -> None:
    """Two replicas on one PostgreSQL database, sign-ins coming back to the second (the
    public address): a run paused on the first resumes when the second gets the code."""
    db = await fresh_database(pg_cluster)
    second = free_port()
    public = f"http://127.0.0.1:{second}"
    key = Fernet.generate_key().decode()
    async with setup(tmp_path, db, public_url=public, key=key, protocol="2026-07-28") as s:
        one, two = await s.serve(), await s.serve(second)
        async with client(one, "alice") as alice, client(two, "bob") as bob:
            paused = await tool(alice, "chat_with_agent", agent="messenger", message="from one")
            link = paused["pending_authorizations"][0]["url"]
            shown = await sign_in(s, paused, "alice")  # answered by the second replica
            done = await tool(alice, "get_thread", thread_id=paused["thread_id"], wait_seconds=60)
            other = await tool(bob, "chat_with_agent", agent="messenger", message="from two")
            await sign_in(s, other, "bob")
            followed = await tool(bob, "get_thread", thread_id=other["thread_id"], wait_seconds=60)
        # A replica without the key keeps no sign-in, and says how to set it.
        s.env.pop("AGENTS_MCP_SECRET_KEY")
        async with client(await s.serve(), "alice") as alice:
            keyless = await tool(alice, "chat_with_agent", agent="messenger", message="x")
    assert "redirect_uri=" + public.replace(":", "%3A").replace("/", "%2F") in link
    assert "Signed in to prot" in shown
    assert (done["status"], done["reply"]) == ("completed", "done: sent 'from one' as alice")
    assert followed["reply"] == "done: sent 'from two' as bob"
    assert [(c["tool"], c["subject"]) for c in s.protected.calls()] == [
        ("send", "alice"),
        ("send", "bob"),
    ]
    # Alice is signed in already: the keyless replica reads her token... and cannot.
    assert keyless["status"] == "completed", keyless
    [unavailable] = keyless["unavailable"]
    assert "AGENTS_MCP_SECRET_KEY" in unavailable["reason"]


SDK_SIGNIN = Path(__file__).parent / "browser" / "sdk_signin.mjs"


async def sdk_client(url: str, owner: str, mode: str, s: Setup) -> dict[str, Any]:
    """``tests/browser/sdk_signin.mjs``: the official TypeScript SDK client."""
    with anyio.fail_after(BOUND):
        done = await anyio.run_process(
            ["node", str(SDK_SIGNIN), url, TOKENS[owner], mode, s.protected.base, owner],
            cwd=SDK_SIGNIN.parent,
        )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def test_the_sign_in_is_asked_only_in_a_client_that_declares_url_elicitation(
    tmp_path: Path,
) -> None:
    async with setup(tmp_path, str(tmp_path / "threads.db")) as s:
        url = await s.serve()
        asked = await sdk_client(url, "alice", "url", s)
        structured = await sdk_client(url, "bob", "none", s)
        form_only = await sdk_client(url, "bob", "form", s)
    assert asked["requested"] == ["url"]
    [elicitation] = asked["elicitations"]
    assert elicitation["mode"] == "url"
    assert elicitation["message"] == "Agent 'messenger' needs you to sign in to prot to go on."
    assert elicitation["url"].startswith(s.protected.base + "/authorize?")
    assert [p["status"] for p in asked["pages"]] == [200]
    assert asked["completed"] == [elicitation["id"]]
    assert asked["result"]["status"] == "completed"
    assert asked["result"]["reply"] == "done: sent 'hi from alice' as alice"
    # Without URL mode: the structured item, with the same kind of link.
    assert structured["elicitations"] == []
    assert structured["result"]["status"] == "needs_approval"
    [item] = structured["result"]["pending_authorizations"]
    assert (item["server"], item["tool"]) == ("prot", "send")
    assert item["url"].startswith(s.protected.base + "/authorize?")
    # Form mode only: not sent the URL-mode request (which the SDK would refuse for it).
    assert form_only["requested"] == []
    assert form_only["result"]["status"] == "needs_approval"
    [item] = form_only["result"]["pending_authorizations"]
    assert item["url"].startswith(s.protected.base + "/authorize?")
    assert [(c["tool"], c["subject"]) for c in s.protected.calls()] == [("send", "alice")]


async def test_the_thread_views_sign_in_button_in_chromium(tmp_path: Path) -> None:
    from tests.server.test_ui_browser import CHROMIUM, _missing

    if missing := _missing():
        pytest.fail(f"the browser test needs {', '.join(missing)}; .ci/run installs them")
    out = Path(__file__).parent.parent / "test-output" / "browser"
    out.mkdir(parents=True, exist_ok=True)
    async with setup(tmp_path, str(tmp_path / "threads.db"), tokens=False) as s:
        url = await s.serve()
        async with client(url, "local") as local:
            paused = await tool(
                local, "chat_with_agent", agent="messenger", message="from the view"
            )
        listed = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "agents_mcp",
                "pending",
                "--config",
                str(s.config),
                "--db",
                s.db,
            ],
            env={**os.environ, **s.env},
        )
        await s.protected.test_route("/test/login?user=local")  # who signs in, in the browser
        view = url.removesuffix("/mcp") + f"/threads/{paused['thread_id']}"
        with anyio.fail_after(BOUND):
            done = await anyio.run_process(
                ["node", str(SDK_SIGNIN.parent / "signin.mjs"), view],
                cwd=SDK_SIGNIN.parent,
                env={**os.environ, "CHROMIUM": CHROMIUM, "OUT_DIR": str(out)},
            )
        report = json.loads(done.stdout)
    [waiting] = paused["pending_authorizations"]
    assert listed.stdout.decode().splitlines()[1:] == [
        f"  sign in to prot: {waiting['url']}",
        "    or `agents-mcp login prot --config"
        f" {s.config} --db {s.db}` (then the run goes on where it is served);"
        f" `agents-mcp approve {paused['thread_id']} {waiting['call_id']} --config {s.config}"
        f" --db {s.db} --deny REASON` gives up on it",
    ]
    assert report.get("error") is None, report
    assert (report["button"], report["before"]) == ("Sign in to prot", "needs_approval")
    assert report["callback"]["url"] == url.removesuffix("/mcp") + "/oauth/callback"
    assert report["callback"]["text"].startswith("Signed in to prot.")
    assert (report["after"], report["cards"]) == ("completed", 0)
    assert report["reply"] == "done: sent 'from the view' as local"
    assert report["problems"] == []
    assert [(c["tool"], c["subject"]) for c in s.protected.calls()] == [("send", "local")]


async def test_declining_or_cancelling_a_sign_in(tmp_path: Path) -> None:
    """approve_call(approve=false) gives up on a sign-in: asked before the tools were
    listed, the run goes on without the server; asked for a call, the call gets a result
    saying it did not run. cancel_run drops it: the call did not run."""
    async with setup(tmp_path, str(tmp_path / "threads.db")) as s:
        url = await s.serve()
        async with client(url, "alice") as alice, client(url, "bob") as bob:
            listing = await tool(alice, "chat_with_agent", agent="messenger", message="one")
            item = listing["pending_authorizations"][0]
            without = await tool(
                alice, "approve_call", thread_id=listing["thread_id"], call_id=item["call_id"],
                approve=False,
            )  # fmt: skip
            asked = await tool(
                alice, "chat_with_agent", agent="messenger", message="two",
                thread_id=listing["thread_id"],
            )  # fmt: skip
            await sign_in(s, asked, "alice")
            await tool(alice, "get_thread", thread_id=listing["thread_id"], wait_seconds=60)
            call = await tool(bob, "chat_with_agent", agent="messenger", message="three")
            item = call["pending_authorizations"][0]
            declined = await tool(
                bob, "approve_call", thread_id=call["thread_id"], call_id=item["call_id"],
                approve=False,
            )  # fmt: skip
            again = await tool(
                bob, "chat_with_agent", agent="messenger", message="four",
                thread_id=call["thread_id"],
            )  # fmt: skip
            cancelled = await tool(bob, "cancel_run", thread_id=call["thread_id"])
            shown = await tool(
                bob, "get_thread", thread_id=call["thread_id"], include_messages=True
            )
    assert without["status"] == "completed"
    [unavailable] = without["unavailable"]
    assert unavailable == {"server": "prot", "reason": "the user did not sign in to it"}
    assert declined["status"] == "completed"
    assert declined["reply"].startswith("done: Not run: the user did not sign in to prot")
    assert again["status"] == "needs_approval" and again["pending_authorizations"]
    assert cancelled["status"] == "cancelled"
    last = shown["messages"][-2]  # the call's result, then the event saying it was cancelled
    assert (last["role"], last["content"]) == (
        "tool",
        "Cancelled: the run was stopped before this call started; it did not run.",
    )
    assert [(c["tool"], c["subject"]) for c in s.protected.calls()] == [("send", "alice")]


async def test_over_stdio_the_sign_in_comes_back_to_a_loopback_listener(tmp_path: Path) -> None:
    """``agents-mcp serve`` over stdio listens on 127.0.0.1:<oauth_callback_port> while a
    sign-in waits; the browser comes back there and the run goes on."""
    from fastmcp.client.transports import StdioTransport

    from tests.processes import ROOT

    port = free_port()
    async with setup(tmp_path, str(tmp_path / "threads.db"), tokens=False) as s:
        data = json.loads(s.config.read_text())
        data["server"]["oauth_callback_port"] = port
        s.config.write_text(json.dumps(data))
        argv = ["-m", "agents_mcp", "serve", "--config", str(s.config), "--db", s.db]
        transport = StdioTransport(
            sys.executable, argv, env={**os.environ, **s.env}, cwd=str(ROOT), keep_alive=False
        )
        async with Client(transport, timeout=BOUND) as local:
            paused = await tool(local, "chat_with_agent", agent="messenger", message="stdio")
            shown = await sign_in(s, paused, "local")
            done = await tool(local, "get_thread", thread_id=paused["thread_id"], wait_seconds=60)
    [item] = paused["pending_authorizations"]
    assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Foauth%2Fcallback" in item["url"]
    assert "Signed in to prot" in shown
    assert (done["status"], done["reply"]) == ("completed", "done: sent 'stdio' as local")
