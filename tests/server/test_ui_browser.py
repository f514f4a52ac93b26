"""The thread view in a real browser: Debian's Chromium shows it in a minimal MCP Apps host
built on the official AppBridge and TypeScript SDK client, connected to a real agents-mcp
over streamable HTTP, with approver = "person".

The scripted model sits behind a Chat Completions fake in this process; the downstream
server is a real one in its own process that records every call that changes something.
tests/browser/run.mjs drives the browser and writes a screenshot of each state to
test-output/browser/. ``.ci/run`` installs Chromium and the npm packages; without them
the test fails, unless AGENTS_MCP_SKIP_BROWSER=1 is set outside CI.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse
from agents_mcp.testing import Call
from agents_mcp.testing.chat_server import FakeChatServer
from tests.processes import ROOT, agents_mcp_http, free_port, http_downstream, write_config

pytestmark = pytest.mark.anyio

BROWSER = ROOT / "tests" / "browser"
OUT = ROOT / "test-output" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TOKENS = {"TOKEN_A": "alice-" + "a" * 32, "TOKEN_B": "bob-" + "b" * 32}
GATES = ("step-2", "step-3", "never")


def _missing() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs)")
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if not (BROWSER / "node_modules" / "playwright-core").is_dir():
        missing.append("the npm packages (npm ci --prefix tests/browser)")
    return missing


@pytest.fixture
def browser_tools() -> None:
    missing = _missing()
    if not missing:
        return
    if os.environ.get("AGENTS_MCP_SKIP_BROWSER") == "1" and not os.environ.get("CI"):
        pytest.skip(f"AGENTS_MCP_SKIP_BROWSER=1 and missing: {', '.join(missing)}")
    pytest.fail(f"the browser test needs {', '.join(missing)}; .ci/run installs them")


class BrowserModel:
    """The model of each scenario, chosen by the thread's first message ("<scenario>: …")."""

    def __init__(self, gates: dict[str, anyio.Event]) -> None:
        self.gates = gates

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        first = next(m.content or "" for m in request.messages if m.role == "user")
        results = [m.content or "" for m in request.messages if m.role == "tool"]
        answer = await self._answer(first.split(":")[0], results)
        if isinstance(answer, str):
            return LLMResponse(content=answer, finish_reason="stop")
        return LLMResponse(
            content=None, tool_calls=(answer.to_tool_call(),), finish_reason="tool_calls"
        )

    async def _answer(self, scenario: str, results: list[str]) -> str | Call:
        def note(title: str) -> Call:
            return Call("notes__write_note", {"title": title, "body": "buy some"})

        n = len(results)
        if scenario == "approve":
            return note("milk") if n == 0 else "Saved the note."
        if scenario == "deny":
            return note("cheese") if n == 0 else f"The call was refused: {results[-1]}"
        if scenario == "allow":
            steps: list[str | Call] = [note("one"), note("two"), "Both saved."]
            return steps[n]
        if scenario == "team":  # delegates to the scribe, whose call needs approval
            if n == 0:
                return Call("agent__scribe", {"message": "scribe: write bread"})
            return "The scribe is done."
        if scenario == "scribe":
            return note("bread") if n == 0 else "Scribe saved bread."
        if scenario == "page":
            return note("page") if n == 0 else "Saved from the page."
        if scenario == "steps":
            if n >= 1:  # each further step waits until the browser has seen the last one
                await self.gates[f"step-{n + 1}"].wait()
            return Call("notes__echo", {"text": f"step {n + 1}"}) if n < 2 else "Followed."
        await self.gates["never"].wait()  # "stop": thinks until stopped
        return "never"


def _written(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def config(model_url: str, notes_url: str) -> dict[str, Any]:
    return {
        "mcpServers": {"notes": {"url": notes_url}},
        "models": {"main": {"base_url": model_url, "model": "browser-test"}},
        "agents": {
            "helper": {
                "description": "Writes notes",
                "model": "main",
                "servers": ["notes"],
                "require_approval": "read_only",
                "agents": ["scribe"],
            },
            "scribe": {
                "description": "Writes notes for the helper",
                "model": "main",
                "servers": ["notes"],
                "require_approval": "read_only",
            },
        },
        "server": {"approver": "person", "auth_tokens": ["${TOKEN_A}", "${TOKEN_B}"]},
    }


async def drive(base: str, gates: dict[str, anyio.Event], log: Path) -> dict[str, Any]:
    """Run the driver; open the model's gates when it asks; return its report."""
    env = {**os.environ, "AGENTS_MCP_BASE": base, "OUT_DIR": str(OUT), **TOKENS}
    with log.open("wb") as stderr:
        process = await anyio.open_process(
            ["node", str(BROWSER / "run.mjs")], env=env, cwd=BROWSER, stderr=stderr
        )
        async with process:
            assert process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            while True:
                try:
                    line = json.loads(await lines.receive_until(b"\n", 10_000_000))
                except (anyio.EndOfStream, anyio.IncompleteRead):
                    raise AssertionError(f"the driver stopped early; see {log}") from None
                if "gate" in line:
                    gates[line["gate"]].set()
                elif "error" in line:
                    raise AssertionError(f"in the browser: {line['error']}\n(log: {log})")
                else:
                    report: dict[str, Any] = line["done"]
                    return report


async def test_the_view_in_a_real_browser(tmp_path: Path, browser_tools: None) -> None:
    # Only this test's earlier files: the dashboard's tests write here too, maybe now.
    OUT.mkdir(parents=True, exist_ok=True)
    for old in [*OUT.glob("[0-9][0-9]-*.png"), OUT / "driver.log", OUT / "report.json"]:
        old.unlink(missing_ok=True)
    calls = tmp_path / "calls.jsonl"
    gates = {name: anyio.Event() for name in GATES}
    fake = FakeChatServer(BrowserModel(gates))
    try:
        with http_downstream("notes", env={"DOWNSTREAM_LOG": str(calls)}) as notes_url:
            async with fake.serve() as model_url:
                path = write_config(tmp_path / "agents.json", config(model_url, notes_url))
                port = free_port()
                async with agents_mcp_http(path, tmp_path / "t.db", port=port, env=TOKENS):
                    with anyio.fail_after(120):
                        report = await drive(f"http://127.0.0.1:{port}", gates, OUT / "driver.log")
    finally:
        for gate in gates.values():
            gate.set()  # let the model's waiting answers end

    await anyio.Path(OUT / "report.json").write_text(json.dumps(report, indent=2))

    # Who sees what: a host without MCP Apps gets today's tools; this one gets the view,
    # an app-only approve_call and answer_question (approver = "person") and the app-only
    # watch_thread.
    plain = {t["name"]: t["ui"] for t in report["tools"]["plain"]}
    apps = {t["name"]: t["ui"] for t in report["tools"]["apps"]}
    assert plain == dict.fromkeys(
        [
            "chat_with_agent",
            "approve_call",
            "answer_question",
            "get_thread",
            "cancel_run",
            "list_threads",
            "delete_thread",
        ]
    )
    assert apps["approve_call"] == apps["answer_question"] == {"visibility": ["app"]}
    assert (
        apps["chat_with_agent"] == apps["get_thread"] == {"resourceUri": "ui://agents-mcp/thread"}
    )
    assert sorted(report["tools"]["modelTools"]) == [
        "cancel_run",
        "chat_with_agent",
        "delete_thread",
        "get_thread",
        "list_threads",
    ]

    # Approve: the card showed the call; the call ran exactly once; the view completed.
    assert "write_note on server notes" in report["approval"]["text"]
    assert "via helper" in report["approval"]["text"]
    assert report["approval"]["argumentsText"].split("\n") == ["title", "milk", "body", "buy some"]
    assert report["approveResult"]["structuredContent"]["status"] == "needs_approval"
    assert "The person decides each call" in report["approveResult"]["content"][0]["text"]
    assert report["approvedReply"] == "Saved the note."
    (context,) = report["modelContext"][-1]["content"]
    assert "the person approved notes__write_note" in context["text"]
    assert "is now completed" in context["text"]

    # Deny with a reason: the reason reached the model.
    assert "we have enough cheese" in report["deniedReply"]
    refusals = [
        m["content"]
        for r in fake.requests
        for m in r["messages"]
        if m["role"] == "tool" and "cheese" in (m.get("content") or "")
    ]
    assert refusals and "The user refused this call: we have enough cheese" in refusals[0]

    # Allow for this thread: the second call of the same tool did not ask again.
    assert (report["allowedReply"], report["allowedCalls"]) == ("Both saved.", ["done", "done"])

    # A delegated agent's call: asked via the chain, shown in the tree, decided at the top.
    assert "via helper › scribe" in report["team"]["card"]
    assert report["team"]["tree"] == ["delegated to scribe · needs approval"]
    assert report["team"]["reply"] == "The scribe is done."

    # A running thread, followed live: two step changes, then completed, in one document.
    assert report["followStarted"] == "running"
    assert report["followChanges"] == [
        {"label": "first step", "status": "running", "done": 1},
        {"label": "second step", "status": "running", "done": 2},
        {"label": "completed", "status": "completed", "done": 2},
    ]
    assert report["followSameDocument"] is True
    assert report["followReply"] == "Followed."

    # Dark, from the host context.
    assert report["darkBackground"] == "rgb(23, 24, 28)"

    # The page outside a chat: the token's owner only; the token left the address bar.
    assert report["pageStatuses"] == {"anonymous": 401, "bob": 404}
    assert "#token" not in report["pageUrlAfterLoad"]
    assert report["pageReply"] == "Saved from the page."

    # The downstream calls that ran: each approved one exactly once, the denied one never.
    ran = [json.loads(line)["arguments"]["title"] for line in calls.read_text().splitlines()]
    assert sorted(ran) == ["bread", "milk", "one", "page", "two"]

    # Nothing but the test host and agents-mcp was contacted, and nothing went wrong.
    assert set(report["origins"]) == {report["hostOrigin"], f"http://127.0.0.1:{port}"}
    assert report["problems"] == []
    page = f"/threads/{report['pageThread']}"
    # Opening the page sends no header (401, by design: the page then sends its token),
    # and the stranger without a token is refused.
    assert report["failedRequests"] == [
        f"401 GET {page}",
        f"401 GET {page}",
        f"401 POST {page}/call",
    ]
    assert len(report["screenshots"]) == 16
    assert all(_written(Path(s)) for s in report["screenshots"])
