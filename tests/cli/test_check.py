"""``agents-mcp check``, through the real entry point."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from inline_snapshot import snapshot

from agents_mcp.testing import ScriptedLLM
from agents_mcp.testing.chat_server import FakeChatServer
from tests.cli.runner import agents_mcp, all_of, helper_config, scrub
from tests.conftest import DOWNSTREAM
from tests.processes import ROOT, write_config

pytestmark = pytest.mark.anyio


async def test_check_reports_each_server_and_model_with_fixes(tmp_path: Path) -> None:
    demo_server = str(ROOT / "examples" / "demo_server.py")
    fake = FakeChatServer(ScriptedLLM("ok"))
    async with fake.serve() as base_url:
        data = {
            "mcpServers": {
                "demo": {"command": sys.executable, "args": [demo_server]},
                "broken": {"command": "no-such-command-agents-mcp"},
            },
            "models": {
                "main": {"base_url": base_url, "model": "fake-model", "api_key": "${CHECK_KEY:-}"},
                "demo": {"provider": "demo"},
            },
            "agents": {
                "helper": {
                    "description": "Takes notes",
                    "model": "main",
                    "servers": ["demo", "broken"],
                    "tools": {"demo": ["list_notes", "add_note", "delete_all"]},
                    "require_approval": {"default": "read_only", "always": ["demo__add_nte"]},
                    "personalities": {"terse": "Short.", "chatty": "Long."},
                    "default_personality": "terse",
                }
            },
        }
        cfg = write_config(tmp_path / "agents.json", data)
        ran = await agents_mcp("check", "--config", str(cfg), tmp_path=tmp_path)
    assert [t["function"]["name"] for t in fake.requests[0]["tools"]] == ["ping"]
    assert ran.code == 1
    known = [(str(cfg), "<config>"), (demo_server, "<demo_server>"), (sys.executable, "<python>")]
    assert scrub(ran.out, *known) == snapshot("""\
Checking <config>

✓ config         1 agent(s), 2 server(s), 2 model(s)
· env CHECK_KEY  not set; its default is used
✓ database       <tmp>/data/agents-mcp/threads.db · SQLite, created on first use
✓ server demo    2 tool(s) · <python> <demo_server>
✗ server broken  cannot start 'no-such-command-agents-mcp': not found
                 fix: install it, or put its absolute path in mcpServers.broken.command
✓ model main     fake-model at http://127.0.0.1:<port>/v1 (openai): answered without calling the offered tool, streams
✓ model demo     demo: built in, needs no endpoint

agent helper · model main · servers demo, broken
  personalities: terse (default), chatty
  demo__list_notes  read-only  runs without approval
  demo__add_note               needs approval
  (broken: unavailable, see above)
✗ agent helper  tools.demo lists 'delete_all', which demo does not offer
                fix: valid: add_note, list_notes
✗ agent helper  require_approval rule 'demo__add_nte' names no tool of demo
                fix: valid: demo__add_note, demo__list_notes

3 problem(s) found.
""")


async def test_check_sends_one_request_through_each_provider(tmp_path: Path) -> None:
    from agents_mcp.llm.probe import PING
    from agents_mcp.messages import LLMResponse
    from agents_mcp.testing import Call
    from agents_mcp.testing.anthropic_server import FakeAnthropicServer
    from agents_mcp.testing.responses_server import FakeResponsesServer

    thought = LLMResponse(content="ok", reasoning="A connectivity check.")
    fakes = {
        "openai": FakeChatServer(ScriptedLLM(Call(PING.name, id="call_p"))),
        "anthropic": FakeAnthropicServer(ScriptedLLM(thought)),
        "responses": FakeResponsesServer(ScriptedLLM("ok")),
    }
    async with (
        fakes["openai"].serve() as chat_url,
        fakes["anthropic"].serve() as anthropic_url,
        fakes["responses"].serve() as responses_url,
    ):
        urls = {"openai": chat_url, "anthropic": anthropic_url, "responses": responses_url}
        models: dict[str, Any] = {
            name: {"provider": name, "base_url": url, "model": f"{name}-model", "api_key": "k"}
            for name, url in urls.items()
        }
        models["responses"]["stream"] = False
        data = {
            "models": models,
            "agents": {"helper": {"description": "d", "model": "openai"}},
        }
        cfg = write_config(tmp_path / "agents.json", data)
        ran = await agents_mcp("check", "--config", str(cfg), tmp_path=tmp_path)
    assert ran.code == 0
    rows = [line for line in scrub(ran.out).splitlines() if line.startswith("✓ model")]
    assert rows == snapshot(
        [
            "✓ model openai     openai-model at http://127.0.0.1:<port>/v1 (openai): calls tools",
            "✓ model anthropic  anthropic-model at http://127.0.0.1:<port>/v1 (anthropic): answered without calling the offered tool, streams, reports its reasoning",
            "✓ model responses  responses-model at http://127.0.0.1:<port>/v1 (responses): answered without calling the offered tool, streaming off (stream = false)",
        ]
    )
    assert all(len(f.requests) == 1 for f in fakes.values())


async def test_check_stops_at_an_invalid_config_with_exit_code_2(tmp_path: Path) -> None:
    data = helper_config("http://127.0.0.1:9/v1")
    data["models"]["main"]["api_key"] = "${CHECK_MISSING_KEY}"
    data["agents"]["helper"]["max_iterations"] = "many"
    cfg = write_config(tmp_path / "agents.json", data)
    ran = await agents_mcp("check", "--config", str(cfg), tmp_path=tmp_path)
    as_json = await agents_mcp("check", "--config", str(cfg), "--json", tmp_path=tmp_path)
    assert ran.code == 2
    report = json.loads(as_json.out)
    assert (as_json.code, report["ok"], report["problems"], report["agents"]) == (2, False, 2, [])
    assert [(r["ok"], r["item"]) for r in report["checks"]] == [
        (False, "env CHECK_MISSING_KEY"),
        (False, "config"),
    ]
    assert scrub(ran.out, (str(cfg), "<config>")) == snapshot(
        """\
Checking <config>

✗ env CHECK_MISSING_KEY  not set
                         fix: export CHECK_MISSING_KEY=… before starting
✗ config                 agents.helper.max_iterations: expected an integer
                         fix: edit <config>

2 problem(s): the configuration is invalid.
"""
    )


async def test_a_failing_server_shows_its_log_and_the_variables_it_may_need(
    tmp_path: Path,
) -> None:
    crash = "import sys; print('ModuleNotFoundError: no module named foo', file=sys.stderr); sys.exit(1)"
    data = {
        "mcpServers": {
            "tls": {
                "command": sys.executable,
                "args": [DOWNSTREAM, "--say", "tls: starting", "--require-env", "SSL_CERT_FILE"],
            },
            "crash": {"command": sys.executable, "args": ["-c", crash]},
            "fine": {"command": sys.executable, "args": [DOWNSTREAM, "--say", "fine: up"]},
        },
        "models": {"demo": {"provider": "demo"}},
        "agents": {
            "a": {
                "description": "d",
                "model": "demo",
                "servers": ["tls", "crash", "fine"],
                "tools": {"fine": ["echo", "write_note"]},
                "require_approval": "read_only",
            }
        },
    }
    cfg = write_config(tmp_path / "agents.json", data)
    # The user's environment has what the server needs, agents-mcp does not pass it.
    env = {"SSL_CERT_FILE": "/etc/ssl/corp.pem", "HTTPS_PROXY": "http://proxy:3128"}
    runs = await all_of(
        {
            "text": agents_mcp(
                "check", "--config", str(cfg), tmp_path=tmp_path, inherit=False, environ=env
            ),
            "json": agents_mcp(
                "check",
                "--json",
                "--config",
                str(cfg),
                tmp_path=tmp_path,
                inherit=False,
                environ=env,
                XDG_STATE_HOME=str(tmp_path / "other"),  # logs of its own
            ),
        }
    )
    ran = runs["text"]
    assert ran.code == 1
    known = [(str(cfg), "<config>"), (DOWNSTREAM, "<server>"), (sys.executable, "<python>")]
    # A server's command is cut to fit the line: where depends on the paths of this machine.
    shown = re.sub(
        r"^(. server \w+ .* · )<python> .*$", r"\1<command>", scrub(ran.out, *known), flags=re.M
    )
    assert shown == snapshot("""\
Checking <config>

✓ config        1 agent(s), 3 server(s), 1 model(s)
✓ database      <tmp>/data/agents-mcp/threads.db · SQLite, created on first use
✗ server tls    exited during start-up · <command>
                log: tls: starting
                     ssl.SSLCertVerificationError: certificate verify failed
                fix: it starts with your whole environment, but agents-mcp gives servers only PATH, HOME and their own env; pass what it needs in mcpServers.tls.env, likely: { HTTPS_PROXY = "${HTTPS_PROXY}", SSL_CERT_FILE = "${SSL_CERT_FILE}" }
✗ server crash  exited during start-up · <command>
                log: ModuleNotFoundError: no module named foo
                fix: see its log above
✓ server fine   8 tool(s) · <command>
✓ model demo    demo: built in, needs no endpoint

agent a · model demo · servers tls, crash, fine
  fine__echo        read-only  runs without approval
  fine__write_note             needs approval
  (tls: unavailable, see above)
  (crash: unavailable, see above)

2 problem(s) found.
""")
    assert ran.err == ""  # a server's stderr goes to its log (the snapshot shows stdout)
    logs = tmp_path / "state" / "agents-mcp" / "log"
    assert "fine: up" in (logs / "fine.log").read_text()
    report = json.loads(runs["json"].out)
    assert (runs["json"].code, report["ok"], report["problems"]) == (1, False, 2)
    rows = {r["item"]: r for r in report["checks"]}
    assert rows["server tls"]["log"][-1] == snapshot(
        "ssl.SSLCertVerificationError: certificate verify failed"
    )
    assert (rows["server fine"]["ok"], rows["server fine"]["log"]) == (True, [])
    assert report["agents"] == snapshot(
        [
            {
                "name": "a",
                "model": "demo",
                "servers": ["tls", "crash", "fine"],
                "personalities": [],
                "tools": [
                    {"name": "fine__echo", "read_only": True, "needs_approval": False},
                    {"name": "fine__write_note", "read_only": False, "needs_approval": True},
                ],
                "unavailable_servers": ["tls", "crash"],
                "delegates_to": [],
                "source": None,
            }
        ]
    )


async def test_a_server_that_never_answers_is_not_retried_but_proxies_are_named(
    tmp_path: Path,
) -> None:
    silent = "import sys; sys.stdin.read()"  # waits for its input to end: never answers
    data = {
        "mcpServers": {"quiet": {"command": sys.executable, "args": ["-c", silent]}},
        "models": {"demo": {"provider": "demo"}},
        "agents": {"a": {"description": "d", "model": "demo", "servers": ["quiet"]}},
    }
    cfg = write_config(tmp_path / "agents.json", data)
    ran = await agents_mcp(
        "check", "--config", str(cfg), "--timeout", "1", "--json",
        tmp_path=tmp_path, inherit=False, HTTPS_PROXY="http://proxy:3128",
    )  # fmt: skip
    (row,) = [r for r in json.loads(ran.out)["checks"] if r["item"] == "server quiet"]
    assert (ran.code, row["ok"]) == (1, False)
    assert scrub(row["fix"]) == snapshot(
        "its log <tmp>/state/agents-mcp/log/quiet.log is empty; a first npx/uvx start downloads: try again, or raise --timeout; if it needs the network, pass HTTPS_PROXY in its env"
    )
    log = (tmp_path / "state" / "agents-mcp" / "log" / "quiet.log").read_text()
    assert log.count("---- agents-mcp started") == 1  # one start: no retry


async def test_check_says_which_database_and_whether_it_can_be_used(
    tmp_path: Path, pg_cluster: str
) -> None:
    """A PostgreSQL URL: unreachable, reachable and empty, then used; nothing is created
    by looking (check never migrates)."""
    from agents_mcp.store import open_store
    from tests.postgres import fresh_database

    url = await fresh_database(pg_cluster)
    dead = "postgresql://postgres@127.0.0.1:9/nowhere"

    def config(db: str) -> str:
        data = {
            "models": {"demo": {"provider": "demo"}},
            "agents": {"a": {"description": "d", "model": "demo"}},
            "server": {"db": db},
        }
        return str(write_config(tmp_path / "agents.json", data))

    empty = await agents_mcp("check", "--json", "--config", config(url), tmp_path=tmp_path)
    again = await agents_mcp("check", "--json", "--config", config(url), tmp_path=tmp_path)
    store = await open_store(url)
    await store.close()
    used = await agents_mcp("check", "--json", "--config", config(url), tmp_path=tmp_path)
    down = await agents_mcp("check", "--json", "--config", config(dead), tmp_path=tmp_path)

    def database(ran: Any) -> tuple[Any, str]:
        (row,) = [c for c in json.loads(ran.out)["checks"] if c["item"] == "database"]
        return row["ok"], row["detail"].split(" · ", 1)[1]

    assert (empty.code, used.code, down.code) == (0, 0, 1)
    ok, detail = database(empty)
    assert ok and detail.startswith("PostgreSQL 15.")
    assert detail.endswith("empty: the first start creates its tables")
    assert database(again) == database(empty)  # looking created nothing
    assert database(used)[1].endswith("up to date")
    assert database(down)[0] is False and "cannot reach PostgreSQL" in database(down)[1]


async def test_check_shows_sqlite_commits_that_may_be_lost(tmp_path: Path) -> None:
    def config(server: dict[str, Any]) -> str:
        data = {
            "models": {"demo": {"provider": "demo"}},
            "agents": {"a": {"description": "d", "model": "demo"}},
            "server": {"db": str(tmp_path / "threads.db"), **server},
        }
        return str(write_config(tmp_path / "agents.json", data))

    def database(ran: Any) -> str:
        (row,) = [c for c in json.loads(ran.out)["checks"] if c["item"] == "database"]
        return str(row["detail"])

    durable = await agents_mcp("check", "--json", "--config", config({}), tmp_path=tmp_path)
    risky = config({"sqlite_durability": "may-lose-last-commits"})
    fast = await agents_mcp("check", "--json", "--config", risky, tmp_path=tmp_path)
    assert "lost" not in database(durable)
    assert database(fast).endswith(
        "commits not synced: the last ones may be lost on power loss (sqlite_durability)"
    )
