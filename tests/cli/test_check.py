"""``agents-mcp check``, through the real entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from inline_snapshot import snapshot

from agents_mcp.testing import ScriptedLLM
from agents_mcp.testing.chat_server import FakeChatServer
from tests.cli.runner import agents_mcp, helper_config, scrub
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
    assert fake.requests[0]["messages"] == [{"role": "user", "content": "Reply with: ok"}]
    assert ran.code == 1
    known = [(str(cfg), "<config>"), (demo_server, "<demo_server>"), (sys.executable, "<python>")]
    assert scrub(ran.out, *known) == snapshot("""\
Checking <config>

✓ config         1 agent(s), 2 server(s), 2 model(s)
· env CHECK_KEY  not set; its default is used
✓ server demo    2 tool(s) · <python> <demo_server>
✗ server broken  cannot start 'no-such-command-agents-mcp': not found
                 fix: install it, or put its absolute path in mcpServers.broken.command
✓ model main     fake-model at http://127.0.0.1:<port>/v1 answered
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
