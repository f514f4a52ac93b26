"""The ``agents-mcp`` commands. Each only reads its options; the work is done in the sibling
modules, which load lazily so that ``agents-mcp threads`` never pays for the MCP stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from cyclopts import Parameter

from agents_mcp.cli import (
    collector,
    spending,  # the usage command, registered on import
)
from agents_mcp.cli import login as _login  # noqa: F401 (registers `login`, `logout`)
from agents_mcp.cli.app import (
    CLIENTS,
    STATUSES,
    ConfigOption,
    DbOption,
    JsonOption,
    app,
    command_console,
    help_text,
    main,
    parse,
)
from agents_mcp.cli.invocation import Invocation
from agents_mcp.errors import InvalidRequest

__all__ = ["app", "help_text", "main", "parse", "spending"]


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
    allowed_host: Annotated[
        tuple[str, ...],
        Parameter(
            name="--allowed-host",
            metavar="HOST",
            help="a Host name to accept over HTTP, e.g. a reverse proxy's or a LAN name"
            " (*.example.com works; repeatable); adds to [server] allowed_hosts",
        ),
    ] = (),
    allowed_origin: Annotated[
        tuple[str, ...],
        Parameter(
            name="--allowed-origin",
            metavar="ORIGIN",
            help="a browser origin to accept over HTTP, e.g. https://app.example.com"
            " (repeatable); adds to [server] allowed_origins",
        ),
    ] = (),
) -> int:
    """Run the MCP server (stdio by default).

    Logs go to stderr; over stdio, stdout is the protocol. Ctrl-C stops it (exit code 130).
    """
    from agents_mcp.cli.serving import run

    return run(
        Invocation(config, db),
        transport=transport,
        host=host,
        port=port,
        allowed_hosts=allowed_host,
        allowed_origins=allowed_origin,
    )


@app.command(sort_key=1, usage="Usage: agents-mcp chat AGENT [MESSAGE] [OPTIONS]", help_epilogue="")
def chat(
    agent: Annotated[str, Parameter(help="the agent's name in the config")],
    message: Annotated[
        str | None, Parameter(help="what to say (default: one message per line from stdin)")
    ] = None,
    /,
    *,
    thread: Annotated[
        str | None, Parameter(metavar="THREAD_ID", help="continue this thread")
    ] = None,
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
    return collector.run(
        lambda: run_chat(
            invocation,
            agent=agent,
            message=message,
            thread_id=thread,
            last=continue_,
            personality=personality,
            as_json=json,
            console=command_console(),
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
    return collector.run(
        lambda: run_pending(invocation, agent=agent, as_json=json, console=command_console())
    )


@app.command(
    sort_key=3, usage="Usage: agents-mcp approve THREAD_ID CALL_ID [OPTIONS]", help_epilogue=""
)
def approve(
    thread: Annotated[str, Parameter(name="THREAD_ID", help="the waiting thread")],
    call: Annotated[str, Parameter(name="CALL_ID", help="the call to decide (see pending)")],
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
    return collector.run(
        lambda: run_approve(
            invocation,
            thread_id=thread,
            call_id=call,
            deny=deny,
            always=always,
            as_json=json,
            console=command_console(),
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
    cursor: Annotated[
        str | None,
        Parameter(metavar="C", help="the next page: the next_cursor of the previous one"),
    ] = None,
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
    return collector.run(
        lambda: list_threads(
            path,
            command_console(),
            agent=agent,
            status=status,
            limit=limit,
            as_json=json,
            children=all,
            cursor=cursor,
        )
    )


@app["threads"].command(
    name="delete", usage="Usage: agents-mcp threads delete THREAD_ID [OPTIONS]", help_epilogue=""
)
def threads_delete(
    thread: Annotated[str, Parameter(metavar="THREAD_ID", help="the finished thread to delete")],
    /,
    *,
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """Delete a finished thread for good.

    Its messages, tool calls and approvals go, with the threads of its delegations. A
    thread that runs or waits for approval is refused; a delegation goes with its
    top-level thread only.
    """
    from agents_mcp.cli.history import delete_thread
    from agents_mcp.threads.lifecycle import Hints

    invocation = Invocation(config, db)
    hints = Hints(
        running=f"stop it first (`{invocation.command('cancel', thread)}`, or cancel_run from"
        " an MCP client) or let it finish, then delete it",
        waiting=f"decide its calls (`{invocation.command('pending')}`) or drop them"
        f" (`{invocation.command('cancel', thread)}`), then delete it",
    )
    path = invocation.history_db()
    return collector.run(
        lambda: delete_thread(path, thread, command_console(), hints=hints, as_json=json)
    )


@app.command(sort_key=5, usage="Usage: agents-mcp show THREAD_ID [OPTIONS]", help_epilogue="")
def show(
    thread: Annotated[str, Parameter(name="THREAD_ID", help="the thread to print")],
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
    return collector.run(
        lambda: show_thread(path, thread, command_console(), as_json=json, reasoning=reasoning)
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
    db: DbOption = None,
) -> int:
    """Validate the config and reach every server and model.

    Validates the config and the environment variables it names, starts every downstream
    server and lists its tools as each agent's model sees them, and sends one tiny request
    to each model. Exit code 1 when anything fails, 2 when the config is invalid.
    """
    from agents_mcp.cli.check import check as run_check

    path = Invocation(config, db).config_path()
    return collector.run(
        lambda: run_check(
            path, command_console(), offline=offline, seconds=timeout, as_json=json, db=db
        )
    )


@app.command(sort_key=6.1, usage="Usage: agents-mcp agents [OPTIONS]", help_epilogue="")
def agents(*, json: JsonOption = False, config: ConfigOption = None) -> int:
    """List the agents and where each comes from.

    The config's [agents] tables and the agent files of [server] agents_from (Claude Code,
    Copilot, Codex); files that are not used are named on stderr (`check` says why).
    """
    from agents_mcp.cli.agents import list_agents

    return list_agents(Invocation(config, None), command_console(), as_json=json)


@app.command(sort_key=6.2, usage="Usage: agents-mcp tools AGENT [OPTIONS]", help_epilogue="")
def tools(
    agent: Annotated[str, Parameter(help="the agent's name (see agents-mcp agents)")],
    /,
    *,
    timeout: Annotated[
        float, Parameter(metavar="S", help="for starting its servers (default: 30)")
    ] = 30.0,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> int:
    """List the tools an agent's model sees.

    Starts the agent's servers, and lists each tool as offered to the model (server__tool)
    with its approval rule, and the agents it may delegate to. Exit code 1 when a server
    is unavailable.
    """
    from agents_mcp.cli.agents import list_tools

    invocation = Invocation(config, None)
    return collector.run(
        lambda: list_tools(invocation, agent, command_console(), as_json=json, seconds=timeout)
    )


@app.command(sort_key=6.3, usage="Usage: agents-mcp ui [OPTIONS]", help_epilogue="")
def ui(
    *,
    port: Annotated[
        int, Parameter(help="loopback port (default: 0, a free port the system picks)")
    ] = 0,
    no_open: Annotated[bool, Parameter(name="--no-open", help="only print the link")] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """Open the dashboard: every thread, and every call waiting for you.

    Serves it on 127.0.0.1 behind a key that is in the printed link, next to any servers
    on the same database; a decision made there resumes the run exactly once. Ctrl-C stops it.
    """
    from agents_mcp.cli.ui import ui as run_ui

    invocation = Invocation(config, db)
    try:
        return collector.run(
            lambda: run_ui(invocation, command_console(), port=port, open_browser=not no_open)
        )
    except KeyboardInterrupt:
        return 130


@app.command(sort_key=7, usage="Usage: agents-mcp init [PATH]", help_epilogue="")
def init(
    path: Annotated[
        str, Parameter(help="where to write it (default: ./agents.toml)")
    ] = "agents.toml",
    /,
) -> int:
    """Write a starter agents.toml.

    A commented starter config (never overwrites; a PATH ending in .json gets the same
    settings as JSON), and the Claude Desktop and Claude Code snippets that serve it.
    """
    from agents_mcp.cli.starter import next_steps, write_starter

    console = command_console()
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
        console=command_console(),
    )


@app.command(sort_key=3.5, usage="Usage: agents-mcp cancel THREAD_ID [OPTIONS]", help_epilogue="")
def cancel(
    thread: Annotated[str, Parameter(name="THREAD_ID", help="the thread to stop")],
    /,
    *,
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """Stop a thread's run, or drop the calls that wait for approval.

    What cancel_run does: a running thread stops wherever it runs (the steps it finished
    stay); a waiting thread's undecided calls are dropped and never run.
    """
    from agents_mcp.cli.inbox import cancel as run_cancel

    invocation = Invocation(config, db)
    return collector.run(
        lambda: run_cancel(invocation, thread, as_json=json, console=command_console())
    )


@app.command(sort_key=8.5, usage="Usage: agents-mcp uninstall CLIENT [OPTIONS]", help_epilogue="")
def uninstall(
    client: Annotated[CLIENTS, Parameter(help="the MCP client to remove agents-mcp from")],
    /,
    *,
    name: Annotated[
        str, Parameter(metavar="NAME", help="the server's name in the client (default: agents)")
    ] = "agents",
    force: Annotated[
        bool, Parameter(help="remove the entry even if it does not start agents-mcp")
    ] = False,
) -> int:
    """Remove the server from Claude Desktop, Claude Code or Cursor.

    The inverse of install: takes the entry out of the client's config file, after
    backing it up (Claude Code: with `claude mcp remove` when `claude` is on PATH).
    """
    from agents_mcp.cli.install import uninstall as run_uninstall

    return run_uninstall(client, name=name, force=force, console=command_console())


if __name__ == "__main__":
    raise SystemExit(main())
