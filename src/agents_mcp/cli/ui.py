"""``agents-mcp ui``: the dashboard of a database in the browser, next to any number of
servers on it (stdio ones included). Decisions made there are recorded like
``approve_call``; the run then goes on in this process, exactly once, whichever process
had started it."""

from __future__ import annotations

import sys
import webbrowser

import anyio

from agents_mcp.cli.invocation import Invocation
from agents_mcp.cli.terminal import Console


async def ui(invocation: Invocation, console: Console, *, port: int, open_browser: bool) -> int:
    """Serve the dashboard until Ctrl-C; print its link (stdout) and open it."""
    from fastmcp import Client

    from agents_mcp.server.app import create_server
    from agents_mcp.server.ui.local import DashboardSpec, LocalDashboard

    config = invocation.load()
    ready = anyio.Event()
    boards: list[LocalDashboard] = []

    def on_ready(board: LocalDashboard) -> None:
        boards.append(board)
        ready.set()

    spec = DashboardSpec(port, links=False, on_ready=on_ready)
    mcp = create_server(config, db_path=invocation.db, dashboard=spec)
    async with Client(mcp):  # runs the server's lifespan: threads, store, the dashboard
        with anyio.fail_after(30):
            await ready.wait()
        link = boards[0].link()
        console.line(link)  # the user's own terminal, never a log
        console.status("agents-mcp ui: the dashboard is open at the link above; Ctrl-C stops it")
        if open_browser and not webbrowser.open(link):
            console.status("agents-mcp ui: no browser found; open the link yourself")
        sys.stdout.flush()
        await anyio.sleep_forever()
    return 0
