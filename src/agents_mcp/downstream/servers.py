"""Downstream MCP servers: one long-lived ``fastmcp.Client`` per configured server.

Connected lazily on first use (never at start-up), shared by every thread, tool list
cached until the server says ``tools/list_changed``, and restarted on the next call after
it died. Every failure of a call comes back as a ``ToolOutput(ok=False)`` for the model;
nothing here raises into the loop. How a server is reached: :mod:`.connect`; a stdio
server's stderr: :mod:`.logs`; the questions a server asks during a call: :mod:`.elicit`.

Calls go through ``Client.call_tool_mcp``, which checks a structured result against the
tool's ``outputSchema`` (listing the tools first if it has not yet): a result that does
not match its own schema reaches the model as an error naming the mismatch.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:  # the MCP stacks cost about a second to import: loaded on first connect
    import mcp_types as mt
    from fastmcp import Client, FastMCP
    from fastmcp.client.transports import ClientTransport

    from agents_mcp.downstream.signin import Accounts

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream.elicit import (
    ElicitAnswer,
    Elicitation,
    ElicitHandler,
    Questions,
    nobody_to_ask,
)
from agents_mcp.downstream.failures import is_dead as _is_dead
from agents_mcp.downstream.failures import too_large as _too_large
from agents_mcp.downstream.failures import unavailable_reason
from agents_mcp.downstream.failures import why as _why
from agents_mcp.downstream.logs import LOG_HEADER, last_lines, log_dir
from agents_mcp.downstream.oauth import OWNER, NotAuthorized, acting_for, listed, signed
from agents_mcp.downstream.stray import StrayOutput
from agents_mcp.toolsets import (
    Available,
    ToolInfo,
    ToolOutput,
    Unavailable,
    llm_tool_names,
)

log = logging.getLogger("agents_mcp.downstream")

OWNER_CLIENTS = 32
"""Clients kept per server signing each owner in the handshake era (the oldest closes)."""

STDERR_LINES = 3
"""How many of its last stderr lines the warning about a failed server quotes."""


class DownstreamServer:
    """One configured MCP server, reached through one shared client.

    ``on_elicit`` answers the questions the server asks during calls that bring no
    handler of their own, or whose call cannot be told (see :mod:`.elicit`).

    With ``auth = "oauth"`` each request carries the token of the owner whose run makes
    it (``oauth.OWNER``): one client serves everybody at 2026-07-28, where requests
    stand alone; in the handshake era a server binds its session to the credential that
    opened it, so each owner gets a client of their own.
    """

    def __init__(
        self,
        name: str,
        config: DownstreamServerConfig,
        *,
        transport: ClientTransport | None = None,
        on_elicit: ElicitHandler = nobody_to_ask,
        accounts: Accounts | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._transport = transport
        self._questions = Questions(name, on_elicit)
        self._accounts = accounts
        self._clients: dict[str | None, Client[Any]] = {}
        self._tools: list[mt.Tool] | None = None
        self._lock = anyio.Lock()

    @property
    def _key(self) -> str | None:
        """Whose client a request of this context goes through (None: the shared one)."""
        per_owner = self.config.auth == "oauth" and self.config.protocol != "2026-07-28"
        return OWNER.get() if per_owner else None

    def _new_client(self, stray: StrayOutput) -> Client[Any]:
        from agents_mcp.downstream.connect import new_client, transport_for

        transport = self._transport
        if transport is None:
            auth = None
            if self.config.auth is not None:
                from agents_mcp.downstream.signin import http_auth

                auth = http_auth(self.name, self.config, self._accounts)
            transport = transport_for(self.config, self.log_path, auth)
        return new_client(
            self.config,
            transport,
            questions=self._questions,
            tools_changed=self.tools_changed,
            stray=stray.seen,
        )

    def tools_changed(self) -> None:
        """The server said its tool list changed: forget the cached one."""
        log.info("%s: tool list changed", self.name)
        self.invalidate()

    async def _connected(self) -> Client[Any]:
        key = self._key
        client = self._clients.get(key)
        if client is not None:  # the common case, without taking the lock
            return client
        async with self._lock:
            if key not in self._clients:
                stray = StrayOutput(self.name)
                client = self._new_client(stray)
                try:
                    with (
                        anyio.fail_after(self.config.init_timeout + 5),
                        Questions.outside_calls(),
                        stray.during_handshake(),
                    ):
                        await client.__aenter__()  # type: ignore[no-untyped-call]
                except BaseException:  # failed or cancelled mid-handshake: leave no child behind
                    await self._close(key, client, "a failed connect")
                    raise
                self._clients[key] = client
                log.info("%s: connected (%s)", self.name, client.protocol_version)
                if len(self._clients) > OWNER_CLIENTS:
                    oldest = next(iter(self._clients))
                    await self._close(oldest, self._clients.pop(oldest), "eviction")
            return self._clients[key]

    async def _close(self, key: str | None, client: Client[Any], why: str) -> None:
        """Close ``client`` as its owner (its last requests carry their token)."""
        with anyio.move_on_after(5, shield=True), acting_for(key):
            try:
                await client.close()  # type: ignore[no-untyped-call]
            except Exception as exc:  # a dead session may fail to close; it is gone anyway
                log.debug("%s: close after %s: %s", self.name, why, exc)

    @property
    def log_path(self) -> Path:
        """The file a stdio server's stderr goes to."""
        return log_dir() / f"{self.name}.log"

    def stderr_said(self) -> str:
        """For the operator's log (not for clients: it may name paths): how a stdio
        server's stderr ended since it last started, and where the rest is."""
        if self.config.command is None or self._transport is not None:
            return ""
        lines = [" ".join(line.split())[:200] for line in last_lines(self.log_path, STDERR_LINES)]
        if not lines:
            return ""
        return f"; its stderr ended with: {' | '.join(lines)} (all of it in {self.log_path})"

    @property
    def cached_tools(self) -> list[mt.Tool] | None:
        """The tool list from the server's last answer, if it is still current."""
        return self._tools

    def invalidate(self) -> None:
        """Forget the cached tool list; the next ``tools()`` asks the server again."""
        self._tools = None

    async def tools(self) -> list[mt.Tool]:
        """The server's tools, from cache when possible. Raises when it is unreachable
        (``SignInRequired`` when the owner must sign in first)."""
        if self._tools is None:
            self._tools = (
                await self._list()
                if self.config.auth is None
                else await listed(self.name, self._list)
            )
        return self._tools

    async def _list(self) -> list[mt.Tool]:
        client = await self._connected()
        try:
            return list(await client.list_tools())
        except Exception as exc:
            if _is_dead(exc, client):
                await self._reset(client)
            raise

    async def call(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        meta: dict[str, Any] | None = None,
        on_elicit: ElicitHandler | None = None,
        call_id: str | None = None,
    ) -> ToolOutput:
        """Call ``tool``; every failure becomes an error text for the model. Questions the
        server asks during the call go to ``on_elicit`` (None: the server's handler), as
        asked during ``call_id`` (the caller's name for the call). When the owner must
        sign in first, the call does not run: the output says where (``ToolOutput.sign_in``).

        ``timeout`` bounds the call, but not while ``on_elicit`` waits for a person: the
        limit is ours (a cancel scope whose clock stops meanwhile), and the SDK's own is
        lifted, since its clock would go on running."""
        if self.config.auth is None:
            return await self._call(tool, arguments, meta, on_elicit, call_id)
        return await signed(
            self.name, lambda: self._call(tool, arguments, meta, on_elicit, call_id)
        )

    async def _call(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        meta: dict[str, Any] | None,
        on_elicit: ElicitHandler | None,
        call_id: str | None,
    ) -> ToolOutput:
        try:
            client = await self._connected()
        except Exception as exc:
            why = _why(exc, f"{self.name}: connecting")
            return ToolOutput(text=f"Error: server {self.name!r} is unavailable: {why}", ok=False)
        result: mt.CallToolResult | None = None
        try:
            with self._questions.during(
                tool, on_elicit, call_id=call_id, timeout=self.config.timeout
            ) as call:
                result = await client.call_tool_mcp(
                    tool, dict(arguments), meta=meta, timeout=math.inf
                )
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
        if call.timed_out or result is None:
            return ToolOutput(text=self._timed_out(tool), ok=False)
        return ToolOutput(
            text=result_text(result),
            ok=not result.is_error,
            structured=result.structured_content,
            meta=result.meta,
            peer=self.config.kind == "agents-mcp",
        )

    def _timed_out(self, tool: str) -> str:
        return (
            f"Error: {tool} did not finish within {self.config.timeout:g} s (the timeout of"
            f" server {self.name!r}); it was cancelled, and may have done part of its work"
        )

    def _too_large(self, tool: str) -> str:
        limit = self.config.max_result_bytes
        return (
            f"Error: the result of {tool} is too large: server {self.name!r} sent more than"
            f" {limit} bytes in one message (max_result_bytes), so it was refused. Ask for"
            " less: a smaller part, a page, a filter or a summary."
        )

    async def _reset(self, failed: Client[Any] | None) -> None:
        """Forget the client ``failed`` (None: every one), so the next call connects
        again. A late reset for a client already replaced is ignored: it must not close
        the fresh, healthy one."""
        async with self._lock:
            if failed is None:
                gone = list(self._clients.items())
                self._clients.clear()
            else:
                gone = [(k, c) for k, c in self._clients.items() if c is failed]
                if not gone:
                    return
                del self._clients[gone[0][0]]
            self._tools = None
        for key, client in gone:
            await self._close(key, client, "a reset")

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
        accounts: Accounts | None = None,
    ) -> Downstreams:
        """Servers for ``configs``; ``transports`` replaces some by name (e.g. in-process
        ``FastMCP`` servers in tests); ``accounts``: the sign-ins of ``auth`` servers."""
        given: dict[str, ClientTransport] = {}
        if transports:
            from fastmcp import FastMCP
            from fastmcp.client.transports import FastMCPTransport

            for name, t in transports.items():
                given[name] = FastMCPTransport(t) if isinstance(t, FastMCP) else t
        return cls(
            {
                name: DownstreamServer(name, cfg, transport=given.get(name), accounts=accounts)
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
            except NotAuthorized as exc:
                failed[server.name] = Unavailable(
                    server=server.name,
                    reason=exc.reason,
                    required=server.config.required,
                    sign_in=exc.sign_in,
                )
            except Exception as exc:
                why = unavailable_reason(server.config, exc)
                log.warning("%s: cannot list tools: %s%s", server.name, why, server.stderr_said())
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
        self,
        tool: ToolInfo,
        arguments: Mapping[str, Any],
        *,
        meta: dict[str, Any] | None = None,
        on_elicit: ElicitHandler | None = None,
        call_id: str | None = None,
    ) -> ToolOutput:
        server = self._servers[tool.server]
        return await server.call(
            tool.tool, arguments, meta=meta, on_elicit=on_elicit, call_id=call_id
        )


def result_text(result: mt.CallToolResult) -> str:
    """An MCP tool result as text for the model."""
    import mcp_types as mt  # loaded already: the result came through the client

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


__all__ = [
    "LOG_HEADER",
    "AgentToolset",
    "DownstreamServer",
    "Downstreams",
    "ElicitAnswer",
    "ElicitHandler",
    "Elicitation",
    "log_dir",
    "nobody_to_ask",
    "result_text",
    "unavailable_reason",
]
