"""The ``agents-mcp`` command: its options, its exit codes and its logging.

Options go anywhere after the command (``agents-mcp chat demo --config a.toml "hi"``),
``--debug`` anywhere at all. Exit codes: 0 success, 1 a failure while running (a check
failed, a run did not complete), 2 a usage or configuration error, 3 the HTTP port is
already in use, 130 stopped by Ctrl-C. Errors are one line on stderr (tracebacks only with
``--debug``). stdout belongs to the MCP protocol when serving over stdio, so ``serve``
never prints there; the other commands print results on stdout and everything else
(progress, questions, errors) on stderr.

Each command here only reads its options; the work is done in the sibling modules, which
load lazily so that ``agents-mcp threads`` never pays for the MCP stack.
"""

from __future__ import annotations

import inspect
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TextIO

import anyio
from cyclopts import App, CycloptsError, Group, Parameter
from cyclopts.exceptions import UnusedCliTokensError

from agents_mcp import __version__
from agents_mcp.cli.invocation import Invocation
from agents_mcp.errors import AgentsMCPError, ClientError, ConfigError, Conflict, InvalidRequest

if TYPE_CHECKING:
    from rich.console import Console as RichConsole

    from agents_mcp.cli.terminal import Console

STATUSES = Literal["completed", "needs_approval", "running", "failed", "cancelled"]
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
        metavar="PATH",
        help="SQLite thread database (default: [server] db of the config, else the user data dir)",
    ),
]
JsonOption = Annotated[bool, Parameter(help="machine-readable output (shape in the README)")]


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
    os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")


# -- commands ---------------------------------------------------------------------------------


@app.command(sort_key=0, usage="Usage: agents-mcp serve [OPTIONS]", help_epilogue="")
def serve(
    *,
    config: ConfigOption = None,
    transport: Annotated[
        Literal["stdio", "http"], Parameter(help="stdio (what MCP clients start) or http")
    ] = "stdio",
    host: Annotated[str, Parameter(help="HTTP bind address (default: loopback)")] = "127.0.0.1",
    port: Annotated[int, Parameter(help="HTTP port (default: 8765)")] = 8765,
    db: DbOption = None,
) -> int:
    """Run the MCP server (stdio by default).

    Logs go to stderr; over stdio, stdout is the protocol. Ctrl-C stops it (exit code 130).
    """
    from agents_mcp.cli.serving import run

    return run(Invocation(config, db), transport=transport, host=host, port=port)


@app.command(sort_key=1, usage="Usage: agents-mcp chat AGENT [MESSAGE] [OPTIONS]", help_epilogue="")
def chat(
    agent: Annotated[str, Parameter(help="the agent's name in the config")],
    message: Annotated[
        str | None, Parameter(help="what to say (default: one message per line from stdin)")
    ] = None,
    /,
    *,
    thread: Annotated[str | None, Parameter(metavar="ID", help="continue this thread")] = None,
    continue_: Annotated[
        bool,
        Parameter(name=["--continue", "-c"], help="continue the agent's most recent thread"),
    ] = False,
    personality: Annotated[
        str | None, Parameter(metavar="P", help="one of the agent's personalities")
    ] = None,
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """Talk to an agent from the terminal.

    The same loop and thread database as the server, so threads are shared with stdio MCP
    clients. The reply streams to stdout, progress to stderr; tool calls that need approval
    are asked on the terminal. Without MESSAGE: one message per line until Ctrl-D.
    """
    from agents_mcp.cli.chat import chat as run_chat

    if message is not None and not message.strip():
        raise InvalidRequest("MESSAGE is empty; say what the agent should do")
    if thread is not None and continue_:
        raise InvalidRequest("give --thread or --continue, not both")
    invocation = Invocation(config, db)
    return anyio.run(
        lambda: run_chat(
            invocation,
            agent=agent,
            message=message,
            thread_id=thread,
            last=continue_,
            personality=personality,
            as_json=json,
            console=_console(),
        )
    )


@app.command(sort_key=2, usage="Usage: agents-mcp pending [OPTIONS]", help_epilogue="")
def pending(
    *,
    agent: Annotated[
        str | None, Parameter(metavar="NAME", help="only this agent's threads")
    ] = None,
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """List the calls that wait for your approval.

    Every local thread that waits, with each call's arguments and the command that decides
    it. Threads started by stdio MCP clients are local too.
    """
    from agents_mcp.cli.inbox import pending as run_pending

    invocation = Invocation(config, db)
    return anyio.run(lambda: run_pending(invocation, agent=agent, as_json=json, console=_console()))


@app.command(
    sort_key=3, usage="Usage: agents-mcp approve THREAD_ID CALL_ID [OPTIONS]", help_epilogue=""
)
def approve(
    thread: Annotated[str, Parameter(metavar="THREAD_ID", help="the waiting thread")],
    call: Annotated[str, Parameter(metavar="CALL_ID", help="the call to decide (see pending)")],
    /,
    *,
    deny: Annotated[
        str | None, Parameter(metavar="REASON", help="refuse the call; the model reads REASON")
    ] = None,
    always: Annotated[
        bool, Parameter(help="also allow this tool for the rest of the thread")
    ] = False,
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """Allow (or --deny) a call that waits for approval.

    The run goes on once every waiting call of the thread is decided; its reply streams
    to stdout as in chat. Exit code 1 when the run does not complete.
    """
    from agents_mcp.cli.chat import approve as run_approve

    invocation = Invocation(config, db)
    return anyio.run(
        lambda: run_approve(
            invocation,
            thread_id=thread,
            call_id=call,
            deny=deny,
            always=always,
            as_json=json,
            console=_console(),
        )
    )


@app.command(sort_key=4, usage="Usage: agents-mcp threads [OPTIONS]", help_epilogue="")
def threads(
    *,
    agent: Annotated[
        str | None, Parameter(metavar="NAME", help="only this agent's threads")
    ] = None,
    status: Annotated[STATUSES | None, Parameter(help="only threads in this status")] = None,
    limit: Annotated[int, Parameter(metavar="N", help="at most N (default: 20)")] = 20,
    all: Annotated[
        bool, Parameter(help="also the threads agents delegated to other agents")
    ] = False,
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """List recent threads.

    The local threads (started over stdio or from the CLI), newest first.
    """
    from agents_mcp.cli.history import list_threads

    if limit < 1:
        raise InvalidRequest("--limit must be at least 1")
    path = Invocation(config, db).history_db()
    return anyio.run(
        lambda: list_threads(
            path, _console(), agent=agent, status=status, limit=limit, as_json=json, children=all
        )
    )


@app.command(sort_key=5, usage="Usage: agents-mcp show THREAD_ID [OPTIONS]", help_epilogue="")
def show(
    thread: Annotated[str, Parameter(metavar="THREAD_ID", help="the thread to print")],
    /,
    *,
    json: JsonOption = False,
    reasoning: Annotated[bool, Parameter(help="unfold the model's reasoning")] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """Print one thread: messages, tool calls, usage.

    Tool calls come with their results and approval decisions.
    """
    from agents_mcp.cli.history import show_thread

    path = Invocation(config, db).history_db()
    return anyio.run(
        lambda: show_thread(path, thread, _console(), as_json=json, reasoning=reasoning)
    )


@app.command(sort_key=6, usage="Usage: agents-mcp check [OPTIONS]", help_epilogue="")
def check(
    *,
    offline: Annotated[bool, Parameter(help="do not contact model endpoints")] = False,
    timeout: Annotated[
        float, Parameter(metavar="S", help="per server and model (default: 30)")
    ] = 30.0,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> int:
    """Validate the config and reach every server and model.

    Validates the config and the environment variables it names, starts every downstream
    server and lists its tools as each agent's model sees them, and sends one tiny request
    to each model. Exit code 1 when anything fails, 2 when the config is invalid.
    """
    from agents_mcp.cli.check import check as run_check

    path = Invocation(config, None).config_path()
    return anyio.run(
        lambda: run_check(path, _console(), offline=offline, seconds=timeout, as_json=json)
    )


@app.command(sort_key=7, usage="Usage: agents-mcp init [PATH]", help_epilogue="")
def init(
    path: Annotated[
        str, Parameter(help="where to write it (default: ./agents.toml)")
    ] = "agents.toml",
    /,
) -> int:
    """Write a starter agents.toml.

    A commented starter config (never overwrites), and the Claude Desktop and Claude Code
    snippets that serve it.
    """
    from agents_mcp.cli.starter import next_steps, write_starter

    console = _console()
    written = write_starter(Path(path))
    for line in next_steps(written):
        console.line(line)
    return 0


@app.command(sort_key=8, usage="Usage: agents-mcp install CLIENT [OPTIONS]", help_epilogue="")
def install(
    client: Annotated[CLIENTS, Parameter(help="the MCP client to add agents-mcp to")],
    /,
    *,
    config: ConfigOption = None,
    name: Annotated[
        str, Parameter(metavar="NAME", help="the server's name in the client (default: agents)")
    ] = "agents",
    env: Annotated[
        list[str] | None,
        Parameter(
            metavar="NAME=VALUE",
            help="a value for the entry's env block (repeatable); others get placeholders",
        ),
    ] = None,
    print_: Annotated[
        bool, Parameter(name="--print", help="only show the entry; change nothing")
    ] = False,
    force: Annotated[bool, Parameter(help="replace an entry of the same name")] = False,
) -> int:
    """Add the server to Claude Desktop, Claude Code or Cursor.

    Writes the entry that serves the config (absolute paths, and an env block with every
    variable the config names) into the client's config file, after backing it up. Never
    replaces an entry of the same name without --force. Claude Code is configured through
    its `claude mcp add` when `claude` is on PATH.
    """
    from agents_mcp.cli.install import install as run_install

    return run_install(
        Invocation(config, None),
        client,
        name=name,
        env=env or [],
        print_only=print_,
        force=force,
        console=_console(),
    )


def _console() -> Console:
    from agents_mcp.cli.terminal import console

    return console()


if __name__ == "__main__":
    raise SystemExit(main())
