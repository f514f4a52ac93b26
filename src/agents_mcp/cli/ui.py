"""``agents-mcp ui``: the dashboard of a database in the browser, next to any number of
servers on it (stdio ones included). Decisions made there are recorded like
``approve_call``; the run then goes on in this process, exactly once, whichever process
had started it."""

from __future__ import annotations

import functools
import webbrowser
from typing import TYPE_CHECKING

import anyio

from agents_mcp.cli.invocation import Invocation
from agents_mcp.cli.terminal import Console
from agents_mcp.errors import InvalidRequest

if TYPE_CHECKING:
    from agents_mcp.server.ui.local import LocalDashboard


async def ui(invocation: Invocation, console: Console, *, port: int, open_browser: bool) -> int:
    """Serve the dashboard until Ctrl-C; print its link (stdout) and open it."""
    from agents_mcp.server.app import run_dashboard
    from agents_mcp.server.ui.local import HOST, listen

    config = invocation.load()
    try:  # a taken --port is one clear error, not a dashboard that never comes
        listen(port).close()
    except OSError as exc:
        raise InvalidRequest(
            f"cannot listen on {HOST}:{port}: {exc.strerror}; try --port 0"
        ) from None
    ready = anyio.Event()
    boards: list[LocalDashboard] = []

    def on_ready(board: LocalDashboard) -> None:
        boards.append(board)
        ready.set()

    serve = functools.partial(
        run_dashboard, config, db_path=invocation.db, port=port, on_ready=on_ready
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(60):
            await ready.wait()
        link = boards[0].link()
        console.line(link)  # the user's own terminal, never a log
        console.status("agents-mcp ui: the dashboard is open at the link above; Ctrl-C stops it")
        if open_browser and not webbrowser.open(link):
            console.status("agents-mcp ui: no browser found; open the link yourself")
    return 0
