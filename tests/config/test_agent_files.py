"""Agents from agent files (``[server] agents_from``): real-shaped Claude Code, Copilot and
Codex files, written from each format's documentation with fields we cannot honour and
fields no format documents (``tests/config/agent_files/project``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from inline_snapshot import snapshot

from agents_mcp.config import load_config, reload_agents
from agents_mcp.config.file import InvalidConfig
from agents_mcp.errors import ConfigError

PROJECT = Path(__file__).parent / "agent_files" / "project"
ENV = {"HOME": "/home/u", "DOCS_TOKEN": "d0cs", "GITHUB_PAT": "pat", "COPILOT_MCP_DOCS_TOKEN": "c"}
CONFIG = """
[models.claude]
provider = "demo"
[models.gpt]
provider = "demo"

[model_aliases]
sonnet = "claude"
claude-sonnet-4-5 = "claude"
"Claude Sonnet 4.5 (copilot)" = "claude"
"gpt-5.4" = "gpt"
"gpt-5.3-codex-spark" = "gpt"

[mcpServers.github]
url = "https://api.githubcopilot.com/mcp/"

[server]
agents_from = [".claude/agents", ".github/agents", ".codex/agents", "~/.claude/agents"]
"""


def project(tmp_path: Path, extra: str = "") -> Path:
    for folder in (".claude", ".github", ".codex"):
        shutil.copytree(PROJECT / folder, tmp_path / folder)
    config = tmp_path / "agents.toml"
    config.write_text(CONFIG + extra)
    return config


def summary(path: Path, environ: dict[str, str] = ENV) -> dict[str, Any]:
    config = load_config(path, environ=environ)
    return {
        name: {
            "model": a.model,
            "servers": a.servers,
            "tools": a.tools,
            "disabled_tools": a.disabled_tools,
            "max_iterations": a.max_iterations,
            "require_approval": a.require_approval,
            "instructions": a.instructions.splitlines()[0],
        }
        for name, a in config.agents.items()
    }


def notes(path: Path, environ: dict[str, str] = ENV) -> dict[str, list[str]]:
    config = load_config(path, environ=environ)
    return {
        f"{Path(f.path).relative_to(path.parent)} ({f.status})": [
            f"{n.kind} {n.field}: {n.text}" for n in f.notes
        ]
        for f in config.imported.files
    }


def test_each_file_becomes_an_agent_with_its_servers_and_allowlist(tmp_path: Path) -> None:
    path = project(tmp_path)
    assert summary(path) == snapshot(
        {
            "browser-tester": {
                "model": "claude",
                "servers": ["playwright", "browser-tester-docs"],
                "tools": {"browser-tester-docs": ["get_page", "search"]},
                "disabled_tools": {"playwright": ["browser_install"]},
                "max_iterations": 40,
                "require_approval": "always",
                "instructions": "Use the Playwright tools to navigate, screenshot, and interact with pages.",
            },
            "code-reviewer": {
                "model": "claude",
                "servers": ["github"],
                "tools": {"github": ["get_pull_request", "list_pull_requests"]},
                "disabled_tools": {},
                "max_iterations": 15,
                "require_approval": "always",
                "instructions": "You are a senior code reviewer ensuring high standards of code quality and security.",
            },
            "planner": {
                "model": "claude",
                "servers": ["planner-docs"],
                "tools": {"planner-docs": ["get_page", "search_docs"]},
                "disabled_tools": {},
                "max_iterations": 12,
                "require_approval": "always",
                "instructions": "# Planning instructions",
            },
            "browser_debugger": {
                "model": "gpt",
                "servers": ["chrome_devtools"],
                "tools": {},
                "disabled_tools": {"chrome_devtools": ["evaluate_script"]},
                "max_iterations": 12,
                "require_approval": "always",
                "instructions": "Reproduce the reported bug with the Chrome DevTools tools before proposing a cause.",
            },
            "docs_researcher": {
                "model": "gpt",
                "servers": ["openaiDeveloperDocs", "docs_researcher-github"],
                "tools": {
                    "docs_researcher-github": ["get_file_contents", "list_releases", "search_code"]
                },
                "disabled_tools": {},
                "max_iterations": 12,
                "require_approval": "always",
                "instructions": "Verify current API and framework behaviour from primary documentation.",
            },
        }
    )
    config = load_config(path, environ=ENV)
    fields = {"command", "args", "env", "cwd", "url", "headers", "timeout"}
    servers = {
        n: s.model_dump(include=fields)
        | ({"cwd": s.cwd.replace(str(tmp_path), "<project>")} if s.cwd else {})
        for n, s in config.mcp_servers.items()
    }
    assert servers == snapshot(
        {
            "github": {
                "command": None,
                "args": [],
                "env": {},
                "cwd": None,
                "url": "https://api.githubcopilot.com/mcp/",
                "headers": {},
                "timeout": 60.0,
            },
            "playwright": {
                "command": "npx",
                "args": ["-y", "@playwright/mcp@latest", "--headless"],
                "env": {"PLAYWRIGHT_BROWSERS_PATH": "/home/u/.cache/ms-playwright"},
                "cwd": None,
                "url": None,
                "headers": {},
                "timeout": 60.0,
            },
            "browser-tester-docs": {
                "command": None,
                "args": [],
                "env": {},
                "cwd": None,
                "url": "https://docs.example.com/mcp",
                "headers": {"Authorization": "Bearer d0cs"},
                "timeout": 120.0,
            },
            "planner-docs": {
                "command": None,
                "args": [],
                "env": {},
                "cwd": None,
                "url": "https://docs.example.com/mcp",
                "headers": {"Authorization": "Bearer c"},
                "timeout": 60.0,
            },
            "chrome_devtools": {
                "command": "npx",
                "args": ["-y", "chrome-devtools-mcp@latest", "--headless"],
                "env": {"HTTPS_PROXY": "", "CHROME_PROFILE": "debug"},
                "cwd": "<project>/.codex/agents/tools/browser",
                "url": None,
                "headers": {},
                "timeout": 120.0,
            },
            "openaiDeveloperDocs": {
                "command": None,
                "args": [],
                "env": {},
                "cwd": None,
                "url": "https://developers.openai.com/mcp",
                "headers": {},
                "timeout": 60.0,
            },
            "docs_researcher-github": {
                "command": None,
                "args": [],
                "env": {},
                "cwd": None,
                "url": "https://api.githubcopilot.com/mcp/",
                "headers": {"X-MCP-Toolsets": "repos,issues", "Authorization": "Bearer pat"},
                "timeout": 45.0,
            },
        }
    )
    assert config.imported.folders == snapshot(
        (
            (".claude/agents", 2),
            (".github/agents", 2),
            (".codex/agents", 2),
            ("~/.claude/agents", None),
        )
    )


def test_every_field_not_honoured_is_listed_per_file(tmp_path: Path) -> None:
    assert notes(project(tmp_path)) == snapshot(
        {
            ".claude/agents/browser-tester.md (loaded)": [
                "converted mcpServers.docs.timeout: milliseconds to timeout in seconds",
                "ignored effort: no per-agent reasoning effort",
                "ignored hooks: Claude Code hooks have no counterpart",
                "ignored isolation: no git worktree isolation",
                "ignored background: not needed: a run goes on in the background once a call stops waiting",
                "ignored initialPrompt: used only when Claude Code runs the agent as its main session",
                "ignored color: display only",
                "ignored owner: unknown field",
                "converted model: 'claude-sonnet-4-5' is model 'claude' ([model_aliases])",
                "ignored tools: Read: a built-in tool of another host: agents-mcp agents have only MCP tools",
                "ignored servers: github: no entry in tools names it",
                "ignored disallowedTools: Write: a built-in tool of another host: agents-mcp agents have only MCP tools",
                "ignored disallowedTools: Edit: a built-in tool of another host: agents-mcp agents have only MCP tools",
                "converted servers: docs: named 'browser-tester-docs': another definition of 'docs' differs",
                "ignored agents: screenshot-diff: no such agent here",
            ],
            ".claude/agents/code-reviewer.md (loaded)": [
                "ignored permissionMode: not honoured: approvals follow agents-mcp's require_approval",
                "ignored skills: Claude Code skills have no counterpart",
                "ignored memory: no persistent agent memory directory",
                "ignored color: display only",
                "ignored version: unknown field",
                "converted model: 'sonnet' is model 'claude' ([model_aliases])",
                "ignored tools: Read: a built-in tool of another host: agents-mcp agents have only MCP tools",
                "ignored tools: Grep: a built-in tool of another host: agents-mcp agents have only MCP tools",
                "ignored tools: Glob: a built-in tool of another host: agents-mcp agents have only MCP tools",
                "ignored tools: Bash: a built-in tool of another host: agents-mcp agents have only MCP tools",
            ],
            ".github/agents/issue-triager.agent.md (skipped)": [
                "ignored target: informational: the agent is served to every client",
                "ignored disable-model-invocation: a setting of the host application with no counterpart in agents-mcp",
                "ignored user-invocable: a setting of the host application with no counterpart in agents-mcp",
                "ignored metadata: annotations only",
                "ignored priority: unknown field",
                "problem : model 'inherit' needs a mapping: add [model_aliases] inherit = \"<model>\" (models: claude, gpt)",
            ],
            ".github/agents/planner.agent.md (loaded)": [
                "converted name: 'Planner' is shown by Copilot; the agent is 'planner'",
                "ignored argument-hint: VS Code input hint",
                "ignored handoffs: VS Code buttons have no counterpart",
                "ignored hooks: VS Code hooks have no counterpart",
                "ignored infer: a setting of the host application with no counterpart in agents-mcp",
                "ignored color: unknown field",
                "converted model: 'Claude Sonnet 4.5 (copilot)' is model 'claude' ([model_aliases])",
                "ignored tools: search/codebase: a built-in tool of another host: agents-mcp agents have only MCP tools",
                "ignored tools: web/fetch: a built-in tool of another host: agents-mcp agents have only MCP tools",
                "ignored tools: search/usages: a built-in tool of another host: agents-mcp agents have only MCP tools",
                "converted servers: docs: named 'planner-docs': another definition of 'docs' differs",
                "ignored agents: Researcher: no such agent here",
            ],
            ".codex/agents/browser-debugger.toml (loaded)": [
                "converted mcp_servers.chrome_devtools.env_vars: env entries ${NAME:-} (passed on if set)",
                "converted mcp_servers.tracker.enabled: false: the server is left out",
                "ignored model_provider: the model is chosen through [models] and [model_aliases]",
                "ignored model_reasoning_effort: no per-agent reasoning effort",
                "ignored sandbox_mode: no sandbox or shell in agents-mcp",
                "ignored approval_policy: not honoured: approvals follow agents-mcp's require_approval",
                "ignored owner: unknown field",
                "converted model: 'gpt-5.3-codex-spark' is model 'gpt' ([model_aliases])",
            ],
            ".codex/agents/docs-researcher.toml (loaded)": [
                "ignored nickname_candidates: display nicknames",
                "ignored model_reasoning_effort: no per-agent reasoning effort",
                "ignored sandbox_mode: no sandbox or shell in agents-mcp",
                "ignored web_search: no built-in web search",
                "ignored features: Codex features have no counterpart",
                "converted model: 'gpt-5.4' is model 'gpt' ([model_aliases])",
                "converted servers: github: named 'docs_researcher-github': another definition of 'github' differs",
            ],
        }
    )


def test_the_config_wins_over_a_file_of_the_same_name(tmp_path: Path) -> None:
    path = project(
        tmp_path,
        '\n[agents.code-reviewer]\ndescription = "Ours"\nmodel = "gpt"\n',
    )
    config = load_config(path, environ=ENV)
    assert config.agents["code-reviewer"].description == "Ours"
    assert config.origin("code-reviewer") is None
    assert notes(path)[".claude/agents/code-reviewer.md (shadowed)"] == [
        "ignored name: [agents.code-reviewer] in the config wins over this file"
    ]


def test_a_model_alias_without_mapping_is_named(tmp_path: Path) -> None:
    path = project(tmp_path)
    found = notes(path)[".github/agents/issue-triager.agent.md (skipped)"]
    assert found[-1] == (
        "problem : model 'inherit' needs a mapping: add [model_aliases] inherit = \"<model>\""
        " (models: claude, gpt)"
    )
    path.write_text(path.read_text().replace("[model_aliases]", '[model_aliases]\ninherit = "gpt"'))
    assert summary(path)["issue-triager"] == snapshot(
        {
            "model": "gpt",
            "servers": ["github"],
            "tools": {"github": ["get_issue", "list_issues"]},
            "disabled_tools": {},
            "max_iterations": 12,
            "require_approval": "always",
            "instructions": "You triage production errors. For the issue you are given:",
        }
    )


def test_a_server_naming_an_unset_variable_is_left_out(tmp_path: Path) -> None:
    path = project(tmp_path)
    environ = {k: v for k, v in ENV.items() if k != "DOCS_TOKEN"}
    agent = summary(path, environ)["browser-tester"]
    assert agent["servers"] == ["playwright"]
    assert notes(path, environ)[".claude/agents/browser-tester.md (loaded)"][-1] == snapshot(
        "ignored agents: screenshot-diff: no such agent here"
    )


def test_no_agent_left_says_where_to_look(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "x.md").write_text("---\nname: x\ndescription: d\nmodel: opus\n---\n")
    path = tmp_path / "agents.toml"
    path.write_text('[models.m]\nprovider = "demo"\n[server]\nagents_from = ["agents"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "agents_from" in str(caught.value)
    assert isinstance(caught.value, InvalidConfig)  # it keeps what the agent files gave
    assert caught.value.imported.files[0].notes[-1].text.startswith("model 'opus' needs a mapping")


def test_reload_reads_the_files_again(tmp_path: Path) -> None:
    path = project(tmp_path)
    config = load_config(path, environ=ENV)
    reviewer = tmp_path / ".claude" / "agents" / "code-reviewer.md"
    reviewer.write_text(reviewer.read_text().replace("senior code reviewer", "strict reviewer"))
    (tmp_path / ".codex" / "agents" / "docs-researcher.toml").unlink()
    again = reload_agents(config, environ=ENV)
    assert "strict reviewer" in again.agents["code-reviewer"].instructions
    assert "docs_researcher" not in again.agents
    assert again.models == config.models
