"""Downstream MCP servers: one long-lived ``fastmcp.Client`` per configured server.

Connected lazily on first use (never at start-up), shared by every thread, tool list
cached until the server says ``tools/list_changed``, and restarted on the next call after
it died. Every failure of a call comes back as a ``ToolOutput(ok=False)`` for the model;
nothing here raises into the loop.

A stdio server's stderr goes to its own log file, ``<user log dir>/<name>.log`` (see
:func:`log_dir`), never into agents-mcp's own output: over a terminal it would tear through
``chat``'s reply and spinner. Each start appends a header line, and a file over 1 MB is
moved to ``<name>.log.1`` first.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as mt
from fastmcp import FastMCP

if TYPE_CHECKING:  # the client stack costs ~0.4 s to import: load it on first connect
    from fastmcp import Client
    from fastmcp.client.transports import ClientTransport
    from mcp import ClientSession

    from agents_mcp.downstream.rpc import PipeSession

    Session = Client[Any] | PipeSession

from agents_mcp import __version__
from agents_mcp.config import DownstreamServerConfig
from agents_mcp.errors import internal_error
from agents_mcp.toolsets import Available, ToolInfo, ToolOutput, Unavailable, llm_tool_names

log = logging.getLogger("agents_mcp.downstream")

# What a stdio child inherits besides the entry's own ``env`` (the SDK adds a few login
# variables such as USER and SHELL on top of these).
_INHERITED = ("PATH", "HOME")

LOG_HEADER = "---- agents-mcp started "
_LOG_LIMIT = 1_000_000


def log_dir() -> Path:
    """Where stdio servers' stderr goes: platformdirs' user log dir, e.g.
    ``~/.local/state/agents-mcp/log`` on Linux, ``~/Library/Logs/agents-mcp`` on macOS."""
    import platformdirs

    return Path(platformdirs.user_log_dir("agents-mcp", appauthor=False))


def _start_log(path: Path, command: str) -> Path | None:
    """Ready ``path`` for one more start of its server; None when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > _LOG_LIMIT:
            path.replace(path.with_name(path.name + ".1"))
        with path.open("a", encoding="utf-8") as f:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            f.write(f"{LOG_HEADER}{stamp} (pid {os.getpid()}): {command}\n")
    except OSError as exc:
        log.warning("cannot write %s (%s); the server's stderr goes to ours", path, exc)
        return None
    return path


def _list_changed_handler(server: DownstreamServer) -> Any:
    """A message handler that drops the server's cached tool list when it changes."""
    from fastmcp.client.messages import MessageHandler

    class ListChanged(MessageHandler):
        async def on_tool_list_changed(self, message: mt.ToolListChangedNotification) -> None:
            server.tools_changed()

    return ListChanged()


class DownstreamServer:
    """One configured MCP server, reached through one shared client session."""

    def __init__(
        self,
        name: str,
        config: DownstreamServerConfig,
        *,
        transport: ClientTransport | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._transport = transport
        self._client: Session | None = None
        self._tools: list[mt.Tool] | None = None
        self._lock = anyio.Lock()

    def _new_client(self) -> Session:
        """A stdio server in the handshake era (the default) gets our own session
        (:mod:`agents_mcp.downstream.rpc`); any other, fastmcp's client (stdio: over our pipes)."""
        from fastmcp import Client

        from agents_mcp.downstream.pipes import Command, stdio_transport

        cfg = self.config
        transport = self._transport
        info = mt.Implementation(name="agents-mcp", version=__version__)
        if transport is None and cfg.command is not None:
            command = Command(
                cfg.command,
                tuple(cfg.args),
                env={k: os.environ[k] for k in _INHERITED if k in os.environ} | dict(cfg.env),
                cwd=cfg.cwd,
                log_file=_start_log(self.log_path, cfg.command),  # not args: may hold secrets
            )
            if cfg.protocol == "legacy" and sys.platform != "win32":
                from agents_mcp.downstream.rpc import PipeSession

                return PipeSession(
                    command,
                    client_info=info,
                    timeout=cfg.timeout,
                    init_timeout=cfg.init_timeout,
                    on_tools_changed=self.tools_changed,
                    name=self.name,
                )
            transport = stdio_transport(command)
        elif transport is None:
            assert cfg.url is not None
            transport = http_transport(cfg.url, dict(cfg.headers), cfg.max_result_bytes)
        return Client(
            transport,
            mode=cfg.protocol,
            timeout=cfg.timeout,
            init_timeout=cfg.init_timeout,
            message_handler=_list_changed_handler(self),
            client_info=info,
        )

    def tools_changed(self) -> None:
        """The server said its tool list changed: forget the cached one."""
        log.info("%s: tool list changed", self.name)
        self.invalidate()

    async def _connected(self) -> Session:
        from agents_mcp.downstream.rpc import PipeSession

        client = self._client
        if client is not None:  # the common case, without taking the lock
            if not isinstance(client, PipeSession) or client.is_connected():
                return client
            await self._reset(client)  # its server is gone: start it again
        async with self._lock:
            if self._client is None:
                client = self._new_client()
                try:
                    with anyio.fail_after(self.config.init_timeout + 5):
                        await client.__aenter__()
                except BaseException:  # failed or cancelled mid-handshake: leave no child behind
                    with anyio.move_on_after(5, shield=True):
                        try:
                            await client.close()
                        except Exception as exc:
                            log.debug("%s: close after a failed connect: %s", self.name, exc)
                    raise
                self._client = client
                log.info("%s: connected (%s)", self.name, client.protocol_version)
            return self._client

    @property
    def log_path(self) -> Path:
        """The file a stdio server's stderr goes to."""
        return log_dir() / f"{self.name}.log"

    @property
    def cached_tools(self) -> list[mt.Tool] | None:
        """The tool list from the server's last answer, if it is still current."""
        return self._tools

    def invalidate(self) -> None:
        """Forget the cached tool list; the next ``tools()`` asks the server again."""
        self._tools = None

    async def tools(self) -> list[mt.Tool]:
        """The server's tools, from cache when possible. Raises when it is unreachable."""
        if self._tools is None:
            client = await self._connected()
            try:
                self._tools = list(await client.list_tools())
            except Exception as exc:
                if _is_dead(exc, client):
                    await self._reset(client)
                raise
        return self._tools

    async def call(
        self, tool: str, arguments: Mapping[str, Any], *, meta: dict[str, Any] | None = None
    ) -> ToolOutput:
        """Call ``tool``; every failure becomes an error text for the model."""
        try:
            client = await self._connected()
        except Exception as exc:
            why = _why(exc, f"{self.name}: connecting")
            return ToolOutput(text=f"Error: server {self.name!r} is unavailable: {why}", ok=False)
        try:
            result = await self._call_tool(client, tool, dict(arguments), meta)
        except Exception as exc:
            if _too_large(exc):
                return ToolOutput(text=self._too_large(tool), ok=False)
            why = _why(exc, f"{self.name}: calling {tool}")
            if _is_dead(exc, client):
                await self._reset(client)
                return ToolOutput(
                    text=f"Error: server {self.name!r} stopped during the call ({why});"
                    " it will be restarted on the next call",
                    ok=False,
                )
            return ToolOutput(text=f"Error: {why}", ok=False)
        return ToolOutput(
            text=result_text(result),
            ok=not result.is_error,
            structured=result.structured_content,
            meta=result.meta,
            peer=self.config.kind == "agents-mcp",
        )

    async def _call_tool(
        self,
        client: Session,
        tool: str,
        arguments: dict[str, Any],
        meta: dict[str, Any] | None,
    ) -> mt.CallToolResult:
        """One ``tools/call``. Through fastmcp's client over stdio (the modern era), straight
        through the session (``ClientSession``'s public ``send_request``):
        ``Client.call_tool_mcp`` adds a task per call to watch the session (an HTTP
        session's errors surface there; a stdio session ends every pending request itself
        when the pipe closes), a span, and a check of the result against the tool's output
        schema, which the model, reading the content, does not need. Together about 0.1 ms
        of CPU per call. Our own session does neither."""
        from agents_mcp.downstream.rpc import PipeSession

        if isinstance(client, PipeSession):
            return await client.call_tool(tool, arguments, meta)
        if self._transport is not None or self.config.command is None:
            return await client.call_tool_mcp(tool, arguments, meta=meta)
        params = mt.CallToolRequestParams(name=tool, arguments=arguments, _meta=meta)
        return await client.session.send_request(
            mt.CallToolRequest(params=params), mt.CallToolResult
        )

    def _too_large(self, tool: str) -> str:
        limit = self.config.max_result_bytes
        return (
            f"Error: the result of {tool} is too large: server {self.name!r} sent more than"
            f" {limit} bytes in one message (max_result_bytes), so it was refused. Ask for"
            " less: a smaller part, a page, a filter or a summary."
        )

    async def _reset(self, failed: Session | None) -> None:
        """Forget the session ``failed`` (None: whichever is current), so the next call
        connects again. A late reset for a session already replaced is ignored: it must
        not close the fresh, healthy one."""
        async with self._lock:
            if failed is not None and self._client is not failed:
                return
            client, self._client, self._tools = self._client, None, None
        if client is not None:
            with anyio.move_on_after(5, shield=True):
                try:
                    await client.close()
                except Exception as exc:  # a dead session may fail to close; it is gone anyway
                    log.debug("%s: close failed: %s", self.name, exc)

    async def aclose(self) -> None:
        await self._reset(None)


class Downstreams:
    """Every configured server, by name. Nothing connects until a tool is needed."""

    def __init__(self, servers: Mapping[str, DownstreamServer]) -> None:
        self.servers = dict(servers)

    @classmethod
    def from_config(
        cls,
        configs: Mapping[str, DownstreamServerConfig],
        transports: Mapping[str, ClientTransport | FastMCP] | None = None,
    ) -> Downstreams:
        """Servers for ``configs``; ``transports`` replaces some by name (e.g. in-process
        ``FastMCP`` servers in tests)."""
        given: dict[str, ClientTransport] = {}
        for name, t in (transports or {}).items():
            if isinstance(t, FastMCP):
                from fastmcp.client.transports import FastMCPTransport

                t = FastMCPTransport(t)
            given[name] = t
        return cls(
            {
                name: DownstreamServer(name, cfg, transport=given.get(name))
                for name, cfg in configs.items()
            }
        )

    def toolset(self, servers: Sequence[str], allow: Mapping[str, Sequence[str]]) -> AgentToolset:
        return AgentToolset([self.servers[s] for s in servers], allow)

    async def aclose(self) -> None:
        async with anyio.create_task_group() as tg:
            for server in self.servers.values():
                tg.start_soon(server.aclose)


class AgentToolset:
    """The tools one agent may use: its servers' tools, filtered by its allowlist."""

    def __init__(
        self, servers: Sequence[DownstreamServer], allow: Mapping[str, Sequence[str]]
    ) -> None:
        self._servers = {s.name: s for s in servers}
        self._allow = {k: set(v) for k, v in allow.items()}
        # The last answer, and the servers' tool lists it was built from.
        self._built: tuple[list[list[mt.Tool] | None], list[ToolInfo]] | None = None

    async def list_tools(self) -> list[ToolInfo]:
        """The tools that can be offered now (servers that fail are left out)."""
        return list((await self.available()).tools)

    async def available(self) -> Available:
        """The tools that can be offered now, and the servers that failed, with why."""
        found: dict[str, list[mt.Tool]] = {}
        failed: dict[str, Unavailable] = {}

        async def fetch(server: DownstreamServer) -> None:
            try:
                found[server.name] = await server.tools()
            except Exception as exc:
                why = unavailable_reason(server.config, exc)
                log.warning("%s: cannot list tools: %s", server.name, why)
                failed[server.name] = Unavailable(
                    server=server.name, reason=why, required=server.config.required
                )

        missing = [s for s in self._servers.values() if s.cached_tools is None]
        if len(missing) == 1:
            await fetch(missing[0])
        elif missing:
            async with anyio.create_task_group() as tg:
                for server in missing:
                    tg.start_soon(fetch, server)
        for server in self._servers.values():
            if server.cached_tools is not None:
                found[server.name] = server.cached_tools
        unavailable = [failed[name] for name in self._servers if name in failed]
        sources = [found.get(name) for name in self._servers]
        if self._built is not None and all(
            a is b for a, b in zip(self._built[0], sources, strict=True)
        ):
            # nothing changed: no renaming, no new ToolInfos
            return Available(tools=list(self._built[1]), unavailable=unavailable)
        infos = self._infos(found)
        self._built = (sources, infos)
        return Available(tools=list(infos), unavailable=unavailable)

    def _infos(self, found: Mapping[str, list[mt.Tool]]) -> list[ToolInfo]:
        pairs = [
            (name, tool)
            for name in self._servers
            for tool in found.get(name, [])
            if name not in self._allow or tool.name in self._allow[name]
        ]
        names = llm_tool_names([(s, t.name) for s, t in pairs])
        return [
            ToolInfo(
                name=names[(server, tool.name)],
                server=server,
                tool=tool.name,
                description=tool.description or tool.title or tool.name,
                parameters=tool.input_schema,
                read_only=bool(tool.annotations and tool.annotations.read_only_hint),
                peer=self._servers[server].config.kind == "agents-mcp",
            )
            for server, tool in pairs
        ]

    async def call(
        self, tool: ToolInfo, arguments: Mapping[str, Any], *, meta: dict[str, Any] | None = None
    ) -> ToolOutput:
        return await self._servers[tool.server].call(tool.tool, arguments, meta=meta)


def result_text(result: mt.CallToolResult) -> str:
    """An MCP tool result as text for the model."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mt.TextContent):
            parts.append(block.text)
        elif isinstance(block, mt.ImageContent | mt.AudioContent):
            kind = "image" if isinstance(block, mt.ImageContent) else "audio"
            parts.append(f"[{kind}: {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif isinstance(block, mt.ResourceLink):
            parts.append(f"[resource link: {block.uri} ({block.name})]")
        elif isinstance(block, mt.EmbeddedResource):
            res = block.resource
            if isinstance(res, mt.TextResourceContents):
                parts.append(f"[resource {res.uri}]\n{res.text}")
            else:
                parts.append(f"[resource {res.uri}: {res.mime_type or 'binary'}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def http_transport(url: str, headers: dict[str, str], max_event_bytes: int) -> ClientTransport:
    """Streamable HTTP to ``url``, accepting results of up to ``max_event_bytes`` each.

    fastmcp's ``StreamableHttpTransport`` keeps the MCP SDK's limit of 1 MiB per
    server-sent event, so a bigger tool result fails as "SSE stream failed"; the SDK's own
    ``streamable_http_client`` takes the limit as ``max_sse_event_size``. This transport
    is that client, with the same timeouts as fastmcp's.
    """
    import contextlib
    from collections.abc import AsyncIterator

    import httpx2
    from fastmcp.client.transports import ClientTransport
    from fastmcp.client.transports.base import TransportOptions
    from mcp.client.streamable_http import streamable_http_client

    from agents_mcp.downstream.pipes import session_for

    class LargeResultsHTTP(ClientTransport):
        @contextlib.asynccontextmanager
        async def connect_session(
            self, *, transport_options: TransportOptions | None = None, **kwargs: Any
        ) -> AsyncIterator[ClientSession]:
            session_class, session_kwargs = session_for(transport_options, kwargs)
            read = session_kwargs.get("read_timeout_seconds")
            timeout = httpx2.Timeout(30.0, read=300.0 if read is None else read)
            async with (
                httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
                streamable_http_client(
                    url, http_client=http, max_sse_event_size=max_event_bytes
                ) as (read_stream, write_stream),
                session_class(read_stream, write_stream, **session_kwargs) as session,
            ):
                yield session

        def __repr__(self) -> str:
            return f"<LargeResultsHTTP({url!r})>"

    return LargeResultsHTTP()


def _too_large(exc: BaseException) -> bool:
    """The SDK's refusal of a server-sent event over the size limit (an ``MCPError``)."""
    return "sse stream failed" in str(exc).lower() and "byte limit" in str(exc).lower()


def _is_dead(exc: BaseException, client: Session | None = None) -> bool:
    """Whether the session is gone, from its state rather than from message text."""
    from mcp import MCPError
    from mcp_types.jsonrpc import CONNECTION_CLOSED

    if isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError):
        return True
    if isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED:
        return True
    return client is not None and not client.is_connected()


_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")
_WHY_CHARS = 300


def _why(exc: BaseException, where: str) -> str:
    """Why a call failed, for the model: the exception's own first line, shortened.

    Never its class name or traceback: those go to the log (at INFO, under ``where``).
    A failure without any text gets an error id instead (see ``errors.internal_error``).
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    log.info("%s failed: %s", where, exc, exc_info=exc)
    if isinstance(exc, TimeoutError):  # anyio's fail_after: no text of its own
        return "timed out"
    lines = _ERRNO.sub("", str(exc)).strip().splitlines()
    if not lines:
        return str(internal_error(exc, where))
    text = lines[0].strip()
    return text if len(text) <= _WHY_CHARS else text[: _WHY_CHARS - 1] + "…"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (exception groups of one unwrapped)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        if isinstance(current, BaseExceptionGroup) and len(current.exceptions) == 1:
            current = current.exceptions[0]
        else:
            current = current.__cause__ or current.__context__
    return out


def unavailable_reason(config: DownstreamServerConfig, exc: BaseException) -> str:
    """Why a server could not give its tools, in words the model and the caller can use."""
    causes = _causes(exc)
    if config.command is not None:
        for cause in causes:
            if isinstance(cause, FileNotFoundError) and cause.filename in (config.command, None):
                return (
                    f"cannot start {config.command!r}: no such program (give its absolute path"
                    " in command; desktop apps start servers with a short PATH)"
                )
            if isinstance(cause, OSError) and cause.filename is not None:
                return f"cannot start {config.command!r}: {cause.strerror}: {cause.filename}"
    if any(isinstance(c, TimeoutError) for c in causes):
        return f"it did not finish starting within init_timeout ({config.init_timeout:g} s)"
    if any(_is_dead(c) for c in causes):
        if config.command is not None:
            return "it exited right after starting (the connection closed)"
        return "it closed the connection right after it was opened"
    text = " ".join(_why(causes[-1], f"{config.command or config.url}: starting").split())
    if config.url is not None:
        text = f"cannot reach {config.url}: {text}"
    return text if len(text) <= 300 else text[:299] + "…"
