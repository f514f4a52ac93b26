"""The MCP face of agents-mcp: a FastMCP server whose tools (``tools``) drive
:class:`~agents_mcp.threads.service.Threads`.

The composition root of the server: the lifespan opens the threads (models, downstream
servers, store) for the server's life and hands them to the tools as :class:`Deps`. Who
calls comes from ``auth`` and which agents they may use from ``access``; ``tools/list``
is rewritten per caller (``catalog``). How it is served (stdio, HTTP) is ``transports``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.auth import AuthProvider

from agents_mcp import __version__
from agents_mcp.config import Config
from agents_mcp.llm import LLM
from agents_mcp.server import consent, deletion, resources, tools
from agents_mcp.server.access import Access
from agents_mcp.server.auth import current_caller
from agents_mcp.server.catalog import CallerView
from agents_mcp.server.consent import add_callback
from agents_mcp.server.deps import DEPS, Deps, Settings
from agents_mcp.server.ui.apps import add_thread_view
from agents_mcp.store import resolve_db
from agents_mcp.threads.runtime import open_threads
from agents_mcp.threads.service import Threads

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
    callback_url: str | None = None,
) -> FastMCP:
    """Build the agents-mcp server for ``config``.

    ``llms`` replaces configured models by name and ``transports`` replaces downstream
    servers by name (tests use scripted models and in-process servers this way).
    ``callback_url``: served over HTTP, where sign-ins to downstream servers come back
    (this server's ``/oauth/callback``); None: a loopback listener (stdio).
    """
    path = resolve_db(config.server.db, db_path)
    settings = Settings.of(config, wait_seconds)
    access = Access(config.agents)
    running: dict[str, Threads] = {}  # for the /threads pages, outside MCP requests

    @asynccontextmanager
    async def lifespan(_: FastMCP) -> AsyncIterator[dict[str, Any]]:
        async with open_threads(
            config, db_path=path, llms=llms, transports=transports, callback_url=callback_url
        ) as threads:
            running["threads"] = threads
            consent.notify(threads.accounts)
            try:
                yield {DEPS: Deps(threads=threads, access=access, settings=settings)}
            finally:
                running.pop("threads", None)

    mcp = FastMCP(
        config.server.name,
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        mask_error_details=True,
        auth=auth,
        middleware=[CallerView(config, access)],
    )
    tools.register(mcp, config, settings.default_wait)
    resources.register(mcp)
    deletion.register(mcp)
    add_thread_view(
        mcp,
        lambda: running["threads"],
        owner=lambda: current_caller().owner,
        auth_required=auth is not None,
        person_decides=settings.person,
    )
    add_callback(mcp, lambda: running.get("threads"))
    return mcp
