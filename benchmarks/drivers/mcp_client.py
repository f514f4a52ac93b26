"""Driver: an MCP server (agents-mcp or the minimal-loop hop) called through ``fastmcp.Client``.

``python -m benchmarks.drivers.mcp_client --server agents-mcp|hop --transport stdio|http ...``
spawns the server as its own child (so its CPU is part of this driver's process tree) and
calls ``chat_with_agent`` the way an MCP host does (handshake-era session, one
``tools/call`` per conversation).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.drivers import protocol

BENCH = Path(__file__).resolve().parent.parent


def _server_command(args: argparse.Namespace, port: int | None) -> list[str]:
    if args.server == "agents-mcp":
        entry = ["agents_mcp"]
        cmd = [
            args.server_python or sys.executable,
            "-m",
            *entry,
            "serve",
            "--config",
            args.config,
            "--db",
            args.db,
        ]
        if port is not None:
            cmd += ["--transport", "http", "--port", str(port)]
        return cmd
    cmd = [args.server_python or sys.executable, str(BENCH / "hop_server.py")]
    cmd += ["--base-url", args.base_url]
    if port is not None:
        cmd += ["--http", str(port)]
    return cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


START_TIMEOUT = 60.0


async def _wait_port(port: int, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"server did not listen on {port} within {START_TIMEOUT:.0f}s")


def _unbounded_client(
    headers: dict[str, str] | None = None, timeout: Any = None, auth: Any = None, **kwargs: Any
) -> Any:
    """The MCP client's HTTP client without httpx2's cap of 100 connections (20 kept
    alive): with it, "400 concurrent conversations" would be 100 at the server, the
    rest queued in the client."""
    import httpx2

    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = timeout or httpx2.Timeout(30.0, read=300.0)
    return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, limits=limits, **kwargs)


class MCPDriver:
    def __init__(self, client: Any) -> None:
        self.client = client

    async def chat(self, message: str, thread_id: str | None = None) -> str:
        arguments: dict[str, Any] = {"agent": "bench", "message": message}
        if thread_id is not None:
            arguments["thread_id"] = thread_id
        result = await self.client.call_tool_mcp("chat_with_agent", arguments)
        if result.is_error:
            raise RuntimeError(str(result.content)[:300])
        data = result.structured_content or {}
        status = data.get("status", "completed")
        if status != "completed":
            raise RuntimeError(f"status {status}: {data.get('error')}")
        return str(data.get("reply") or "")


async def main(args: argparse.Namespace) -> None:
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport, StreamableHttpTransport

    env = {**os.environ, "FASTMCP_CHECK_FOR_UPDATES": "off", "FASTMCP_SHOW_SERVER_BANNER": "false"}
    if args.otlp:  # traces and metrics exported to a receiver on this host
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": args.otlp, "OTEL_SERVICE_NAME": "agents-mcp-bench"}
    proc: asyncio.subprocess.Process | None = None
    if args.transport == "stdio":
        cmd = _server_command(args, None)
        transport: Any = StdioTransport(cmd[0], cmd[1:], env=env, keep_alive=False)
    else:
        port = _free_port()
        cmd = _server_command(args, port)
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdin=asyncio.subprocess.DEVNULL)
        await _wait_port(port, proc)
        transport = StreamableHttpTransport(
            f"http://127.0.0.1:{port}/mcp", httpx_client_factory=_unbounded_client
        )
    client = Client(transport, mode="legacy", timeout=protocol.CHAT_TIMEOUT, init_timeout=60)
    try:
        async with client:
            await protocol.serve(
                MCPDriver(client), {"server": args.server, "transport": args.transport}
            )
    finally:
        if proc is not None:
            proc.terminate()
            await proc.wait()


if __name__ == "__main__":
    protocol.claim_stdout()
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", choices=["agents-mcp", "hop"], required=True)
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--config", default="")
    parser.add_argument("--db", default="")
    parser.add_argument("--otlp", default="", help="export telemetry to this OTLP endpoint")
    parser.add_argument(
        "--server-python", default="", help="interpreter of agents-mcp (a baseline's venv)"
    )
    asyncio.run(main(parser.parse_args()))
