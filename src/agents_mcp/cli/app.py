"""The frame of the ``agents-mcp`` command: its options, parsing, exit codes and logging
(the commands themselves are in ``commands``).

Options go anywhere after the command (``agents-mcp chat demo --config a.toml "hi"``),
``--debug`` anywhere at all. Exit codes: 0 success, 1 a failure while running (a check
failed, a run did not complete), 2 a usage or configuration error, 3 the HTTP port is
already in use, 130 stopped by Ctrl-C. Errors are one line on stderr (tracebacks only with
``--debug``). stdout belongs to the MCP protocol when serving over stdio, so ``serve``
never prints there; the other commands print results on stdout and everything else
(progress, questions, errors) on stderr.

"""

from __future__ import annotations

import inspect
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, TextIO

from cyclopts import App, CycloptsError, Group, Parameter
from cyclopts.exceptions import UnusedCliTokensError

from agents_mcp import __version__
from agents_mcp.errors import AgentsMCPError, ClientError, ConfigError, Conflict

if TYPE_CHECKING:
    from rich.console import Console as RichConsole

    from agents_mcp.cli.terminal import Console

STATUSES = Literal[
    "completed", "needs_approval", "running", "failed", "cancelled", "budget_exceeded"
]
CLIENTS = Literal["claude-desktop", "claude-code", "cursor"]
LOG_FORMAT = "%(asctime)s agents-mcp %(levelname)s %(name)s: %(message)s"
"""One format for every command's log lines (stderr only)."""

_EPILOG = """\
examples:
  agents-mcp init                                  write a starter agents.toml
  agents-mcp check                                 is every server and model reachable?
  agents-mcp chat demo "hello"                     talk to an agent from the terminal
  agents-mcp chat demo --continue "and then?"      continue the agent's last thread
  agents-mcp pending                               calls waiting for your approval
  agents-mcp install claude-desktop                add the server to Claude Desktop
  agents-mcp serve --transport http --port 8765    serve over HTTP on localhost

--config defaults to $AGENTS_MCP_CONFIG, else ./agents.toml.
"""

app = App(
    name="agents-mcp",
    help="Run configured LLM agents as MCP tools.",
    help_format="plaintext",
    help_epilogue=_EPILOG,
    version=f"agents-mcp {__version__}",
    default_parameter=Parameter(negative=(), show_default=False),
    group_parameters=Group("Options", sort_key=1),
    group_arguments=Group("Arguments", sort_key=0),
    exit_on_error=False,  # main() reports usage errors, in one line
    print_error=False,
)
app.meta.group_parameters = Group("Every command", sort_key=2)

ConfigOption = Annotated[
    str | None,
    Parameter(
        metavar="FILE",
        help="config file, TOML or JSON (default: $AGENTS_MCP_CONFIG or ./agents.toml)",
    ),
]
DbOption = Annotated[
    str | None,
    Parameter(
        metavar="DB",
        help="thread database: a SQLite file or a postgresql:// URL (default: [server] db of"
        " the config, else a file in the user data dir)",
    ),
]
JsonOption = Annotated[bool, Parameter(help="machine-readable output (shape in docs/commands.md)")]


@app.meta.default
def _launch(
    *tokens: Annotated[str, Parameter(show=False, allow_leading_hyphen=True)],
    debug: Annotated[bool, Parameter(help="verbose logs and full tracebacks")] = False,
) -> int:
    return _run(list(tokens), debug)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agents-mcp`` console script."""
    tokens = list(sys.argv[1:] if argv is None else argv)
    if not [t for t in tokens if t != "--debug"]:
        app.help_print([], console=_help_console(sys.stderr))
        return 2
    try:
        command, bound, _ = app.meta.parse_args(tokens)
    except CycloptsError as exc:
        return _usage_error(exc, tokens)
    if command is not _launch:  # --help or --version, whichever command they follow
        if "console" in bound.signature.parameters:
            bound.arguments["console"] = _help_console(sys.stdout)
        command(*bound.args, **bound.kwargs)
        return 0
    return int(command(*bound.args, **bound.kwargs))


def parse(argv: Sequence[str]) -> tuple[Callable[..., Any], inspect.BoundArguments]:
    """The command ``argv`` names and its arguments, without running it (``--debug``
    removed). Raises ``CycloptsError`` for a usage error."""
    command, bound, _ = app.meta.parse_args(list(argv))
    if command is _launch:
        command, bound, _ = app.parse_args(list(bound.args))
    return command, bound


def help_text(argv: Sequence[str] = ()) -> str:
    """What ``agents-mcp ARGV --help`` prints when stdout is not a terminal."""
    out = io.StringIO()
    app.help_print(list(argv), console=_help_console(out))
    return out.getvalue()


def _run(tokens: list[str], debug: bool) -> int:
    try:
        command, bound, _ = app.parse_args(tokens)
    except CycloptsError as exc:
        return _usage_error(exc, tokens)
    # Configs may run bundled Python servers with the interpreter agents-mcp runs on:
    # command = "${AGENTS_MCP_PYTHON:-python}" (desktop apps start us with a bare PATH).
    os.environ.setdefault("AGENTS_MCP_PYTHON", sys.executable)
    _logging(debug)
    try:
        return int(command(*bound.args, **bound.kwargs))
    except AgentsMCPError as exc:
        if debug:
            raise
        print(f"agents-mcp: {exc}", file=sys.stderr)
        if isinstance(code := getattr(exc, "exit_code", None), int):
            return code
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


def _usage_error(exc: CycloptsError, tokens: list[str]) -> int:
    message = str(exc).strip().split(" Available commands:")[0]  # --help lists them
    if isinstance(exc, UnusedCliTokensError) and exc.unused_tokens:
        extra = " ".join(exc.unused_tokens)
        message = f"unexpected argument(s): {extra} (quote a message that has spaces)"
    command = next((t for t in tokens if t in app), None) if tokens else None
    see = f"agents-mcp {command} --help" if command else "agents-mcp --help"
    print(f"agents-mcp: {message[:1].lower()}{message[1:]} (see `{see}`)", file=sys.stderr)
    return 2


def _help_console(stream: TextIO) -> RichConsole:
    from rich.console import Console as RichConsole

    # Help is read in a terminal; when piped (tests, README), 100 columns and no colour.
    tty = stream.isatty() if hasattr(stream, "isatty") else False
    return RichConsole(file=stream, width=None if tty else 100, highlight=False)


def _logging(debug: bool) -> None:
    from agents_mcp.cli.terminal import log_handler

    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = log_handler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:
        # Tool errors are answered to the caller; FastMCP's tracebacks would only be noise.
        logging.getLogger("fastmcp").setLevel(logging.CRITICAL)
    # fastmcp's own (rich) handler would print its lines in a format of its own: with its
    # logging off (a setting read when fastmcp loads, after this), they come through ours.
    os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")
    os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")


def command_console() -> Console:
    from agents_mcp.cli.terminal import console

    return console()
