"""The README and the docs/ pages are tested: their commands parse, their configs load, their
outputs are real, and their links lead somewhere."""

from __future__ import annotations

import io
import json
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from cyclopts import CycloptsError
from fastmcp import Client
from pydantic import BaseModel

from agents_mcp.cli.check import check
from agents_mcp.cli.commands import help_text, parse
from agents_mcp.cli.starter import write_starter
from agents_mcp.cli.terminal import Console
from agents_mcp.config import (
    AgentBudget,
    AgentConfig,
    AgentParams,
    ApprovalRules,
    DownstreamServerConfig,
    JWTConfig,
    ModelConfig,
    Price,
    ServerBudgets,
    ServerSettings,
    TelemetrySettings,
    TokenConfig,
    config_from_dict,
    load_config,
)
from agents_mcp.server.app import create_server
from agents_mcp.server.results import AgentResult
from tests.processes import ROOT
from tests.test_examples import EXAMPLES, PLACEHOLDER, demo_server

pytestmark = pytest.mark.anyio

README = ROOT / "README.md"
DOCS = ROOT / "docs"
FIRST_COMMANDS = [
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e ."
    " && agents-mcp serve --config examples/agents.toml",
    'bash tests/browser/setup.sh && python -m pip install -e ".[dev]" && python -m ruff check .'
    " && python -m ruff format --check . && python -m mypy && python -m pytest",
]


def pages() -> list[Path]:
    """The README, then every page of docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    marker: str | None  # the <!-- … --> comment right above the block, if any
    page: Path


FENCED = re.compile(
    r"(?:<!-- (?P<marker>.+?) -->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S
)


def blocks(page: Path | None = None) -> list[Block]:
    """The fenced blocks of one page, or of every page in order."""
    found: list[Block] = []
    for path in [page] if page else pages():
        found += [
            Block(m["lang"], m["body"], m["marker"], path)
            for m in FENCED.finditer(path.read_text())
        ]
    return found


def marked(marker: str) -> Block:
    (found,) = [b for b in blocks() if b.marker == marker]
    return found


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    head = text[: text.index("```")]
    assert head.strip() == "# agents-mcp"
    first, second = blocks(README)[:2]
    assert (first.lang, first.body.strip()) == ("bash", FIRST_COMMANDS[0])
    assert (second.lang, second.body.strip()) == ("bash", FIRST_COMMANDS[1])
    ci = (ROOT / ".ci" / "run").read_text()
    assert FIRST_COMMANDS[1] in ci


def commands() -> list[list[str]]:
    """Every agents-mcp invocation in the shell blocks of the README and docs/, as argv lists."""
    found: list[list[str]] = []
    for block in blocks():
        if block.lang != "bash":
            continue
        for line in block.body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:3] == ["claude", "mcp", "add"] and "--" in words:
                words = words[words.index("--") + 1 :]
            segment: list[str] = []
            for word in [*words, "&&"]:
                if word not in ("&&", "||", ";", "|"):
                    segment.append(word)
                    continue
                if segment and Path(segment[0]).name == "agents-mcp":
                    found.append(segment[1:])
                segment = []
    return found


def test_every_agents_mcp_command_in_the_docs_parses() -> None:
    argvs = commands()
    assert len(argvs) >= 10
    for argv in argvs:
        try:
            _, bound = parse(argv)
        except CycloptsError as exc:
            pytest.fail(f"`agents-mcp {shlex.join(argv)}` does not parse: {exc}")
        config = bound.arguments.get("config")
        if config and config.startswith(("examples/", PLACEHOLDER)):
            assert (ROOT / config.removeprefix(PLACEHOLDER).lstrip("/")).is_file(), argv


def test_every_config_block_loads() -> None:
    environ = {"OPENAI_API_KEY": "sk-test", "AGENTS_MCP_TOKEN": "t0ken"}
    tables: dict[str, type[BaseModel]] = {
        "mcpServers": DownstreamServerConfig,
        "models": ModelConfig,
        "agents": AgentConfig,
    }
    checked = 0
    for block in blocks():
        if block.lang != "toml":
            continue
        data = tomllib.loads(block.body)
        if "agents" in data and "models" in data:  # a whole config
            config_from_dict(data, path=ROOT / "agents.toml", environ=environ)
        else:  # a fragment: each table on its own
            for key, value in data.items():
                if key == "server":
                    ServerSettings.model_validate(value)
                elif key == "model_aliases":  # names to [models] names
                    assert all(isinstance(v, str) for v in value.values())
                else:
                    for entry in value.values():
                        tables[key].model_validate(entry)
        checked += 1
    assert checked >= 3


def test_every_json_block_loads_and_client_entries_point_at_real_files() -> None:
    desktop = json.loads((EXAMPLES / "claude_desktop_config.json").read_text())
    entries = 0
    for block in blocks():
        if block.lang != "json":
            continue
        data = json.loads(block.body)
        for entry in {**data.get("mcpServers", {}), **data.get("servers", {})}.values():
            entries += 1
            if "command" in entry:
                assert entry["command"] == f"{PLACEHOLDER}/.venv/bin/agents-mcp"
                assert entry["args"][:2] == ["serve", "--config"]
                assert Path(entry["args"][2].replace(PLACEHOLDER, str(ROOT))).is_file()
            else:
                assert entry["url"].endswith("/mcp") and "Authorization" in entry["headers"]
    assert entries == 4
    # The Claude Desktop snippet is the example file, verbatim.
    assert desktop in [json.loads(b.body) for b in blocks() if b.lang == "json"]


def test_every_config_key_is_documented() -> None:
    text = "\n".join(page.read_text() for page in pages())
    models: list[type[BaseModel]] = [
        DownstreamServerConfig,
        ModelConfig,
        AgentConfig,
        AgentParams,
        ApprovalRules,
        ServerSettings,
        TokenConfig,
        JWTConfig,
        Price,
        AgentBudget,
        ServerBudgets,
        TelemetrySettings,
    ]
    keys = {f.alias or n for m in models for n, f in m.model_fields.items()}
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert missing == []


def test_the_help_in_the_docs_is_the_real_help() -> None:
    assert marked("agents-mcp --help").body == help_text()


async def test_the_check_output_in_the_docs_is_real(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # a new user: no thread database yet
    write_starter(Path("agents.toml"))
    out = io.StringIO()
    with anyio.fail_after(30):
        code = await check(
            Path("agents.toml"), Console(out, io.StringIO()), offline=True, seconds=30
        )
    assert code == 0
    assert marked("agents-mcp check --offline (starter config)").body == out.getvalue()


def _same_shape(text: str) -> str:
    text = re.sub(r"th_[A-Za-z0-9_-]{24}", "<thread>", text)
    text = re.sub(r"call_[0-9a-f]{8}", "<call>", text)
    return re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "<time>", text)


async def test_the_result_in_the_docs_is_what_the_demo_agent_returns(tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "agents.toml", environ={"AGENTS_MCP_PYTHON": sys.executable})
    mcp = create_server(
        config, db_path=tmp_path / "threads.db", transports={"demo": demo_server().mcp}
    )
    message = 'call demo__add_note {"title": "groceries", "text": "eggs, milk"}'
    async with Client(mcp) as client:
        with anyio.fail_after(30):
            result = await client.call_tool(
                "chat_with_agent", {"agent": "demo", "message": message}
            )
    shown = marked("result: demo agent, add_note")
    AgentResult.model_validate_json(shown.body)
    actual: Any = result.structured_content
    assert _same_shape(shown.body) == _same_shape(json.dumps(actual, indent=2) + "\n")
    same_page = blocks(shown.page)
    text_block = same_page[same_page.index(shown) + 1]
    assert _same_shape(text_block.body) == _same_shape(result.content[0].text + "\n")


LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")  # [text](target) and ![alt](target)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """The text outside fenced blocks and inline code, where links are links."""
    text = re.sub(r"^```\w*\n.*?^```$", "", text, flags=re.M | re.S)
    return CODE_SPAN.sub("", text)


def slug(heading: str) -> str:
    """The anchor a code host (GitHub) makes of a heading: lower case, punctuation dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.replace("`", "")).strip().lower()
    return "".join(c for c in text if c.isalnum() or c in "-_ ").replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor, a repeated one with GitHub's -1, -2, … suffixes."""
    text = re.sub(r"^```\w*\n.*?^```$", "", page.read_text(), flags=re.M | re.S)
    seen: dict[str, int] = {}
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links and #anchors of a page that lead nowhere."""
    broken: list[str] = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_every_link_and_anchor_resolves() -> None:
    assert [b for page in pages() for b in broken_links(page)] == []
    assert sum(len(LINK.findall(prose(page.read_text()))) for page in pages()) >= 50


def test_the_link_check_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## `[server]`: its own `server`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Two words\n\n## Two words\n\n"
        "[ok](#two-words) [ok](#two-words-1) [ok](other.md#server-its-own-server) "
        "[ok](https://example.com/x#y) ![ok](other.md) `[code](#not-a-link)`\n"
        "[bad](#two-words-2) [bad](other.md#server) [bad](missing.md) ![bad](missing.png)\n"
        "```text\n[not a link](#nowhere)\n```\n"
    )
    assert broken_links(page) == [
        "page.md: #two-words-2 (no such heading)",
        "page.md: other.md#server (no such heading)",
        "page.md: missing.md (no such file)",
        "page.md: missing.png (no such file)",
    ]


def test_every_docs_page_is_in_the_index() -> None:
    index = (DOCS / "README.md").read_text()
    listed = {target for target in LINK.findall(index) if not target.startswith("..")}
    assert listed == {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert "docs/README.md" in README.read_text()
