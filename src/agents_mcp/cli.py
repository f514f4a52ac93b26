"""The ``agents-mcp`` command.

Exit codes: 0 success, 1 a failure while running, 2 a usage or configuration error.
Errors are one line on stderr (tracebacks only with ``--debug``). stdout belongs to the
MCP protocol when serving over stdio, so nothing here prints there while serving.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from agents_mcp import __version__
from agents_mcp.errors import AgentsMCPError, ConfigError

DEFAULT_CONFIG = "agents.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agents-mcp",
        description="Run configured LLM agents as MCP tools.",
    )
    parser.add_argument("--version", action="version", version=f"agents-mcp {__version__}")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the MCP server (stdio by default)",
        description="Run the MCP server. Logs go to stderr; over stdio, stdout is the protocol.",
    )
    serve.add_argument(
        "--config",
        default=os.environ.get("AGENTS_MCP_CONFIG", DEFAULT_CONFIG),
        help="config file, TOML or JSON (default: $AGENTS_MCP_CONFIG or ./agents.toml)",
    )
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default: loopback)")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (default: 8765)")
    serve.add_argument(
        "--db", help="SQLite database path (default: config [server] db, else the user data dir)"
    )
    serve.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def _logging(debug: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        # Tool errors are answered to the caller; FastMCP's tracebacks would only be noise.
        logging.getLogger("fastmcp").setLevel(logging.CRITICAL)
    os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agents-mcp`` console script."""
    args = _parser().parse_args(argv)
    debug = bool(args.debug)
    _logging(debug)
    if args.command is None:
        _parser().print_help(sys.stderr)
        return 2
    try:
        if args.command == "serve":
            return _serve(args)
    except AgentsMCPError as exc:
        if debug:
            raise
        print(f"agents-mcp: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    return 2


def _serve(args: argparse.Namespace) -> int:
    from agents_mcp.config import load_config
    from agents_mcp.server import serve

    config = load_config(Path(args.config))
    anyio.run(
        lambda: serve(
            config, transport=args.transport, host=args.host, port=args.port, db_path=args.db
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
