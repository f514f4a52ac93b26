"""The environment variables a config names, as ``chat``, ``check``, ``init`` and
``install`` see them: an unset one only stops what uses it, and an empty API key that an
endpoint needs is pointed out. Through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inline_snapshot import snapshot

from tests.cli.runner import agents_mcp, all_of, scrub
from tests.processes import write_config

pytestmark = pytest.mark.anyio


def two_models(tmp_path: Path) -> Path:
    """The demo agent on the demo model, and an agent on a model whose key is unset."""
    return write_config(
        tmp_path / "agents.json",
        {
            "models": {
                "demo": {"provider": "demo"},
                "hosted": {
                    "base_url": "https://llm.example/v1",
                    "api_key": "${ENV_TEST_UNSET_KEY}",
                    "model": "m",
                },
            },
            "agents": {
                "demo": {"description": "On the demo model", "model": "demo"},
                "hosted": {"description": "On the hosted model", "model": "hosted"},
            },
        },
    )


async def test_an_unset_variable_stops_only_the_agents_whose_model_names_it(
    tmp_path: Path,
) -> None:
    cfg = str(two_models(tmp_path))
    db = ["--db", str(tmp_path / "threads.db")]
    runs = await all_of(
        {
            "demo": agents_mcp("chat", "demo", "hi", "--config", cfg, *db, tmp_path=tmp_path),
            "hosted": agents_mcp("chat", "hosted", "hi", "--config", cfg, *db, tmp_path=tmp_path),
            # Their own database each: a chat creates its file meanwhile.
            "check": agents_mcp(
                "check",
                "--offline",
                "--config",
                cfg,
                "--db",
                str(tmp_path / "c.db"),
                tmp_path=tmp_path,
            ),
            "json": agents_mcp(
                "check",
                "--offline",
                "--json",
                "--config",
                cfg,
                "--db",
                str(tmp_path / "j.db"),
                tmp_path=tmp_path,
            ),
        }
    )
    demo, hosted, check = runs["demo"], runs["hosted"], runs["check"]
    assert demo.code == 0 and demo.out.startswith("You said: hi\n"), demo.err
    assert "ENV_TEST_UNSET_KEY" not in demo.err  # not this agent's business
    assert (hosted.code, hosted.out) == (2, "")
    assert scrub(hosted.err, (cfg, "<config>")) == snapshot(
        "agents-mcp: agent 'hosted' uses model 'hosted', which needs the environment variable ENV_TEST_UNSET_KEY (named in models.hosted of <config>): it is not set; run `export ENV_TEST_UNSET_KEY=…` and try again\n"
    )
    # check goes on past the unset variable and tests the rest: one problem, exit 1.
    assert check.code == 1
    assert scrub(check.out, (cfg, "<config>")) == snapshot("""\
Checking <config>

✓ config                  2 agent(s), 0 server(s), 2 model(s)
✗ env ENV_TEST_UNSET_KEY  not set
                          fix: export ENV_TEST_UNSET_KEY=… before starting
✓ database                <tmp>/c.db · SQLite, created on first use
✓ model demo              demo: built in, needs no endpoint
· model hosted            not contacted: needs ENV_TEST_UNSET_KEY (see above), so agent hosted cannot run

agent demo · model demo · servers none
  (no tools)

agent hosted · model hosted · servers none
  (no tools)

1 problem(s) found.
""")
    report = json.loads(runs["json"].out)
    assert (runs["json"].code, report["problems"]) == (1, 1)
    assert [a["name"] for a in report["agents"]] == ["demo", "hosted"]


async def test_an_empty_key_for_a_hosted_endpoint_is_a_placeholder_and_a_warning(
    tmp_path: Path,
) -> None:
    """The starter's `${OPENAI_API_KEY:-}` suits a local endpoint; for the hosted default
    it means no key: init and install leave a placeholder to fill in, check warns."""
    started = await agents_mcp("init", tmp_path=tmp_path, cwd=tmp_path)
    (tmp_path / "config" / "Claude").mkdir(parents=True)
    installed = await agents_mcp(
        "install", "claude-desktop", tmp_path=tmp_path, cwd=tmp_path, OPENAI_API_KEY="sk-mine"
    )
    checked = await agents_mcp(
        "check", "--offline", tmp_path=tmp_path, cwd=tmp_path, OPENAI_API_KEY="", OPENAI_BASE_URL=""
    )
    assert started.code == 0 and '"OPENAI_API_KEY": "<OPENAI_API_KEY>"' in started.out
    assert "OPENAI_API_KEY=<OPENAI_API_KEY>" in started.out  # claude mcp add -e …
    desktop = tmp_path / "config" / "Claude" / "claude_desktop_config.json"
    env = json.loads(desktop.read_text())["mcpServers"]["agents"]["env"]
    assert env["OPENAI_API_KEY"] == "<OPENAI_API_KEY>"  # never the user's sk-mine
    assert installed.code == 0 and "fill in OPENAI_API_KEY" in installed.err
    assert checked.code == 0
    assert [line for line in checked.out.splitlines() if "OPENAI_API_KEY" in line] == snapshot(
        [
            "· env OPENAI_API_KEY   not set; its default (empty) is used",
            "                       fix: models.default then has no API key, which https://api.openai.com/v1 needs: export OPENAI_API_KEY=… (a local endpoint needs none)",
        ]
    )
    assert checked.out.endswith("All checks passed, with 1 warning(s) above.\n")


async def test_a_local_endpoint_keeps_its_empty_key(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "local.json",
        {
            "models": {
                "local": {
                    "base_url": "${LOCAL_URL:-http://localhost:11434/v1}",
                    "api_key": "${LOCAL_KEY:-}",
                    "model": "llama3.1",
                }
            },
            "agents": {"a": {"description": "d", "model": "local"}},
        },
    )
    runs = await all_of(
        {
            "print": agents_mcp(
                "install", "cursor", "--print", "--config", str(cfg), tmp_path=tmp_path
            ),
            "check": agents_mcp("check", "--offline", "--config", str(cfg), tmp_path=tmp_path),
        }
    )
    entry = json.loads(runs["print"].out)["mcpServers"]["agents"]
    assert entry["env"] == {"LOCAL_URL": "http://localhost:11434/v1", "LOCAL_KEY": ""}
    assert runs["check"].code == 0 and "warning" not in runs["check"].out
