"""The MCP face of agents-mcp: a FastMCP server whose tools (``tools``) drive
:class:`~agents_mcp.threads.service.Threads`.

The composition root of the server: the lifespan opens the threads (models, downstream
servers, store) for the server's life and hands them to the tools as :class:`Deps`. Who
calls comes from ``auth`` and which agents they may use from ``access``; ``tools/list``
is rewritten per caller (``catalog``). How it is served (stdio, HTTP) is ``transports``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastmcp import FastMCP
from fastmcp.server.auth import AuthProvider

from agents_mcp import __version__
from agents_mcp.config import Config
from agents_mcp.llm import LLM
from agents_mcp.server import consent, deletion, observe, resources, tools
from agents_mcp.server.access import Access
from agents_mcp.server.auth import current_caller
from agents_mcp.server.catalog import CallerView
from agents_mcp.server.consent import add_callback
from agents_mcp.server.deps import DEPS, Deps, Settings
from agents_mcp.server.mrtr import STATE_SECRET, SharedKey, security
from agents_mcp.server.reloading import AgentFiles
from agents_mcp.server.subscriptions import ThreadSubscriptions
from agents_mcp.server.tasks import TasksExtension
from agents_mcp.server.threadtasks import ThreadTasks
from agents_mcp.server.ui.apps import add_thread_view, tool_caller
from agents_mcp.server.ui.local import (
    HOST,
    DashboardSpec,
    LinkInResults,
    LocalDashboard,
    listen,
    local_app,
    serve_local,
)
from agents_mcp.store import SQLStore, Store, resolve_db
from agents_mcp.store.tasks import TaskStore
from agents_mcp.threads.runtime import Runtime, open_runtime
from agents_mcp.threads.service import Threads

log = logging.getLogger("agents_mcp.server.app")

INSTRUCTIONS = (
    "Agents as tools. chat_with_agent talks to an agent; keep the returned thread_id"
    " to continue. list_threads finds conversations and approvals waiting."
)


def create_server(
    config: Config,
    *,
    db_path: str | Path | None = None,
    llms: Mapping[str, LLM] | None = None,
    transports: Mapping[str, Any] | None = None,
    wait_seconds: float | None = None,
    auth: AuthProvider | None = None,
    dashboard: DashboardSpec | None = None,
    callback_url: str | None = None,
) -> FastMCP:
    """Build the agents-mcp server for ``config``.

    ``llms``, ``transports``: models and downstream servers replaced by name (tests).
    ``dashboard``: also serve the dashboard on a loopback port of its own (stdio, ``ui``).
    ``callback_url``: where downstream sign-ins come back (HTTP: ``/oauth/callback``)."""
    path = resolve_db(config.server.db, db_path)
    settings = Settings.of(config, wait_seconds)
    access = Access(config.agents)
    files = AgentFiles(config, access)
    running: dict[str, Threads] = {}  # for the /threads pages, outside MCP requests
    signins = consent.SignIns()  # for /oauth/callback
    boards: list[LocalDashboard] = []
    state_key = SharedKey()

    @asynccontextmanager
    async def lifespan(_: FastMCP) -> AsyncIterator[dict[str, Any]]:
        async with open_runtime(
            config, db_path=path, llms=llms, transports=transports, callback_url=callback_url
        ) as rt:
            threads = running["threads"] = rt.threads
            tasks = await _opened(rt, signins, state_key)
            if config.server.agents_from:
                threads.runs.spawn(functools.partial(files.watch, rt))
            if dashboard is not None:
                _start_dashboard(mcp, dashboard, lambda: running["threads"], boards)
            try:
                yield {DEPS: Deps(threads, access, settings, tasks, signins)}
            finally:
                running.pop("threads", None)
                boards.clear()

    mcp = FastMCP(
        config.server.name,
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        mask_error_details=True,
        auth=auth,
        middleware=[
            CallerView(lambda: files.config, access, on_list=files.remember),
            ThreadSubscriptions(),
        ],
        request_state_security=security(state_key),
    )
    observe.install(mcp)
    if dashboard is not None and dashboard.links:
        mcp.add_middleware(LinkInResults(lambda: boards[0] if boards else None))
    _register(mcp, config, settings, lambda: running["threads"], signins, auth)
    return mcp


def _register(
    mcp: FastMCP,
    config: Config,
    settings: Settings,
    threads: Callable[[], Threads],
    signins: consent.SignIns,
    auth: AuthProvider | None,
) -> None:
    """The tools, resources, the Tasks extension, the thread view and where downstream
    sign-ins land."""
    tools.register(mcp, config, settings.default_wait)
    resources.register(mcp)
    deletion.register(mcp)
    mcp.add_extension(TasksExtension(ThreadTasks()))
    add_thread_view(
        mcp,
        threads,
        owner=lambda: current_caller().owner,
        auth_required=auth is not None,
        person_decides=settings.person,
    )
    add_callback(mcp, signins)


async def _opened(rt: Runtime, signins: consent.SignIns, state_key: SharedKey) -> TaskStore:
    """Hand what the lifespan opened to what waits for it: the sign-ins' callback gets the
    accounts, the request-state codec its shared key. Returns the tasks' store."""
    signins.started(rt.accounts)
    tasks = task_store(rt.threads.store)
    state_key.load(await tasks.secret(STATE_SECRET))
    return tasks


def task_store(store: Store) -> TaskStore:
    """The tasks and shared secrets of the thread database ``store`` opened."""
    if not isinstance(store, SQLStore):  # open_store always makes one
        raise TypeError(f"agents-mcp needs its SQL store, not {type(store).__name__}")
    return TaskStore(store.db)


def _start_dashboard(
    mcp: FastMCP,
    spec: DashboardSpec,
    threads: Callable[[], Threads],
    boards: list[LocalDashboard],
) -> None:
    """Listen on loopback and serve the dashboard for the server's life (a port that is
    taken is a warning: the server itself still serves)."""
    try:
        sock = listen(spec.port)
    except OSError as exc:
        log.warning("no dashboard: cannot listen on %s:%d: %s", HOST, spec.port, exc)
        return
    board = LocalDashboard(sock.getsockname()[1])
    app = local_app(board, threads, tool_caller(mcp))
    threads().runs.spawn(functools.partial(serve_local, app, sock, lambda _: None))
    boards.append(board)
    log.info("dashboard on %s/ (its key is in the links of results)", board.base)
    if spec.on_ready is not None:
        spec.on_ready(board)


async def run_dashboard(
    config: Config,
    *,
    db_path: str | Path | None,
    port: int,
    on_ready: Callable[[LocalDashboard], None],
) -> None:
    """Serve the dashboard alone (``agents-mcp ui``) until cancelled: the server's lifespan
    runs (threads, store, recovery) through an in-memory client; MCP is not served."""
    from fastmcp import Client

    spec = DashboardSpec(port, links=False, on_ready=on_ready)
    async with Client(create_server(config, db_path=db_path, dashboard=spec)):
        await anyio.sleep_forever()
