"""The ``agents-mcp`` command through its real entry point, in subprocesses.

Models are scripted behind a Chat Completions fake on loopback that lives in the test's
event loop (so the CLI runs with ``anyio.run_process``, never a blocking call), and the
downstream server is the real tests/downstream_server.py over stdio.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from inline_snapshot import snapshot

from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.testing.chat_server import FakeChatServer, Fault
from tests.conftest import DOWNSTREAM
from tests.processes import ROOT, write_config

pytestmark = pytest.mark.anyio


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def agents_mcp(
    *args: str, tmp_path: Path, input: str | None = None, cwd: Path = ROOT, **env: str
) -> Ran:
    """Run ``python -m agents_mcp ARGS`` to completion (bounded); never in the user's dirs."""
    environ = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), **env}
    environ.pop("AGENTS_MCP_CONFIG", None)
    with anyio.fail_after(90):
        proc = await anyio.run_process(
            [sys.executable, "-m", "agents_mcp", *args],
            input=None if input is None else input.encode(),
            check=False,
            cwd=cwd,
            env=environ,
        )
    return Ran(proc.returncode or 0, proc.stdout.decode(), proc.stderr.decode())


async def all_of(runs: dict[str, Awaitable[Ran]]) -> dict[str, Ran]:
    """Run several commands at once (each is a process: they overlap well)."""
    done: dict[str, Ran] = {}

    async def one(key: str, run: Awaitable[Ran]) -> None:
        done[key] = await run

    async with anyio.create_task_group() as tg:
        for key, run in runs.items():
            tg.start_soon(one, key, run)
    return {k: done[k] for k in runs}


def scrub(text: str, *known: tuple[str, str]) -> str:
    """Replace what changes between runs: ids, times, paths, ports."""
    for value, name in known:
        text = text.replace(value, name)
    # Same lengths as the originals, so columns stay aligned.
    text = re.sub(r"th_[A-Za-z0-9_-]{24}", "th_" + "x" * 24, text)
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z", _zeros, text)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)


def _zeros(m: re.Match[str]) -> str:
    return re.sub(r"\d", "0", m[0])


def helper_config(base_url: str, *, policy: Any = "read_only", **extra: Any) -> dict[str, Any]:
    return {
        "mcpServers": {
            "notes": {"command": sys.executable, "args": [DOWNSTREAM, "--name", "notes"]},
            **extra.pop("servers", {}),
        },
        "models": {"main": {"base_url": base_url, "model": "fake-model"}},
        "agents": {
            "helper": {
                "description": "Takes notes",
                "model": "main",
                "servers": ["notes"],
                "require_approval": policy,
                **extra,
            }
        },
    }


COMMANDS = ["serve", "chat", "threads", "show", "check", "init"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
async def test_every_command_has_help(tmp_path: Path, command: str | None) -> None:
    ran = await agents_mcp(*([command] if command else []), "--help", tmp_path=tmp_path)
    assert ran.code == 0
    assert ran.out.startswith(f"usage: agents-mcp {command or ''}".rstrip())
    assert ran.err == ""


async def test_usage_and_config_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[agents.a]\nmodel = "nope"\n')
    argvs = {
        "no command": [],
        "missing file": ["chat", "a", "hi", "--config", "nope.toml"],
        "invalid file": ["serve", "--config", str(broken)],
        "unknown thread": ["show", "th_nope", "--db", str(tmp_path / "t.db")],
        "bad option": ["threads", "--limit", "x"],
        "debug": ["--debug", "serve", "--config", "nope.toml"],
    }
    runs = await all_of({k: agents_mcp(*argv, tmp_path=tmp_path) for k, argv in argvs.items()})
    debug = runs.pop("debug")
    assert {k: r.code for k, r in runs.items()} == dict.fromkeys(runs, 2)
    assert all(r.out == "" and "Traceback" not in r.err for r in runs.values())
    assert scrub(runs["missing file"].err) == snapshot("agents-mcp: nope.toml: no such file\n")
    assert scrub(runs["invalid file"].err, (str(tmp_path), "<tmp>")) == snapshot(
        """\
agents-mcp: <tmp>/broken.toml: agents.a.description: required key is missing
<tmp>/broken.toml: agents.a.model: unknown model 'nope'; valid: (none defined)
"""
    )
    assert scrub(runs["unknown thread"].err, (str(tmp_path), "<tmp>")) == snapshot(
        "agents-mcp: thread 'th_nope' not found (no database at <tmp>/t.db)\n"
    )
    assert runs["bad option"].err.splitlines()[-1] == snapshot(
        "agents-mcp threads: error: argument --limit: invalid int value: 'x'"
    )
    assert debug.code == 1 and "Traceback" in debug.err


async def test_chat_streams_asks_for_approval_and_shares_the_thread_database(
    tmp_path: Path,
) -> None:
    log, db = tmp_path / "executed.jsonl", tmp_path / "threads.db"
    llm = ScriptedLLM(
        Call("notes__echo", {"text": "hi"}, id="e1"),
        Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"),
        "Echoed and saved.",
    )
    fake = FakeChatServer(llm)
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["mcpServers"]["notes"]["env"] = {"DOWNSTREAM_LOG": str(log)}
        cfg = write_config(tmp_path / "agents.json", data)
        ran = await agents_mcp(
            "chat", "helper", "Echo hi, then save a note", "--config", str(cfg), "--db", str(db),
            input="y\n", tmp_path=tmp_path,
        )  # fmt: skip
    assert (ran.code, ran.out) == (0, "Echoed and saved.\n")
    assert scrub(ran.err) == snapshot(
        """\
→ calling notes__echo
? notes__write_note needs your approval to run with:
    {
      "title": "t",
      "body": "b"
    }
  approve? [y]es, [n]o (or: n <reason>), [a]lways for this tool in this thread: y
→ calling notes__write_note
thread: th_xxxxxxxxxxxxxxxxxxxxxxxx (continue with `agents-mcp chat helper --thread th_xxxxxxxxxxxxxxxxxxxxxxxx`)
"""
    )
    executed = [json.loads(line) for line in log.read_text().splitlines()]
    assert executed == [
        {"server": "notes", "tool": "write_note", "arguments": {"title": "t", "body": "b"}}
    ]
    thread_id = re.findall(r"th_[A-Za-z0-9_-]{24}", ran.err)[0]

    runs = await all_of(
        {
            "threads": agents_mcp("threads", "--db", str(db), tmp_path=tmp_path),
            "show": agents_mcp("show", thread_id, "--db", str(db), tmp_path=tmp_path),
            "json": agents_mcp("show", thread_id, "--db", str(db), "--json", tmp_path=tmp_path),
        }
    )
    listed, shown, as_json = runs["threads"], runs["show"], runs["json"]
    assert scrub(listed.out) == snapshot(
        """\
THREAD                       AGENT   STATUS     UPDATED               TITLE
th_xxxxxxxxxxxxxxxxxxxxxxxx  helper  completed  0000-00-00 00:00:00Z  Echo hi, then save a note
"""
    )
    assert scrub(shown.out) == snapshot(
        """\
thread th_xxxxxxxxxxxxxxxxxxxxxxxx · agent helper · completed
started 0000-00-00 00:00:00Z · updated 0000-00-00 00:00:00Z

you:
  Echo hi, then save a note

helper:
  → notes__echo {"text": "hi"}
    ← notes echo: hi

helper:
  → notes__write_note {"title": "t", "body": "b"}
    [approved]
    ← saved note 't' (1 chars)

helper:
  Echoed and saved.

usage: 30 input + 15 output tokens · 3 model request(s) · 2 tool call(s)
"""
    )
    data = json.loads(as_json.out)
    assert [(m["role"], m["status"]) for m in data["messages"]] == snapshot(
        [
            ("user", "complete"),
            ("assistant", "complete"),
            ("tool", "complete"),
            ("assistant", "complete"),
            ("tool", "complete"),
            ("assistant", "complete"),
        ]
    )
    assert [(a["call_id"], a["status"], a["arguments"]) for a in data["approvals"]] == [
        ("w1", "approved", {"title": "t", "body": "b"})
    ]


async def test_interactive_chat_an_undecided_call_and_continuing_the_thread(
    tmp_path: Path,
) -> None:
    llm = ScriptedLLM(
        "one",
        Call("notes__write_note", {"title": "x", "body": "y"}, id="w1"),
        "Not saved, as you wish.",
        "three",
    )
    fake = FakeChatServer(llm)
    async with fake.serve() as base_url:
        data = helper_config(base_url, personalities={"pirate": "Talk like a pirate."})
        cfg = write_config(tmp_path / "agents.json", data)
        common = ["--config", str(cfg), "--db", str(tmp_path / "threads.db")]
        # One message per line; input ends while the approval question is open.
        first = await agents_mcp(
            "chat", "helper", "--personality", "pirate", *common, input="first\n\nsave x\n",
            tmp_path=tmp_path,
        )  # fmt: skip
        thread_id = re.findall(r"th_[A-Za-z0-9_-]{24}", first.err)[0]
        waiting = await agents_mcp(
            "threads", "--status", "needs_approval", *common, tmp_path=tmp_path
        )
        # Continuing asks about the pending call first, then sends the new message.
        again = await agents_mcp(
            "chat", "helper", "third", "--thread", thread_id, *common, input="n not now\n",
            tmp_path=tmp_path,
        )  # fmt: skip
    assert (first.code, first.out) == (1, "one\n")
    assert scrub(first.err).splitlines()[-2:] == snapshot(
        [
            "agents-mcp: undecided, the run waits for approval (call w1)",
            "thread: th_xxxxxxxxxxxxxxxxxxxxxxxx (continue with `agents-mcp chat helper --thread th_xxxxxxxxxxxxxxxxxxxxxxxx`)",
        ]
    )
    assert scrub(waiting.out) == snapshot("""\
THREAD                       AGENT   STATUS          UPDATED               TITLE
th_xxxxxxxxxxxxxxxxxxxxxxxx  helper  needs_approval  0000-00-00 00:00:00Z  first
    waiting: notes__write_note {"title": "x", "body": "y"} (call w1)
""")
    assert (again.code, again.out) == (0, "Not saved, as you wish.\nthree\n")
    assert "n not now" in again.err
    # One thread throughout: the last request carries the whole conversation, the refusal
    # with its reason included. A personality holds for the messages it was sent with.
    assert [(m["role"], m.get("content")) for m in fake.requests[-1]["messages"]] == snapshot(
        [
            ("user", "first"),
            ("assistant", "one"),
            ("user", "save x"),
            ("assistant", None),
            (
                "tool",
                "The user refused this call: not now. Do not retry it without asking the user.",
            ),
            ("assistant", "Not saved, as you wish."),
            ("user", "third"),
        ]
    )
    systems = [
        [m["content"] for m in r["messages"] if m["role"] == "system"] for r in fake.requests
    ]
    assert systems == snapshot(
        [["Talk like a pirate."], ["Talk like a pirate."], ["Talk like a pirate."], []]
    )


async def test_chat_asks_about_the_calls_of_delegated_agents(tmp_path: Path) -> None:
    llm = ScriptedLLM(  # one script for both agents: their requests come one after another
        Call("agent__helper", {"message": "save a note"}, id="d1"),  # boss
        Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"),  # helper
        "Saved it.",  # helper
        "The helper saved it.",  # boss
    )
    fake = FakeChatServer(llm)
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["agents"]["boss"] = {
            "description": "Delegates",
            "model": "main",
            "agents": ["helper"],
            "require_approval": "never",
        }
        cfg = write_config(tmp_path / "agents.json", data)
        common = ["--config", str(cfg), "--db", str(tmp_path / "threads.db")]
        ran = await agents_mcp(
            "chat", "boss", "get a note saved", *common, input="y\n", tmp_path=tmp_path
        )
    assert (ran.code, ran.out) == (0, "The helper saved it.\n")
    assert scrub(ran.err) == snapshot("""\
? notes__write_note (asked by boss › helper) needs your approval to run with:
    {
      "title": "t",
      "body": "b"
    }
  approve? [y]es, [n]o (or: n <reason>), [a]lways for this tool in this thread: y
→ helper › calling notes__write_note
thread: th_xxxxxxxxxxxxxxxxxxxxxxxx (continue with `agents-mcp chat boss --thread th_xxxxxxxxxxxxxxxxxxxxxxxx`)
""")
    boss = re.findall(r"th_[A-Za-z0-9_-]{24}", ran.err)[-1]
    runs = await all_of(
        {
            "top": agents_mcp("threads", *common, tmp_path=tmp_path),
            "all": agents_mcp("threads", "--all", "--json", *common, tmp_path=tmp_path),
            "show": agents_mcp("show", boss, *common, tmp_path=tmp_path),
            "json": agents_mcp("show", boss, "--json", *common, tmp_path=tmp_path),
        }
    )
    assert len(runs["top"].out.splitlines()) == 2  # the header and the boss's thread
    assert [t["agent"] for t in json.loads(runs["all"].out)["threads"]] == ["boss", "helper"]
    shown = json.loads(runs["json"].out)["delegations"]
    assert [(d["agent"], d["status"], d["call_id"]) for d in shown] == [
        ("helper", "completed", "d1")
    ]
    assert scrub(runs["show"].out) == snapshot("""\
thread th_xxxxxxxxxxxxxxxxxxxxxxxx · agent boss · completed
started 0000-00-00 00:00:00Z · updated 0000-00-00 00:00:00Z

you:
  get a note saved

boss:
  → agent__helper {"message": "save a note"}
    ← Saved it.

    [agent helper · thread_id: th_xxxxxxxxxxxxxxxxxxxxxxxx · pass this thread_id to continue the conversation with this agent]

boss:
  The helper saved it.

usage: 20 input + 10 output tokens · 2 model request(s) · 1 tool call(s)
""")


async def test_a_failed_run_exits_1_with_the_reason(tmp_path: Path) -> None:
    fake = FakeChatServer(ScriptedLLM())
    fake.faults.append(Fault(status=401, body={"error": {"message": "Incorrect API key"}}))
    async with fake.serve() as base_url:
        data = helper_config(base_url)
        data["agents"]["helper"]["servers"] = []
        cfg = write_config(tmp_path / "agents.json", data)
        ran = await agents_mcp(
            "chat", "helper", "hi", "--config", str(cfg), "--db", str(tmp_path / "t.db"),
            tmp_path=tmp_path,
        )  # fmt: skip
    assert (ran.code, ran.out) == (1, "")
    assert scrub(ran.err) == snapshot(
        """\
agents-mcp: the run failed (llm_error): LLM request failed: HTTP 401 from http://127.0.0.1:<port>/v1: Incorrect API key
thread: th_xxxxxxxxxxxxxxxxxxxxxxxx (continue with `agents-mcp chat helper --thread th_xxxxxxxxxxxxxxxxxxxxxxxx`)
"""
    )


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
    assert ran.code == 2
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


async def test_init_writes_a_starter_that_passes_check(tmp_path: Path) -> None:
    ran = await agents_mcp("init", tmp_path=tmp_path, cwd=tmp_path)
    assert ran.code == 0
    written = tmp_path / "agents.toml"
    entry = json.loads(ran.out[ran.out.index("{") : ran.out.rindex("}") + 1])["mcpServers"][
        "agents"
    ]
    assert Path(entry["command"]).is_absolute() and await anyio.Path(entry["command"]).exists()
    assert entry["args"][-3:] == ["serve", "--config", str(written.resolve())]
    assert scrub(
        ran.out, (str(written.resolve()), "<config>"), (entry["command"], "<cmd>")
    ) == snapshot(
        """\
Wrote <config>

Next:
  agents-mcp check --config agents.toml --offline
  agents-mcp chat demo "hello" --config agents.toml

Claude Desktop: add this to claude_desktop_config.json (Settings → Developer →
Edit Config), then restart Claude Desktop:

{
  "mcpServers": {
    "agents": {
      "command": "<cmd>",
      "args": [
        "serve",
        "--config",
        "<config>"
      ]
    }
  }
}

Claude Code:

  claude mcp add agents -- <cmd> serve --config <config>
"""
    )
    again = await agents_mcp("init", tmp_path=tmp_path, cwd=tmp_path)
    assert (again.code, again.err) == (
        2,
        "agents-mcp: agents.toml already exists; not overwriting it (choose another PATH)\n",
    )
    checked = await agents_mcp("check", "--offline", tmp_path=tmp_path, cwd=tmp_path)
    assert checked.code == 0, checked.out + checked.err
    assert checked.out.endswith("All checks passed.\n")


async def test_serve_keeps_stdout_for_the_protocol(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "agents.json", helper_config("http://127.0.0.1:9/v1"))
    db = tmp_path / "threads.db"
    ran = await agents_mcp(
        "serve", "--config", str(cfg), "--db", str(db), input="", tmp_path=tmp_path
    )
    assert (ran.code, ran.out) == (0, "")
    assert scrub(ran.err, (str(db), "<db>")) == snapshot(
        "agents-mcp 0.1.0: 1 agent(s) (helper) on stdio; threads in <db>\n"
    )
