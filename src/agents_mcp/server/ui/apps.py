"""The view on our FastMCP server: its ``ui://`` resource, per-client tool metadata, pages.

Part of the server (it is the only module besides ``server``, ``downstream`` and
``testing`` that imports fastmcp), kept apart so ``server`` stays about the tools.

* Hosts that render MCP Apps (client capability ``extensions["io.modelcontextprotocol/ui"]``,
  declared in the handshake or, on 2026-07-28, in each request's ``_meta``) see
  ``_meta.ui.resourceUri`` on ``chat_with_agent`` and ``get_thread``, the view's own
  app-only tool ``watch_thread``, and with ``approver = "person"`` an app-only
  ``approve_call``. Every other client sees today's tools and resources, unchanged.
* ``/threads/<id>`` serves the same view over HTTP (see :mod:`agents_mcp.server.ui.page`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError, ValidationError
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.utilities.components import FastMCPComponent
from mcp_types import CallToolResult, TextContent
from starlette.requests import Request
from starlette.responses import Response

from agents_mcp.server.declarations import declared_capabilities
from agents_mcp.server.ui import THREAD_UI, UI_EXTENSION, UI_MIME, thread_html
from agents_mcp.server.ui.dashboard import Dashboard
from agents_mcp.server.ui.page import ThreadPage, ToolCaller
from agents_mcp.threads.service import Threads

APP_ONLY = frozenset({"watch_thread"})
"""Tools for the view alone: listed only to clients that render MCP Apps."""


def renders_apps(ctx: Context | None) -> bool:
    """The client declared MCP Apps (``extensions["io.modelcontextprotocol/ui"]``) for HTML.

    Read from the session's capabilities: the handshake's on a legacy connection, the
    request's ``_meta`` on a 2026-07-28 one (fastmcp exposes both the same way), the
    session id's on a stateless HTTP one (``stateless``).
    """
    if ctx is None:
        return False
    if ctx.client_supports_extension(UI_EXTENSION):
        caps = ctx.session.client_capabilities
        extensions = (caps.extensions if caps is not None else None) or {}
    else:  # stateless HTTP: what the client declared rides on its session id
        extensions = (declared_capabilities() or {}).get("extensions") or {}
        if not isinstance(extensions, dict) or UI_EXTENSION not in extensions:
            return False
    settings = extensions.get(UI_EXTENSION)
    mime_types = settings.get("mimeTypes") if isinstance(settings, dict) else None
    return not isinstance(mime_types, list) or UI_MIME in mime_types


class ListingView(Middleware):
    """A middleware that changes listings only (those in :attr:`listings`). Every other
    request, ``tools/call`` above all, goes straight on: fastmcp would otherwise build
    this layer's chain of hooks (``on_message``, ``on_request``, ``on_call_tool``) for it,
    a handful of coroutine frames per layer and request."""

    listings: ClassVar[frozenset[str]]

    HOOKS: ClassVar[dict[str, str]] = {
        "tools/list": "on_list_tools",
        "resources/list": "on_list_resources",
        "resources/templates/list": "on_list_resource_templates",
        "prompts/list": "on_list_prompts",
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A hook for a request this view lets through would silently never run.
        super().__init_subclass__(**kwargs)
        allowed = {cls.HOOKS[m] for m in cls.listings}
        stray = sorted(n for n in vars(cls) if n.startswith("on_") and n not in allowed)
        if stray:
            raise TypeError(f"{cls.__name__} lists {sorted(cls.listings)} only, not {stray}")

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        if context.method not in self.listings:
            return await call_next(context)
        return await super().__call__(context, call_next)


class ViewForAppHosts(ListingView):
    """Per client: hosts that render MCP Apps get the view (``_meta.ui``) on the tools that
    show a thread, and the view's own tool; every other client sees today's tools."""

    listings = frozenset({"tools/list", "resources/list"})

    def __init__(self, ui: Mapping[str, dict[str, Any]]) -> None:
        self.ui = ui

    def _for_apps(self, tool: FastMCPComponent) -> FastMCPComponent:
        if tool.name not in self.ui:
            return tool
        return tool.model_copy(update={"meta": {**(tool.meta or {}), "ui": self.ui[tool.name]}})

    async def on_list_tools(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        tools = await call_next(context)
        if renders_apps(context.fastmcp_context):
            return [self._for_apps(t) for t in tools]
        return [t for t in tools if t.name not in APP_ONLY]

    async def on_list_resources(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        resources = await call_next(context)
        if renders_apps(context.fastmcp_context):
            return resources
        return [r for r in resources if str(r.uri) != THREAD_UI]


def add_thread_view(
    mcp: FastMCP,
    threads: Callable[[], Threads],
    *,
    owner: Callable[[], str],
    auth_required: bool,
    person_decides: bool,
) -> None:
    """Add the view's resource, its per-client tool metadata and the ``/threads`` pages.

    ``threads``: the running server's threads; ``owner``: the caller of the current
    request; ``person_decides``: ``approve_call`` is the view's alone (the server tells
    the model so in ``chat_with_agent``'s description).
    """

    @mcp.resource(
        THREAD_UI,
        name="thread view",
        description="Follow a thread live and decide its pending tool calls (MCP Apps)",
        mime_type=UI_MIME,
        meta={"ui": {"prefersBorder": True}},
    )
    def thread_view_page() -> str:
        return thread_html()

    view = {"resourceUri": THREAD_UI}
    ui: dict[str, dict[str, Any]] = {"chat_with_agent": view, "get_thread": view}
    if person_decides:
        ui["approve_call"] = {"visibility": ["app"]}
        ui["answer_question"] = {"visibility": ["app"]}
    mcp.add_middleware(ViewForAppHosts(ui))
    _add_pages(mcp, threads, owner=owner, auth_required=auth_required)


def tool_caller(mcp: FastMCP) -> ToolCaller:
    """Calls one of our tools as the current caller; its ``CallToolResult`` as JSON."""

    async def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The tool through FastMCP, exactly as over MCP (same owner, same errors)."""
        try:
            result = await mcp.call_tool(name, arguments)
        except (ToolError, ValidationError) as exc:
            error = [TextContent(type="text", text=str(exc))]
            wire = CallToolResult(content=error, is_error=True)
        else:
            wire = CallToolResult(
                content=result.content,
                structured_content=result.structured_content,
                is_error=result.is_error,
            )
        return wire.model_dump(by_alias=True, exclude_none=True, mode="json")

    return call_tool


def _add_pages(
    mcp: FastMCP, threads: Callable[[], Threads], *, owner: Callable[[], str], auth_required: bool
) -> None:
    """``/threads/<id>`` and its JSON endpoint (served over HTTP only)."""

    def caller() -> str | None:
        if auth_required and get_access_token() is None:
            return None
        return owner()

    call_tool = tool_caller(mcp)
    page = ThreadPage(threads=threads, owner=caller, call_tool=call_tool)
    board = Dashboard(owner=caller, call_tool=call_tool)

    @mcp.custom_route("/", methods=["GET"])
    async def dashboard_page(request: Request) -> Response:
        return await board.page(request)

    @mcp.custom_route("/threads", methods=["GET"])
    async def threads_page(request: Request) -> Response:
        return await board.page(request)

    @mcp.custom_route("/call", methods=["POST"])
    async def dashboard_call(request: Request) -> Response:
        return await board.call(request)

    @mcp.custom_route("/threads/{thread_id}", methods=["GET"])
    async def thread_page(request: Request) -> Response:
        return await page.page(request)

    @mcp.custom_route("/threads/{thread_id}/call", methods=["POST"])
    async def thread_call(request: Request) -> Response:
        return await page.call(request)
