"""The ``agents-mcp`` command.

Exit codes: 0 success, 1 a failure while running (a check failed, a run did not complete),
2 a usage or configuration error. Errors are one line on stderr (tracebacks only with
``--debug``). stdout belongs to the MCP protocol when serving over stdio, so ``serve``
never prints there; the other commands print results on stdout and everything else
(progress, questions, errors) on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from agents_mcp import __version__
from agents_mcp.errors import AgentsMCPError, ClientError, ConfigError, Conflict, InvalidRequest

if TYPE_CHECKING:
    from agents_mcp.cli.terminal import Console
    from agents_mcp.config import Config

DEFAULT_CONFIG = "agents.toml"
STATUSES = ("completed", "needs_approval", "running", "failed", "cancelled")

_EPILOG = """\
examples:
  agents-mcp init                                  write a starter agents.toml
  agents-mcp check                                 is every server and model reachable?
  agents-mcp chat demo "hello"                     talk to an agent from the terminal
  agents-mcp serve --config agents.toml            serve over stdio (what MCP clients run)
  agents-mcp serve --transport http --port 8765    serve over HTTP on localhost
  agents-mcp threads                               recent conversations
  agents-mcp show th_…                             one conversation in full

--config defaults to $AGENTS_MCP_CONFIG, else ./agents.toml.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


def _config_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get("AGENTS_MCP_CONFIG", DEFAULT_CONFIG) if required else None,
        help="config file, TOML or JSON (default: $AGENTS_MCP_CONFIG or ./agents.toml)",
    )


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="SQLite thread database (default: [server] db of the config, else the user data dir)",
    )


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=summary, description=description, formatter_class=_Formatter)
    # Also accepted after the command; SUPPRESS keeps it from resetting `agents-mcp --debug x`.
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agents-mcp",
        description="Run configured LLM agents as MCP tools.",
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"agents-mcp {__version__}")
    parser.add_argument("--debug", action="store_true", help="verbose logs and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    serve = _command(
        sub,
        "serve",
        "run the MCP server (stdio by default)",
        "Run the MCP server. Logs go to stderr; over stdio, stdout is the protocol.",
    )
    _config_option(serve)
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default: loopback)")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (default: 8765)")
    _db_option(serve)

    chat = _command(
        sub,
        "chat",
        "talk to an agent from the terminal",
        "Talk to an agent: the same loop and thread database as the server, so threads are"
        " shared\nwith stdio MCP clients. The reply streams to stdout, progress to stderr;"
        " tool calls that\nneed approval are asked on the terminal. Without MESSAGE: one"
        " message per line until Ctrl-D.",
    )
    chat.add_argument("agent", metavar="AGENT", help="the agent's name in the config")
    chat.add_argument("message", metavar="MESSAGE", nargs="?", help="what to say (default: ask)")
    chat.add_argument("--thread", metavar="ID", help="continue this thread")
    chat.add_argument("--personality", metavar="P", help="one of the agent's personalities")
    _config_option(chat)
    _db_option(chat)

    threads = _command(
        sub,
        "threads",
        "list recent threads",
        "List the local threads (started over stdio or from the CLI), newest first.",
    )
    threads.add_argument("--agent", metavar="NAME", help="only this agent's threads")
    threads.add_argument("--status", choices=STATUSES, help="only threads in this status")
    threads.add_argument(
        "--limit", type=int, default=20, metavar="N", help="at most N (default: 20)"
    )
    threads.add_argument(
        "--all", action="store_true", help="also the threads agents delegated to other agents"
    )
    threads.add_argument("--json", action="store_true", help="machine-readable output")
    _config_option(threads, required=False)
    _db_option(threads)

    show = _command(
        sub,
        "show",
        "print one thread: messages, tool calls, usage",
        "Print a thread: messages, tool calls with their results and approvals, usage.",
    )
    show.add_argument("thread", metavar="THREAD_ID")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument("--reasoning", action="store_true", help="unfold the model's reasoning")
    _config_option(show, required=False)
    _db_option(show)

    check = _command(
        sub,
        "check",
        "validate the config and reach every server and model",
        "Validate the config and the environment variables it names, start every downstream"
        "\nserver and list its tools as each agent's model sees them, and send one tiny request"
        "\nto each model. Exit code 1 when anything fails, 2 when the config is invalid.",
    )
    _config_option(check)
    check.add_argument("--offline", action="store_true", help="do not contact model endpoints")
    check.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="per server and model (default: 30)",
    )

    init = _command(
        sub,
        "init",
        "write a starter agents.toml",
        "Write a commented starter config (never overwrites) and print the Claude Desktop"
        "\nand Claude Code snippets that serve it.",
    )
    init.add_argument("path", metavar="PATH", nargs="?", default=DEFAULT_CONFIG)
    return parser


def _logging(debug: bool, console: Console | None) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    if console is None:  # serve: plain log lines on stderr
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler = console.log_handler()
        fmt = "%(levelname)s %(name)s: %(message)s" if debug else "agents-mcp: %(message)s"
        handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:
        # Tool errors are answered to the caller; FastMCP's tracebacks would only be noise.
        logging.getLogger("fastmcp").setLevel(logging.CRITICAL)
    os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agents-mcp`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(args.debug)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    # Configs may run bundled Python servers with the interpreter agents-mcp runs on:
    # command = "${AGENTS_MCP_PYTHON:-python}" (desktop apps start us with a bare PATH).
    os.environ.setdefault("AGENTS_MCP_PYTHON", sys.executable)
    console = None
    if args.command != "serve":
        from agents_mcp.cli.terminal import Console

        console = Console()
    _logging(debug, console)
    try:
        return _COMMANDS[args.command](args, console)
    except AgentsMCPError as exc:
        if debug:
            raise
        print(f"agents-mcp: {exc}", file=sys.stderr)
        usage = isinstance(exc, ConfigError | ClientError) and not isinstance(exc, Conflict)
        return 2 if usage else 1
    except KeyboardInterrupt:
        print("agents-mcp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `agents-mcp threads | head`: the reader is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 1
    except Exception as exc:
        if debug:
            raise
        print(
            f"agents-mcp: unexpected error: {type(exc).__name__}: {exc}"
            " (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


# -- commands ---------------------------------------------------------------------------------


def _load(path: str) -> Config:
    from agents_mcp.config import load_config

    return load_config(Path(path))


def _serve(args: argparse.Namespace, console: Console | None) -> int:
    from agents_mcp.server import is_loopback, serve

    config = _load(args.config)
    if args.transport == "stdio" or is_loopback(args.host) or config.server.auth_tokens:
        where = "stdio" if args.transport == "stdio" else f"http://{args.host}:{args.port}/mcp"
        db = _db_path(config, args.db)
        # stderr only: over stdio, stdout is the protocol. Desktop apps keep this in their logs.
        print(
            f"agents-mcp {__version__}: {len(config.agents)} agent(s) ({', '.join(config.agents)})"
            f" on {where}; threads in {db}",
            file=sys.stderr,
        )
    anyio.run(
        lambda: serve(
            config, transport=args.transport, host=args.host, port=args.port, db_path=args.db
        )
    )
    return 0


def _chat(args: argparse.Namespace, console: Console | None) -> int:
    from agents_mcp.cli.chat import chat

    assert console is not None
    config = _load(args.config)
    if args.message is not None and not args.message.strip():
        raise InvalidRequest("MESSAGE is empty; say what the agent should do")
    return anyio.run(
        lambda: chat(
            config,
            agent=args.agent,
            message=args.message,
            thread_id=args.thread,
            personality=args.personality,
            db_path=args.db,
            console=console,
        )
    )


def _threads(args: argparse.Namespace, console: Console | None) -> int:
    from agents_mcp.cli.history import list_threads

    assert console is not None
    if args.limit < 1:
        raise InvalidRequest("--limit must be at least 1")
    db = _history_db(args)
    return anyio.run(
        lambda: list_threads(
            db,
            console,
            agent=args.agent,
            status=args.status,
            limit=args.limit,
            as_json=args.json,
            children=args.all,
        )
    )


def _show(args: argparse.Namespace, console: Console | None) -> int:
    from agents_mcp.cli.history import show_thread

    assert console is not None
    db = _history_db(args)
    return anyio.run(
        lambda: show_thread(db, args.thread, console, as_json=args.json, reasoning=args.reasoning)
    )


def _check(args: argparse.Namespace, console: Console | None) -> int:
    from agents_mcp.cli.check import check

    assert console is not None
    return anyio.run(
        lambda: check(Path(args.config), console, offline=args.offline, seconds=args.timeout)
    )


def _init(args: argparse.Namespace, console: Console | None) -> int:
    from agents_mcp.cli.starter import next_steps, write_starter

    assert console is not None
    written = write_starter(Path(args.path))
    for line in next_steps(written):
        console.line(line)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, Console | None], int]] = {
    "serve": _serve,
    "chat": _chat,
    "threads": _threads,
    "show": _show,
    "check": _check,
    "init": _init,
}


# -- the thread database ----------------------------------------------------------------------


def _db_path(config: Config | None, override: str | None) -> str:
    from agents_mcp.store import resolve_db_path

    return resolve_db_path(config.server.db if config is not None else None, override)


def _history_db(args: argparse.Namespace) -> str:
    """The database ``threads``/``show`` read: the config is only consulted when given or
    present (``./agents.toml``), since listing threads needs no config."""
    if args.db is not None:
        return str(args.db)
    path = args.config or os.environ.get("AGENTS_MCP_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    return _db_path(_load(path) if path is not None else None, None)


if __name__ == "__main__":
    raise SystemExit(main())
