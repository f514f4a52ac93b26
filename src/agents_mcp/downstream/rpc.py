"""Our own client session with a stdio server in the handshake era (``protocol =
"legacy"``, the default): JSON-RPC over the child's pipes (:mod:`agents_mcp.downstream.pipes`),
answered in the pipe's own callback.

The SDK's ``ClientSession`` runs a read loop task, a memory stream per request, spans and
two validation passes over every result; here a response line resolves its caller's
future as it arrives and the result is validated once (``mcp_types.CallToolResult``). A
call through ``DownstreamServer`` costs about 0.1 ms of CPU this way, 0.3-0.4 ms through
fastmcp's client on the SDK's stdio transport.

What a downstream server needs from us is all here: the ``initialize`` handshake
(``2025-11-25``, or any handshake-era version the server answers with), ``tools/list`` page
by page, ``tools/call`` with ``_meta``, a timeout per request and a
``notifications/cancelled`` for a request timed out or cancelled by its caller, ``ping``
answered, any other request from the server refused as the SDK refuses it (we declare no
capabilities), ``tools/list_changed`` passed on, log messages logged, and every pending
request failing as "connection closed" when the server's stdout ends. Errors are the SDK's
``MCPError`` with its codes, so callers treat both sessions alike. The modern era
(``auto``, ``2026-07-28``) stays with fastmcp's client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import mcp_types as mt
from mcp import MCPError
from mcp_types.jsonrpc import CONNECTION_CLOSED, INVALID_REQUEST, METHOD_NOT_FOUND, REQUEST_TIMEOUT
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from agents_mcp.downstream.pipes import Child, Command

log = logging.getLogger("agents_mcp.downstream.rpc")

_CAPABILITIES = {
    "roots/list": "List roots",
    "sampling/createMessage": "Sampling",
    "elicitation/create": "Elicitation",
}
"""Requests a server may send only to a client that declared them (we declare none)."""


def _closed() -> MCPError:
    return MCPError(code=CONNECTION_CLOSED, message="Connection closed")


class PipeSession:
    """One stdio server, spawned by :meth:`__aenter__`, stopped by :meth:`close`."""

    def __init__(
        self,
        command: Command,
        *,
        client_info: mt.Implementation,
        timeout: float | None,
        init_timeout: float | None,
        on_tools_changed: Callable[[], None],
        name: str = "server",
    ) -> None:
        self.command = command
        self.client_info = client_info
        self.timeout = timeout
        self.init_timeout = init_timeout
        self.on_tools_changed = on_tools_changed
        self.name = name
        self.protocol_version: str | None = None
        self._child: Child | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._closed = False

    # --- lifetime -------------------------------------------------------------------------

    async def __aenter__(self) -> PipeSession:
        self._child = await self.command.spawn(self)
        params = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": self.client_info.model_dump(by_alias=True, exclude_none=True),
        }
        result = await self._request("initialize", params, self.init_timeout)
        version = result.get("protocolVersion")
        if version not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise RuntimeError(
                f"the server answered initialize with protocol version {version!r};"
                f" agents-mcp speaks {', '.join(HANDSHAKE_PROTOCOL_VERSIONS)}"
            )
        self.protocol_version = str(version)
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    def is_connected(self) -> bool:
        return self._child is not None and not self._closed

    async def close(self) -> None:
        """Stop the server (bounded: see :meth:`Child.stop`); pending requests fail."""
        child, self._child = self._child, None
        self.eof()
        if child is not None:
            with anyio.CancelScope(shield=True):
                await child.stop()

    # --- requests -------------------------------------------------------------------------

    async def list_tools(self) -> list[mt.Tool]:
        tools: list[mt.Tool] = []
        cursor: str | None = None
        while True:
            params = {} if cursor is None else {"cursor": cursor}
            page = mt.ListToolsResult.model_validate(
                await self._request("tools/list", params, self.timeout)
            )
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any], meta: Mapping[str, Any] | None = None
    ) -> mt.CallToolResult:
        params: dict[str, Any] = {"name": name, "arguments": dict(arguments)}
        if meta:
            params["_meta"] = dict(meta)
        result = await self._request("tools/call", params, self.timeout)
        return mt.CallToolResult.model_validate(result)

    async def _request(
        self, method: str, params: dict[str, Any], seconds: float | None
    ) -> dict[str, Any]:
        if not self.is_connected():
            raise _closed()
        request_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        try:
            with anyio.fail_after(seconds):
                await self._send(message)  # whole, or not at all: see Writer.write
                response = await answer
        except TimeoutError:
            if method != "initialize":  # never cancelled, says the spec; the child is closed
                self._cancel(request_id, f"timed out after {seconds} s")
            raise MCPError(code=REQUEST_TIMEOUT, message=f"Request {method!r} timed out") from None
        except anyio.get_cancelled_exc_class():
            if method != "initialize":
                self._cancel(request_id, "caller cancelled")
            raise
        finally:
            self._pending.pop(request_id, None)
        error = response.get("error")
        if error is not None:
            error = mt.ErrorData.model_validate(error)
            raise MCPError(code=error.code, message=error.message, data=error.data)
        result = response.get("result")
        if not isinstance(result, dict):
            raise MCPError(code=mt.INTERNAL_ERROR, message=f"{method}: the result is not an object")
        return result

    async def _send(self, message: dict[str, Any]) -> None:
        if self._child is None:
            raise _closed()
        try:
            self._child.writer.write(_line(message))
            await self._child.writer.drain()
        except anyio.BrokenResourceError:
            raise _closed() from None

    def _write_now(self, message: dict[str, Any]) -> None:
        """Write without waiting for the pipe (a cancel, an answer); dropped when closed."""
        if self._child is not None:
            with contextlib.suppress(anyio.BrokenResourceError):
                self._child.writer.write(_line(message))

    def _cancel(self, request_id: int, reason: str) -> None:
        params = {"requestId": request_id, "reason": reason}
        self._write_now({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params})

    # --- what the server sends (the pipe's callback: never blocks) -------------------------

    def line(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except (ValueError, RecursionError) as exc:
            log.warning("%s: a line that is not JSON: %s", self.name, exc)
            return
        if not isinstance(message, dict):
            log.warning("%s: a line that is not a JSON-RPC message", self.name)
            return
        if isinstance(message.get("method"), str):
            if "id" in message:
                self._answer(message)
            else:
                self._notified(message)
            return
        request_id = message.get("id")
        if isinstance(request_id, str) and request_id.isdigit():
            request_id = int(request_id)
        answer = self._pending.get(request_id) if isinstance(request_id, int) else None
        if answer is not None and not answer.done():
            answer.set_result(message)

    def eof(self) -> None:
        self._closed = True
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(_closed())

    def _answer(self, request: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        method = request["method"]
        if method == "ping":
            reply["result"] = {}
        elif method in _CAPABILITIES:  # as the SDK's session answers without a handler
            reply["error"] = {
                "code": INVALID_REQUEST,
                "message": f"{_CAPABILITIES[method]} not supported",
            }
        else:
            reply["error"] = {"code": METHOD_NOT_FOUND, "message": f"Method not found: {method}"}
        self._write_now(reply)

    def _notified(self, notification: dict[str, Any]) -> None:
        method = notification["method"]
        if method == "notifications/tools/list_changed":
            self.on_tools_changed()
        elif method == "notifications/message":
            log.debug("%s: %s", self.name, notification.get("params"))


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
