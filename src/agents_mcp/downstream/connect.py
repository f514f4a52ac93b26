"""How a downstream server is reached: one ``fastmcp.Client`` per connection.

Stdio servers through fastmcp's ``StdioTransport``, HTTP servers through
:class:`LargeResultsHTTP`, in the era the entry's ``protocol`` names (``legacy``, ``auto``
or ``2026-07-28``, fastmcp's ``mode``). Imported on first connect: the client stack
costs about 0.4 s to import.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as mt
from fastmcp import Client
from fastmcp.client.messages import MessageHandler
from fastmcp.client.transports import ClientTransport, StdioTransport
from fastmcp.client.transports.base import SessionKwargs, TransportOptions
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from agents_mcp import __version__
from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream.elicit import Questions
from agents_mcp.downstream.logs import start_log

INHERITED = ("PATH", "HOME")
"""What a stdio child inherits besides the entry's own ``env`` (the SDK adds a few login
variables such as USER and SHELL on top of these)."""


class LargeResultsHTTP(ClientTransport):
    """Streamable HTTP to ``url``, accepting server-sent events of up to ``max_event_bytes``.

    fastmcp's ``StreamableHttpTransport`` keeps the SDK's limit of 1 MiB per server-sent
    event and has no option to change it, so a bigger tool result fails as "SSE stream
    failed". The SDK's public ``streamable_http_client`` takes the limit as
    ``max_sse_event_size``: this transport is that client under the session class fastmcp
    asks for (``TransportOptions.session_class``), 30 s to connect, as fastmcp's. A read
    has no limit of its own: a tool call's stream is quiet while a person answers the
    question its server asked, and every request has its own limit (the call's
    ``timeout``, the client's for the others).
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        max_event_bytes: int,
        auth: httpx2.Auth | None = None,
    ) -> None:
        self.url = url
        self.headers = headers
        self.max_event_bytes = max_event_bytes
        self.auth = auth
        """What authenticates each request (``auth = "oauth"``: the owner's token)."""

    @contextlib.asynccontextmanager
    async def connect_session(
        self, *, transport_options: TransportOptions | None = None, **kwargs: Any
    ) -> AsyncIterator[ClientSession]:
        options = transport_options or TransportOptions()
        session_kwargs: SessionKwargs = kwargs  # type: ignore[assignment]
        timeout = httpx2.Timeout(30.0, read=None)
        async with (
            httpx2.AsyncClient(headers=self.headers, timeout=timeout, auth=self.auth) as http,
            streamable_http_client(
                self.url, http_client=http, max_sse_event_size=self.max_event_bytes
            ) as (read_stream, write_stream),
            options.session_class(read_stream, write_stream, **session_kwargs) as session,
        ):
            yield session

    def __repr__(self) -> str:
        return f"<LargeResultsHTTP({self.url!r})>"


class _Messages(MessageHandler):
    """Drops the server's cached tool list when it says the list changed; passes on the
    lines of its stdout that were not MCP messages (see :mod:`.stray`)."""

    def __init__(self, changed: Callable[[], None], stray: Callable[[Exception], None]) -> None:
        self.changed = changed
        self.stray = stray

    async def on_tool_list_changed(self, message: mt.ToolListChangedNotification) -> None:
        self.changed()

    async def on_exception(self, message: Exception) -> None:
        self.stray(message)


class _ReportedWithTheLine(logging.Filter):
    """The SDK logs a traceback for each stdout line it cannot parse; :mod:`.stray`
    reports those lines themselves, once, in words."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Failed to parse JSONRPC message from server"


logging.getLogger("mcp.client.stdio").addFilter(_ReportedWithTheLine())


def transport_for(
    config: DownstreamServerConfig, log_file: Path, auth: httpx2.Auth | None = None
) -> ClientTransport:
    """The transport to the server ``config`` describes; a stdio server's stderr goes to
    ``log_file``, after a header line for this start; ``auth`` authenticates HTTP requests."""
    if config.command is not None:
        inherited = {k: os.environ[k] for k in INHERITED if k in os.environ}
        return StdioTransport(
            config.command,
            list(config.args),
            env=inherited | dict(config.env),
            cwd=config.cwd,
            keep_alive=False,  # the child ends with the connection
            log_file=start_log(log_file, config.command),  # not args: they may hold secrets
        )
    assert config.url is not None
    return LargeResultsHTTP(config.url, dict(config.headers), config.max_result_bytes, auth)


def new_client(
    config: DownstreamServerConfig,
    transport: ClientTransport,
    *,
    questions: Questions,
    tools_changed: Callable[[], None],
    stray: Callable[[Exception], None],
) -> Client[Any]:
    """A client for one connection to the server, not yet connected.

    Its default request timeout also bounds the handshake, so it is the larger of
    ``timeout`` and ``init_timeout``: a server may take longer to start than a call may
    take. A ``tools/call`` gets ``timeout`` of its own (see ``DownstreamServer.call``).
    """
    return Client(
        transport,
        mode=config.protocol,
        timeout=max(config.timeout, config.init_timeout),
        init_timeout=config.init_timeout,
        client_info=mt.Implementation(name="agents-mcp", version=__version__),
        message_handler=_Messages(tools_changed, stray),
        elicitation_handler=questions.answer,
    )
