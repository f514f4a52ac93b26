"""Telemetry is off unless switched on, costs nothing while off, and records message
contents only when asked to, never secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from agents_mcp.config import TelemetrySettings
from agents_mcp.telemetry.configure import exporters
from tests.otlp import OTLPReceiver, receiver
from tests.processes import ROOT, agents_mcp_http_process, free_port, write_config

pytestmark = pytest.mark.anyio

OFF = """
import json, sys, tomllib
from pathlib import Path
import anyio
from fastmcp import Client
from agents_mcp import telemetry
from agents_mcp.config import config_from_dict
from agents_mcp.server.app import create_server

example = Path("examples/agents.toml")
data = tomllib.loads(example.read_text())
data.setdefault("server", {})["telemetry"] = json.loads(sys.argv[2])
config = config_from_dict(data, path=example)
assert telemetry.setup(config.server.telemetry) is None  # as `agents-mcp serve` does

async def main():
    async with Client(create_server(config, db_path=sys.argv[1])) as client:
        result = await client.call_tool(
            "chat_with_agent", {"agent": "demo", "message": "call demo__list_notes"}
        )
        assert result.structured_content["status"] == "completed", result.structured_content
        assert result.structured_content["usage"]["tool_calls"] == 1, result.structured_content

anyio.run(main)
loaded = sorted(
    m for m in sys.modules
    if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter")) or m == "agents_mcp.telemetry.otel"
)
print(loaded)
"""


@pytest.mark.parametrize(
    ("env", "table"),
    [
        pytest.param({}, {}, id="nothing-set"),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
            {"enabled": False},
            id="endpoint-set-but-enabled-false",
        ),
    ],
)
def test_off_loads_no_sdk_and_makes_no_span(
    tmp_path: Path, env: dict[str, str], table: dict[str, object]
) -> None:
    """Off (nothing set, or ``[server.telemetry] enabled = false`` whatever the environment
    says), a whole conversation through the server, a downstream call included, imports
    neither the SDK nor the exporter, nor our module that speaks to the API."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    ran = subprocess.run(
        [sys.executable, "-c", OFF, str(tmp_path / "t.db"), json.dumps(table)],
        cwd=ROOT,
        env={**environ, **env, "HOME": str(tmp_path), "AGENTS_MCP_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("env", "enabled", "expected"),
    [
        ({}, None, (False, False)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None, (True, True)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, None, (True, True)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None,
         (False, False)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRICS_EXPORTER": "none"}, None,
         (True, False)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "console"}, None,
         (False, True)),
        ({}, True, (True, True)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False, (False, False)),
    ],
)  # fmt: skip
def test_what_switches_it_on(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    enabled: bool | None,
    expected: tuple[bool, bool],
) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert exporters(TelemetrySettings(enabled=enabled)) == expected


async def _spans(tmp_path: Path, rx: OTLPReceiver, telemetry: dict[str, object]) -> list[str]:
    await anyio.Path(tmp_path).mkdir()
    config = write_config(
        tmp_path / "agents.json",
        {
            "models": {"m": {"provider": "demo", "api_key": "sk-never-exported"}},
            "agents": {"demo": {"description": "Echoes", "model": "m"}},
            "server": {"db": str(tmp_path / "t.db"), "telemetry": telemetry},
        },
    )
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    port = free_port()
    env = {**rx.env("svc"), "HOME": str(tmp_path)}
    async with agents_mcp_http_process(config, port=port, env=env):
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(StreamableHttpTransport(url)) as client:
            await client.call_tool("chat_with_agent", {"agent": "demo", "message": "secret plan"})
    return [repr(s) for s in rx.spans()]


async def test_contents_only_when_captured_and_secrets_never(tmp_path: Path) -> None:
    with receiver() as rx:
        captured = await _spans(tmp_path / "on", rx, {"capture_content": True})
    with receiver() as rx:
        plain = await _spans(tmp_path / "plain", rx, {})
    with receiver() as rx:
        off = await _spans(tmp_path / "off", rx, {"enabled": False})
    chat = [s for s in captured if "name='chat m'" in s]
    assert len(chat) == 1 and "gen_ai.input.messages" in chat[0] and "secret plan" in chat[0]
    assert json.dumps(captured).count("sk-never-exported") == 0
    assert plain and not any("secret plan" in s for s in plain)
    assert off == []
