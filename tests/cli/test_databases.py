"""Where the threads are (``--db``, ``[server] db``) and the end of their life, through
the CLI as a user runs it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.runner import THREAD, Options, agents_mcp, all_of
from tests.conftest import stdio_downstream
from tests.processes import free_port, write_config

pytestmark = pytest.mark.anyio

DEMO: dict[str, Any] = {
    "mcpServers": {"notes": stdio_downstream("--name", "notes")},
    "models": {"demo": {"provider": "demo"}},
    "agents": {
        "demo": {"description": "Echoes", "model": "demo"},
        "boss": {"description": "Delegates", "model": "demo", "agents": ["demo"]},
        "scribe": {
            "description": "Writes notes",
            "model": "demo",
            "servers": ["notes"],
            "require_approval": "always",
        },
    },
}


def url_form(db: str) -> str:
    """The same database written as a URL: ``sqlite:///abs/path`` for a SQLite file."""
    return db if db.startswith("postgresql://") else f"sqlite://{db}"


async def test_threads_and_show_read_the_database_chat_wrote(tmp_path: Path, db_url: str) -> None:
    """`threads` and `show` open the same database `chat` used, whichever way it is named:
    --db as a path or URL (sqlite:///…, postgresql://…), or [server] db = "${DATABASE_URL}"."""
    config = write_config(tmp_path / "agents.json", DEMO)
    chat = await agents_mcp(
        "chat", "demo", "hello", "--config", str(config), "--db", db_url, tmp_path=tmp_path
    )
    assert chat.code == 0, chat.err
    (thread_id,) = set(THREAD.findall(chat.err))
    named = write_config(tmp_path / "named.json", {**DEMO, "server": {"db": "${DATABASE_URL}"}})
    env = {"DATABASE_URL": url_form(db_url)}
    runs = await all_of(
        {
            "threads": agents_mcp("threads", "--db", url_form(db_url), "--json", tmp_path=tmp_path),
            "show": agents_mcp("show", thread_id, "--db", url_form(db_url), tmp_path=tmp_path),
            "threads (config)": agents_mcp(
                "threads", "--config", str(named), "--json", tmp_path=tmp_path, environ=env
            ),
            "show (config)": agents_mcp(
                "show", thread_id, "--config", str(named), tmp_path=tmp_path, environ=env
            ),
        }
    )
    assert {k: (r.code, r.err) for k, r in runs.items()} == dict.fromkeys(runs, (0, ""))
    for listing in (runs["threads"], runs["threads (config)"]):
        assert [t["thread_id"] for t in json.loads(listing.out)["threads"]] == [thread_id]
    for shown in (runs["show"], runs["show (config)"]):
        assert shown.out.startswith(f"thread {thread_id} · agent demo · completed")
        assert "you:\n  hello" in shown.out


async def test_an_unreachable_postgresql_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    gone = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/threads"
    runs = await all_of(
        {
            "threads": agents_mcp("threads", "--db", gone, tmp_path=tmp_path),
            "show": agents_mcp("show", "th_" + "x" * 24, "--db", gone, tmp_path=tmp_path),
        }
    )
    for name, ran in runs.items():
        assert (ran.code, ran.out) == (1, ""), name
        assert "cannot reach PostgreSQL" in ran.err and "no threads" not in ran.err, name
        assert "secret" not in ran.err, name


async def test_a_database_scheme_agents_mcp_does_not_speak_is_refused(tmp_path: Path) -> None:
    """`--db mysql://…` used to become a SQLite file named `mysql:/…`: now every command
    (and the config's [server] db) refuses it, listing the forms it accepts."""
    config = write_config(tmp_path / "agents.json", DEMO)
    in_config = write_config(tmp_path / "mysql.json", {**DEMO, "server": {"db": "mysql://x@y/z"}})
    common: Options = {"tmp_path": tmp_path, "cwd": tmp_path, "input": ""}
    runs = await all_of(
        {
            "chat": agents_mcp(
                "chat", "demo", "hi", "--config", str(config), "--db", "mysql://x@y/z", **common
            ),
            "threads": agents_mcp("threads", "--db", "mysql://x@y/z", **common),
            "show": agents_mcp("show", "th_" + "x" * 24, "--db", "mysql://x@y/z", **common),
            "serve": agents_mcp(
                "serve", "--config", str(config), "--db", "mysql://x@y/z", **common
            ),
            "driver suffix": agents_mcp("threads", "--db", "postgresql+asyncpg://x@y/z", **common),
            "config": agents_mcp("chat", "demo", "hi", "--config", str(in_config), **common),
        }
    )
    assert {k: r.code for k, r in runs.items()} == dict.fromkeys(runs, 2)
    for name, ran in runs.items():
        assert ran.out == "" and "Traceback" not in ran.err, name
        assert "unsupported database" in ran.err, (name, ran.err)
        assert "sqlite:///abs/path" in ran.err and "postgresql://" in ran.err, name
    assert "--db: unsupported database 'mysql://'" in runs["threads"].err
    assert "server.db: unsupported database 'mysql://'" in runs["config"].err
    assert not (tmp_path / "mysql:").exists()  # no SQLite file named after the URL


async def test_threads_delete_removes_a_finished_tree_and_refuses_the_rest(
    tmp_path: Path, db_url: str
) -> None:
    config = write_config(tmp_path / "agents.json", DEMO)
    common = ("--config", str(config), "--db", db_url)
    chats = await all_of(
        {
            "kept": agents_mcp("chat", "demo", "keep me", *common, tmp_path=tmp_path),
            "tree": agents_mcp(
                "chat", "boss", 'call agent__demo {"message": "hi"}', *common, tmp_path=tmp_path
            ),
            "waiting": agents_mcp(
                "chat",
                "scribe",
                'call notes__write_note {"title": "t", "body": "b"}',
                "--json",
                *common,
                tmp_path=tmp_path,
                input="",
            ),
        }
    )
    kept, boss, waiting = (THREAD.findall(chats[k].err + chats[k].out)[0] for k in chats)
    listed = await agents_mcp("threads", "--all", "--json", *common, tmp_path=tmp_path)
    by_agent = {t["agent"]: t for t in json.loads(listed.out)["threads"]}
    every = {t["thread_id"]: t["agent"] for t in json.loads(listed.out)["threads"]}
    child = next(t for t, agent in every.items() if agent == "demo" and t != kept)
    assert by_agent["scribe"]["status"] == "needs_approval"

    refused = await all_of(
        {
            "child": agents_mcp("threads", "delete", child, *common, tmp_path=tmp_path),
            "waiting": agents_mcp("threads", "delete", waiting, *common, tmp_path=tmp_path),
        }
    )
    assert {k: r.code for k, r in refused.items()} == {"child": 1, "waiting": 1}
    assert f"is a delegation (agent 'demo') inside thread {boss!r}" in refused["child"].err
    assert "waits for approval: only a finished thread can be deleted" in refused["waiting"].err
    assert f"agents-mcp cancel {waiting}" in refused["waiting"].err

    deleted = await agents_mcp("threads", "delete", boss, "--json", *common, tmp_path=tmp_path)
    assert deleted.code == 0, deleted.err
    assert json.loads(deleted.out) == {
        "thread_id": boss,
        "agent": "boss",
        "deleted_threads": [boss, child],
    }
    after = await all_of(
        {
            "threads": agents_mcp("threads", "--all", "--json", *common, tmp_path=tmp_path),
            "show": agents_mcp("show", boss, *common, tmp_path=tmp_path),
            "show child": agents_mcp("show", child, *common, tmp_path=tmp_path),
            "again": agents_mcp("threads", "delete", boss, *common, tmp_path=tmp_path),
            "continue": agents_mcp(
                "chat", "boss", "more", "--thread", boss, *common, tmp_path=tmp_path
            ),
        }
    )
    remaining = {t["thread_id"] for t in json.loads(after["threads"].out)["threads"]}
    assert remaining == {kept, waiting}
    for name in ("show", "show child", "again", "continue"):
        assert after[name].code == 2 and "not found" in after[name].err, name
    plain = await agents_mcp("threads", "delete", kept, *common, tmp_path=tmp_path)
    assert (plain.code, plain.out) == (0, f"deleted thread {kept} (agent demo)\n")


async def test_a_lease_too_short_to_survive_a_loaded_host_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agents.json", {**DEMO, "server": {"lease_seconds": 3}})
    ran = await agents_mcp("serve", "--config", str(config), tmp_path=tmp_path, input="")
    assert (ran.code, ran.out) == (2, "")
    assert "server.lease_seconds: must be at least 10: a replica renews its lease" in ran.err
