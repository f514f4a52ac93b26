"""A small real MCP server used as a downstream server in tests.

In process: ``make_server(name)``. As a subprocess: ``python tests/downstream_server.py
[--name NAME] [--fd FD] [--extra] [--say TEXT] [--stdout TEXT] [--not-mcp]
[--require-env NAME]`` (stdio by default; ``--extra`` adds tools that ask a question
(``ask``; ``confirm_note`` saves a note once confirmed), break their own output schema and
sleep, ``--say`` writes a line to stderr first, ``--stdout`` one to stdout (where only MCP
messages belong), ``--not-mcp`` then never answers, as a program that is not an MCP server;
``--require-env`` fails like a TLS error without NAME).
Every call of a tool that changes something is appended as one JSON line to
``$DOWNSTREAM_LOG`` (when set) so tests can count executions across processes and check
the exact arguments received.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import socket
import sys
from typing import Annotated

import anyio
from fastmcp import Context, FastMCP
from fastmcp.tools import ToolResult
from mcp_types import (
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    ToolAnnotations,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import Field


def _record(server: str, tool: str, arguments: dict[str, object]) -> None:
    path = os.environ.get("DOWNSTREAM_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"server": server, "tool": tool, "arguments": arguments}) + "\n")


def make_server(name: str = "notes", *, extra: bool = False) -> FastMCP:
    mcp = FastMCP(name)
    read_only = ToolAnnotations(read_only_hint=True)

    @mcp.tool(annotations=read_only)
    def echo(text: Annotated[str, Field(description="Text to echo")]) -> str:
        """Echo the text back."""
        return f"{name} echo: {text}"

    @mcp.tool(annotations=read_only)
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool
    def write_note(title: str, body: str) -> str:
        """Write a note (changes state: needs approval under most policies)."""
        _record(name, "write_note", {"title": title, "body": body})
        return f"saved note {title!r} ({len(body)} chars)"

    @mcp.tool
    def fail(reason: str = "boom") -> str:
        """Always fails."""
        raise ValueError(f"failed on purpose: {reason}")

    @mcp.tool
    def crash() -> str:
        """Kill this server process (to test restarts)."""
        os._exit(3)

    @mcp.tool(annotations=read_only)
    def big(size: int) -> str:
        """A result of ``size`` characters."""
        return ("0123456789" * (size // 10 + 1))[:size]

    @mcp.tool(annotations=read_only)
    def environment() -> list[str]:
        """The names of this process's environment variables."""
        return sorted(os.environ)

    @mcp.tool(annotations=read_only)
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    if extra:
        _add_extra_tools(mcp)
    return mcp


def _add_extra_tools(mcp: FastMCP) -> None:
    """Tools for the tests of the client's edges (``--extra``)."""
    read_only = ToolAnnotations(read_only_hint=True)

    @mcp.tool(
        annotations=read_only,
        output_schema={"type": "object", "properties": {"n": {"type": "number"}}},
    )
    def mismatched() -> ToolResult:
        """A result that does not match the tool's own output schema."""
        return ToolResult(content="n is not a number", structured_content={"n": "x"})

    @mcp.tool(annotations=read_only)
    async def sleep(seconds: float) -> str:
        """Sleep, then answer."""
        await anyio.sleep(seconds)
        return "awake"

    @mcp.tool
    async def ask(question: str, ctx: Context) -> str | InputRequiredResult:
        """Ask the person a question (elicitation) and report their answer.

        The handshake era asks with a request to the client (``ctx.elicit``); the
        2026-07-28 era has no such back-channel, so the first round returns the question
        as an input-required result and the client calls again with the answer."""
        request = ctx.request_context
        assert request is not None  # set during a tool call
        if request.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
            got = await ctx.elicit(question, response_type=str)
            return f"asked {question!r}: {got.action} {getattr(got, 'data', None)}"
        answers = ctx.input_responses
        if answers is None:
            schema = {"type": "object", "properties": {"value": {"type": "string"}}}
            params = ElicitRequestFormParams(message=question, requested_schema=schema)
            return InputRequiredResult(
                result_type="input_required",
                input_requests={"answer": ElicitRequest(params=params)},
            )
        answer = answers["answer"]
        assert isinstance(answer, ElicitResult)  # the answer to an ElicitRequest
        content = answer.content or {}
        return f"asked {question!r}: {answer.action} {content.get('value')}"

    @mcp.tool
    async def confirm_note(title: str, ctx: Context) -> str | InputRequiredResult:
        """Save a note once the person confirms (``value: true``); records it when saved."""
        question = f"Save the note {title!r}?"
        request = ctx.request_context
        assert request is not None  # set during a tool call
        if request.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
            got = await ctx.elicit(question, response_type=bool)
            action, value = got.action, getattr(got, "data", None)
        elif ctx.input_responses is None:
            schema = {"type": "object", "properties": {"value": {"type": "boolean"}}}
            params = ElicitRequestFormParams(message=question, requested_schema=schema)
            return InputRequiredResult(
                result_type="input_required",
                input_requests={"confirm": ElicitRequest(params=params)},
            )
        else:
            answer = ctx.input_responses["confirm"]
            assert isinstance(answer, ElicitResult)  # the answer to an ElicitRequest
            action = answer.action
            value = (answer.content or {}).get("value")
        if action == "accept" and value is True:
            _record(mcp.name, "confirm_note", {"title": title})
            return f"saved note {title!r}"
        return f"not saved ({action})"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="notes")
    parser.add_argument(
        "--fd", type=int, default=None, help="serve streamable HTTP on this listening socket"
    )
    parser.add_argument("--extra", action="store_true", help="add ask, mismatched, sleep")
    parser.add_argument("--say", default=None, help="write this line to stderr at start")
    parser.add_argument("--stdout", default=None, help="write this line to stdout at start")
    parser.add_argument("--not-mcp", action="store_true", help="then never answer")
    parser.add_argument(
        "--require-env", default=None, metavar="NAME", help="fail at start unless NAME is set"
    )
    args = parser.parse_args()
    if args.say is not None:
        print(args.say, file=sys.stderr, flush=True)
    if args.stdout is not None:
        print(args.stdout, flush=True)
    if args.not_mcp:
        sys.stdin.read()  # until the client gives up and closes it
        raise SystemExit(0)
    if args.require_env is not None and args.require_env not in os.environ:
        print("ssl.SSLCertVerificationError: certificate verify failed", file=sys.stderr)
        raise SystemExit(1)
    server = make_server(args.name, extra=args.extra)
    if args.fd is None:
        server.run(show_banner=False, log_level="ERROR")
    else:
        # The test binds and listens first, so connections wait in the backlog until we
        # are ready: no polling for readiness.
        sock = socket.socket(fileno=args.fd)
        anyio.run(
            functools.partial(
                server.run_http_async, show_banner=False, log_level="error", sockets=[sock]
            )
        )
