"""``agents-mcp init``, through the real entry point."""

from __future__ import annotations

import json
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
        "OPENAI_API_KEY": "",
        "OPENAI_MODEL": "gpt-4.1-mini"
      }
    }
  }
}

Claude Code:

  claude mcp add agents --scope user -e OPENAI_BASE_URL=https://api.openai.com/v1 -e OPENAI_API_KEY= -e OPENAI_MODEL=gpt-4.1-mini -- <cmd> serve --config <config>
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
