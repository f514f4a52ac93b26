"""The command line itself: help, options anywhere, usage errors and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from inline_snapshot import snapshot

from agents_mcp import __version__
from tests.cli.runner import agents_mcp, all_of, scrub
from tests.processes import ROOT, write_config

pytestmark = pytest.mark.anyio

COMMANDS = [
    "serve", "chat", "pending", "approve", "cancel", "threads", "show", "usage", "check",
    "agents", "tools", "ui", "init", "install", "uninstall", "login", "logout",
]  # fmt: skip
EXAMPLE = str(ROOT / "examples" / "agents.toml")


async def test_every_command_has_help(tmp_path: Path) -> None:
    runs = await all_of(
        {
            c or "": agents_mcp(*([c] if c else []), "--help", tmp_path=tmp_path)
            for c in [None, *COMMANDS]
        }
    )
    for command, ran in runs.items():
        assert (ran.code, ran.err) == (0, ""), command
        assert ran.out.startswith(f"Usage: agents-mcp {command or 'COMMAND'}"), command
        assert "--debug" in ran.out, command
    listed = runs[""].out.split("Commands")[1].split("╰")[0]
    assert [line.split()[1] for line in listed.splitlines()[1:-2]] == COMMANDS


async def test_the_usage_line_and_the_argument_table_name_arguments_alike(
    tmp_path: Path,
) -> None:
    """`Usage: agents-mcp approve THREAD_ID CALL_ID` above a table of THREAD_ID and
    CALL_ID, and a thread is a THREAD_ID wherever an option takes one."""
    runs = await all_of({c: agents_mcp(c, "--help", tmp_path=tmp_path) for c in COMMANDS})
    for command, ran in runs.items():
        usage = ran.out.splitlines()[0].split()[3:]  # after "Usage: agents-mcp COMMAND"
        named = [w.strip("[]") for w in usage if w.strip("[]") not in ("OPTIONS", "...")]
        table = ran.out.split("─ Arguments ")[1].split("╰")[0] if "─ Arguments " in ran.out else ""
        listed = re.findall(r"^│[ *]*([A-Z_]+)  ", table, re.M)
        assert named == listed, command
        metavars = set(re.findall(r"--(?:thread|call) ([A-Z_]+)", ran.out))
        assert metavars <= {"THREAD_ID", "CALL_ID"}, command
    assert "--thread THREAD_ID" in runs["chat"].out


async def test_options_go_anywhere(tmp_path: Path) -> None:
    argvs = {
        "after": ["chat", "demo", "hello", "--config", EXAMPLE],
        "between": ["chat", "demo", "--config", EXAMPLE, "hello"],
        "before": ["chat", "--config", EXAMPLE, "--debug", "demo", "hello"],
        "version": ["check", "--version"],
    }
    db = str(tmp_path / "threads.db")
    runs = await all_of(
        {k: agents_mcp(*argv, "--db", db, tmp_path=tmp_path) for k, argv in argvs.items()}
    )
    version = runs.pop("version")
    assert (version.code, version.out) == (0, f"agents-mcp {__version__}\n")
    for how, ran in runs.items():
        assert ran.code == 0 and ran.out.startswith("You said: hello\n"), (how, ran.err)


async def test_usage_and_config_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[agents.a]\nmodel = "nope"\nrequire_aproval = "never"\n')
    argvs = {
        "no command": [],
        "missing file": ["chat", "a", "hi", "--config", "nope.toml"],
        "missing default": ["pending"],
        "invalid file": ["serve", "--config", str(broken)],
        "unknown thread": ["show", "th_nope", "--db", str(tmp_path / "t.db")],
        "bad option value": ["threads", "--limit", "x"],
        "misspelt option": ["threads", "--limt", "3"],
        "misspelt command": ["chta", "demo"],
        "extra argument": ["chat", "demo", "hello", "there"],
        "debug": ["--debug", "serve", "--config", "nope.toml"],
    }
    runs = await all_of(
        {k: agents_mcp(*argv, tmp_path=tmp_path, cwd=tmp_path) for k, argv in argvs.items()}
    )
    debug = runs.pop("debug")
    assert {k: r.code for k, r in runs.items()} == dict.fromkeys(runs, 2)
    assert all(r.out == "" and "Traceback" not in r.err for r in runs.values())
    runs.pop("no command")  # the help, on stderr
    lines = {k: scrub(r.err, (str(tmp_path), "<tmp>")) for k, r in runs.items()}
    assert lines == snapshot(
        {
            "missing file": "agents-mcp: nope.toml (from --config): no such file; pass --config FILE, set AGENTS_MCP_CONFIG=FILE, or write a starter with `agents-mcp init`\n",
            "missing default": "agents-mcp: agents.toml (the default): no such file; pass --config FILE, set AGENTS_MCP_CONFIG=FILE, or write a starter with `agents-mcp init`\n",
            "invalid file": """\
agents-mcp: <tmp>/broken.toml: agents.a.description: required key is missing
<tmp>/broken.toml: agents.a.model: unknown model 'nope'; valid: (none defined)
<tmp>/broken.toml: agents.a.require_aproval: unknown key; did you mean 'require_approval'? valid keys: access, agents, budget, default_personality, description, disabled_tools, instructions, instructions_file, max_iterations, model, on_cancel, output_schema, output_schema_file, params, personalities, require_approval, servers, tools
""",
            "unknown thread": "agents-mcp: thread 'th_nope' not found (no database at <tmp>/t.db)\n",
            "bad option value": 'agents-mcp: invalid value for --limit: unable to convert "x" into int. (see `agents-mcp threads --help`)\n',
            "misspelt option": "agents-mcp: unknown option: --limt. Did you mean --limit? (see `agents-mcp threads --help`)\n",
            "misspelt command": 'agents-mcp: unknown command "chta". Did you mean "chat"? (see `agents-mcp --help`)\n',
            "extra argument": "agents-mcp: unexpected argument(s): there (quote a message that has spaces) (see `agents-mcp chat --help`)\n",
        }
    )
    assert debug.code == 1 and "Traceback" in debug.err


async def test_the_config_can_come_from_the_environment(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "agents.json",
        {
            "models": {"demo": {"provider": "demo"}},
            "agents": {"demo": {"description": "d", "model": "demo"}},
        },
    )
    db = str(tmp_path / "t.db")
    ran = await agents_mcp(
        "chat", "demo", "hi", "--db", db, tmp_path=tmp_path, AGENTS_MCP_CONFIG=str(cfg)
    )
    assert ran.code == 0 and ran.out.startswith("You said: hi\n")
    # The variable is still set when the hint is used: the hint does not repeat it.
    assert "--config" not in ran.err and f"--db {db}" in ran.err
    gone = await agents_mcp(
        "chat", "demo", "hi", tmp_path=tmp_path, AGENTS_MCP_CONFIG=str(tmp_path / "gone.toml")
    )
    assert scrub(gone.err, (str(tmp_path), "<tmp>")) == snapshot(
        "agents-mcp: <tmp>/gone.toml (from $AGENTS_MCP_CONFIG): no such file; pass --config FILE, set AGENTS_MCP_CONFIG=FILE, or write a starter with `agents-mcp init`\n"
    )


async def test_every_command_logs_in_one_format(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    runs = await all_of(
        {
            "serve": agents_mcp(
                "serve", "--debug", "--config", EXAMPLE, "--db", db, input="", tmp_path=tmp_path
            ),
            "chat": agents_mcp(
                "chat",
                "demo",
                "call demo__list_notes",
                "--debug",
                "--config",
                EXAMPLE,
                "--db",
                db + "2",
                tmp_path=tmp_path,
            ),
        }
    )
    line = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d agents-mcp (DEBUG|INFO|WARNING) [\w.]+: ")
    for command, ran in runs.items():
        assert ran.code == 0, ran.err
        logged = [s for s in ran.err.splitlines() if re.search(r" (DEBUG|INFO|WARNING) ", s)]
        assert logged, command
        assert [s for s in logged if not line.match(s)] == [], command


async def test_threads_pages_with_the_cursor_it_prints(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "t.db")]
    for message in ("one", "two", "three"):
        ran = await agents_mcp("chat", "demo", message, "--config", EXAMPLE, *db, tmp_path=tmp_path)
        assert ran.code == 0, ran.err
    first = await agents_mcp("threads", "--limit", "2", "--json", *db, tmp_path=tmp_path)
    page = json.loads(first.out)
    text = await agents_mcp("threads", "--limit", "2", *db, tmp_path=tmp_path)
    rest = await agents_mcp(
        "threads", "--limit", "2", "--cursor", page["next_cursor"], "--json", *db,
        tmp_path=tmp_path,
    )  # fmt: skip
    bad = await agents_mcp("threads", "--cursor", "nope", *db, tmp_path=tmp_path)
    assert [t["title"] for t in page["threads"]] == ["three", "two"]
    assert text.err == f"(more threads: add --cursor {page['next_cursor']})\n"
    assert rest.code == 0
    after = json.loads(rest.out)
    assert ([t["title"] for t in after["threads"]], after["next_cursor"]) == (["one"], None)
    assert bad.code == 2 and "invalid cursor 'nope'" in bad.err


async def test_check_looks_at_the_database_given_with_db(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "threads.db"
    db.parent.mkdir()
    ran = await agents_mcp(
        "check", "--offline", "--json", "--config", EXAMPLE, "--db", str(db), tmp_path=tmp_path
    )
    (row,) = [r for r in json.loads(ran.out)["checks"] if r["item"] == "database"]
    assert row["detail"].startswith(f"{db} · ")
    assert not db.exists()  # looked at, not created


READ_ONLY = """
import sys
from agents_mcp.cli import main
code = main(sys.argv[1:])
print(sorted({m.split(".")[0] for m in sys.modules} & {"fastmcp", "mcp", "mcp_types"}))
"""


def printed_last(script: str, *args: str) -> str:
    """The last line ``script`` prints, run by a new interpreter (what it imports is the
    question: the test's own process has imported everything already)."""
    ran = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = ran.stdout.splitlines()
    assert lines, (ran.stdout, ran.stderr)
    return lines[-1]


def test_the_server_loads_no_json_schema_validator_until_an_answer_is_checked() -> None:
    """jsonschema (with its format checkers) checks the answers to downstream servers'
    questions only: a server that is never asked one does not hold it in memory."""
    script = (
        "import sys, agents_mcp.cli.serving, agents_mcp.server.app;"
        " print('jsonschema' in sys.modules)"
    )
    assert printed_last(script) == "False"


@pytest.mark.parametrize("command", ["threads", "show", "usage", "agents", "pending", "cancel"])
def test_commands_that_reach_no_server_load_no_mcp_stack(tmp_path: Path, command: str) -> None:
    """Commands that reach no downstream server (``pending`` and ``cancel`` open the
    threads and their servers, which connect only on first use) answer without importing
    fastmcp or the MCP SDK: about a second of CPU on every call."""
    args = {"threads": [], "show": ["t-none"], "usage": [], "agents": ["--config", EXAMPLE]}
    args |= {"pending": ["--config", EXAMPLE], "cancel": ["t-none", "--config", EXAMPLE]}
    db = [] if command == "agents" else ["--db", str(tmp_path / "t.db")]
    assert printed_last(READ_ONLY, command, *args[command], *db) == "[]"
