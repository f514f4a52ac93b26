"""``agents-mcp init``, through the real entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import pytest
from inline_snapshot import snapshot

from tests.cli.runner import agents_mcp, scrub

pytestmark = pytest.mark.anyio


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

Add it to your MCP client (a backup of its config is kept):

  agents-mcp install claude-desktop --config agents.toml
  agents-mcp install claude-code --config agents.toml
  agents-mcp install cursor --config agents.toml

or by hand. Claude Desktop: add this to claude_desktop_config.json (Settings →
Developer → Edit Config), fill in the env values, and restart Claude Desktop:

{
  "mcpServers": {
    "agents": {
      "command": "<cmd>",
      "args": [
        "serve",
        "--config",
        "<config>"
      ],
      "env": {
        "OPENAI_BASE_URL": "https://api.openai.com/v1",
        "OPENAI_API_KEY": "<OPENAI_API_KEY>",
        "OPENAI_MODEL": "gpt-4.1-mini"
      }
    }
  }
}

Claude Code:

  claude mcp add agents --scope user -e OPENAI_BASE_URL=https://api.openai.com/v1 -e 'OPENAI_API_KEY=<OPENAI_API_KEY>' -e OPENAI_MODEL=gpt-4.1-mini -- <cmd> serve --config <config>
"""
    )
    again = await agents_mcp("init", tmp_path=tmp_path, cwd=tmp_path)
    assert (again.code, again.err) == (
        2,
        "agents-mcp: agents.toml already exists; not overwriting it (choose another PATH)\n",
    )
    checked = await agents_mcp("check", "--offline", tmp_path=tmp_path, cwd=tmp_path)
    assert checked.code == 0, checked.out + checked.err
    assert checked.out.endswith("All checks passed, with 1 warning(s) above.\n")


async def test_init_writes_json_for_a_json_name_and_refuses_other_formats(
    tmp_path: Path,
) -> None:
    written = await agents_mcp("init", "x.json", tmp_path=tmp_path, cwd=tmp_path)
    checked = await agents_mcp(
        "check", "--offline", "--config", "x.json", tmp_path=tmp_path, cwd=tmp_path
    )
    refused = await agents_mcp("init", "x.yaml", tmp_path=tmp_path, cwd=tmp_path)
    assert written.code == 0, written.err
    data = json.loads((tmp_path / "x.json").read_text())
    assert sorted(data["agents"]) == ["assistant", "demo"]
    assert checked.code == 0, checked.out + checked.err
    assert (refused.code, refused.err) == (
        2,
        "agents-mcp: x.yaml: a config is TOML or JSON, read by its extension; choose a name"
        " ending in .toml or .json, not .yaml\n",
    )
    assert not (tmp_path / "x.yaml").exists()


async def test_the_starter_suggests_owner_tokens_and_they_load_uncommented(
    tmp_path: Path,
) -> None:
    ran = await agents_mcp("init", tmp_path=tmp_path, cwd=tmp_path)
    assert ran.code == 0
    text = (tmp_path / "agents.toml").read_text()
    assert "auth_tokens" not in text
    server = text[text.index("# [server]\n") :]
    settings = re.compile(r"# (\[|\w+ = )")  # the commented-out settings, not the prose
    uncommented = [line[2:] if settings.match(line) else line for line in server.splitlines()]
    (tmp_path / "agents.toml").write_text(text.replace(server, "\n".join(uncommented) + "\n"))
    checked = await agents_mcp(
        "check", "--offline", tmp_path=tmp_path, cwd=tmp_path, AGENTS_MCP_TOKEN="t0ken"
    )
    assert checked.code == 0, checked.out + checked.err
    assert "\n[server.tokens.alice]\ntoken = " in (tmp_path / "agents.toml").read_text()
