"""``agents-mcp usage``: its options (the work is in ``usage``, loaded when it runs)."""

from __future__ import annotations

from typing import Annotated, Literal

from cyclopts import Parameter

from agents_mcp.cli import collector
from agents_mcp.cli.app import ConfigOption, DbOption, JsonOption, app, command_console
from agents_mcp.cli.invocation import Invocation


@app.command(sort_key=5.5, usage="Usage: agents-mcp usage [OPTIONS]", help_epilogue="")
def usage(
    *,
    by: Annotated[
        Literal["agent", "owner", "day", "model"],
        Parameter(help="one row per top-level agent, owner, UTC day or model (default: agent)"),
    ] = "agent",
    since: Annotated[
        str | None, Parameter(metavar="DATE", help="from this UTC day on (2026-01-31)")
    ] = None,
    until: Annotated[
        str | None, Parameter(metavar="DATE", help="before this UTC day (not included)")
    ] = None,
    days: Annotated[
        int | None, Parameter(metavar="N", help="the last N UTC days, today included")
    ] = None,
    owner: Annotated[
        str | None, Parameter(metavar="NAME", help="only this owner's threads")
    ] = None,
    agent: Annotated[
        str | None, Parameter(metavar="NAME", help="only threads of this top-level agent")
    ] = None,
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """Show what agents spent: requests, tokens and cost.

    Every owner's threads in the database. The agents a thread delegated to count for it
    (shown apart as DELEGATED); costs are from each model's price in the config when the
    request was made.
    """
    from agents_mcp.cli.usage import period
    from agents_mcp.cli.usage import usage as run_usage

    start, end = period(since, until, days)
    path = Invocation(config, db).history_db()
    return collector.run(
        lambda: run_usage(
            path,
            command_console(),
            by=by,
            since=start,
            until=end,
            owner=owner,
            agent=agent,
            as_json=json,
        )
    )
