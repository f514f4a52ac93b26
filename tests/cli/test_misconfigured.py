"""What ``chat`` and ``check`` say, and how soon, when a model's URL or a server's
command is wrong: through the real entry point, with real sockets and programs."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from inline_snapshot import snapshot

from tests.cli.runner import agents_mcp, scrub
from tests.conftest import DOWNSTREAM
from tests.processes import free_port, write_config

pytestmark = pytest.mark.anyio

PAGE = b"""<!DOCTYPE html>
<html>
<head>
<title>404 Not Found</title>
</head>
<body>
<h1>Not Found</h1>
<p>The requested URL was not found on this server.</p>
<hr>
<address>Apache/2.4.41 (Ubuntu) Server at localhost Port 80</address>
</body>
</html>
"""


@asynccontextmanager
async def web_server(posts: list[bytes]) -> AsyncIterator[str]:
    """A web server on loopback that answers every request with its 404 page."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        posts.append(head.split(b"\r\n")[0])
        length = [int(h.split(b":")[1]) for h in head.lower().split(b"\r\n") if b"length:" in h]
        await reader.readexactly(length[0] if length else 0)
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(PAGE), PAGE)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


def one_model(base_url: str, **agent: Any) -> dict[str, Any]:
    return {
        "models": {"main": {"base_url": base_url, "model": "m", "api_key": "sk-test-key"}},
        "agents": {"helper": {"description": "Helps", "model": "main", **agent}},
    }


async def test_a_model_url_that_answers_a_web_page(tmp_path: Path) -> None:
    """One line with the status and the URL, not the page; not retried; what to check."""
    posts: list[bytes] = []
    async with web_server(posts) as url:
        cfg = write_config(tmp_path / "agents.json", one_model(url))
        chat = await agents_mcp("chat", "helper", "hi", "--config", str(cfg), tmp_path=tmp_path)
        check = await agents_mcp("check", "--config", str(cfg), tmp_path=tmp_path)
    assert posts == [b"POST /chat/completions HTTP/1.1"] * 2  # once each: not retried
    assert chat.code == 1
    assert scrub(chat.err.splitlines()[0]) == snapshot(
        "agents-mcp: the run failed (llm_error): LLM request failed: HTTP 404 from http://127.0.0.1:<port>/chat/completions: 404 Not Found (a web page); check the model's base_url (requests go to base_url + /chat/completions; it usually ends in /v1)"
    )
    model_row = check.out[check.out.index("✗ model main") :].split("\n\n")[0]
    assert scrub(model_row) == snapshot("""\
✗ model main  LLM request failed: HTTP 404 from http://127.0.0.1:<port>/chat/completions: 404 Not Found (a web page)
              fix: check models.main.base_url (usually ends in /v1) and models.main.model\
""")


async def test_a_model_on_this_machine_that_is_not_running(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    cfg = write_config(tmp_path / "agents.json", one_model(f"http://127.0.0.1:{port}/v1"))
    chat = await agents_mcp("chat", "helper", "hi", "--config", str(cfg), tmp_path=tmp_path)
    assert chat.code == 1
    # Said at once: no "gave up after 4 attempts".
    assert chat.err.splitlines()[0] == (
        f"agents-mcp: the run failed (llm_error): LLM request failed: http://127.0.0.1:{port}/v1:"
        f" nothing is listening at 127.0.0.1:{port} (connection refused): start the model's"
        " server, or correct the port in the model's base_url"
    )


async def test_chat_says_what_a_server_printed_and_how_a_failed_one_ended(
    tmp_path: Path,
) -> None:
    """A program that prints something else on stdout, and one that exits with an error
    on stderr: ``chat`` says what each printed, at once (not after init_timeout)."""
    servers = {
        "weather": {
            "command": sys.executable,
            "args": [DOWNSTREAM, "--stdout", "Weather CLI 1.2: try --help", "--not-mcp"],
            "init_timeout": 300,  # longer than the runner waits for the whole command
        },
        "tickets": {
            "command": sys.executable,
            "args": [DOWNSTREAM, "--say", "reading ~/.tickets", "--require-env", "TICKETS_KEY"],
        },
    }
    data = {
        "mcpServers": servers,
        "models": {"demo": {"provider": "demo"}},
        "agents": {"helper": {"description": "Helps", "model": "demo", "servers": list(servers)}},
    }
    cfg = write_config(tmp_path / "agents.json", data)
    chat = await agents_mcp("chat", "helper", "hi", "--config", str(cfg), tmp_path=tmp_path)
    assert chat.code == 0
    warnings = sorted(
        line.split(" WARNING ", 1)[1] for line in chat.err.splitlines() if " WARNING " in line
    )
    log_dir = tmp_path / "state" / "agents-mcp" / "log"
    assert warnings == [
        "agents_mcp.downstream: tickets: cannot list tools: it exited right after starting (the"
        " connection closed); its stderr ended with: reading ~/.tickets |"
        " ssl.SSLCertVerificationError: certificate verify failed (all of it in"
        f" {log_dir / 'tickets.log'})",
        "agents_mcp.downstream: weather: cannot list tools: it printed 'Weather CLI 1.2: try"
        " --help' on stdout, which is for MCP messages only, and did not answer the handshake:"
        " is this command an MCP server over stdio, with the arguments it needs for that? (a"
        " server's own messages belong on stderr)",
    ]
