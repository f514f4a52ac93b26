"""The MCP Tasks extension (``io.modelcontextprotocol/tasks``, SEP-2663) on FastMCP.

This module speaks the extension's wire: it advertises the capability (exactly ``{}``:
the official client refuses anything else), serves ``tasks/get``, ``tasks/update`` and
``tasks/cancel`` on 2026-07-28 connections, and hands ``tools/call`` to a
:class:`TaskSource`, which decides whether a call becomes a task and what a task is.
agents-mcp's source is the thread store (``threadtasks``); the conformance tests put a
source of fixture tools behind the same class.

What it enforces for every source:

* a task only for a request whose own ``_meta`` declares the extension;
* ``tasks/*`` without that declaration: ``-32021`` (with ``requiredCapabilities``);
* over HTTP, the ``Mcp-Name`` header must be the ``taskId``: ``-32020`` otherwise
  (the SDK checks it only for the methods it knows);
* an unknown task id, another owner's or an expired one: ``-32602``, all alike;
* ``CreateTaskResult`` answers ``resultType: "task"``; ``tasks/get`` answers
  ``resultType: "complete"``, and a completed task's ``result`` carries it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fastmcp import Context
from fastmcp.server.dependencies import get_http_request
from fastmcp.server.extensions import (
    MethodBinding,
    ServerExtension,
    ToolCallContinuation,
    ToolCallOutcome,
    read_client_extension_settings,
)
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_NAME_HEADER, decode_header_value
from mcp_types import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolRequestParams,
    RequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ConfigDict, Field

TASKS = "io.modelcontextprotocol/tasks"
"""The extension's identifier."""

TaskStatus = Literal["working", "input_required", "completed", "failed", "cancelled"]


class UnknownTask(Exception):
    """No such task for this caller (unknown, another owner's, or expired)."""


def declares_tasks(ctx: Context) -> bool:
    """This request (2026-07-28) declares the extension in its ``_meta``."""
    rc = ctx.request_context
    if rc is None or rc.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    return ctx.client_extension_settings(TASKS) is not None


@dataclass(frozen=True, kw_only=True)
class TaskView:
    """A task as a client sees it, whatever its source."""

    task_id: str
    status: TaskStatus
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None
    status_message: str | None = None
    result: dict[str, Any] | None = None
    """A completed task's result (a ``CallToolResult`` on the wire)."""
    error: dict[str, Any] | None = None
    """A failed task's JSON-RPC error (``code``, ``message``)."""
    input_requests: dict[str, Any] | None = None
    """An ``input_required`` task's outstanding requests, by key."""


class _TaskFields(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    task_id: str = Field(serialization_alias="taskId")
    status: TaskStatus
    created_at: str = Field(serialization_alias="createdAt")
    last_updated_at: str = Field(serialization_alias="lastUpdatedAt")
    ttl_ms: int | None = Field(serialization_alias="ttlMs")
    poll_interval_ms: int | None = Field(default=None, serialization_alias="pollIntervalMs")
    status_message: str | None = Field(default=None, serialization_alias="statusMessage")


class CreateTaskResult(_TaskFields):
    """The answer of a ``tools/call`` that became a task (``Result & Task``, flat)."""

    result_type: Literal["task"] = Field(default="task", serialization_alias="resultType")


class GetTaskResult(_TaskFields):
    """The answer of ``tasks/get``: the task with its status's payload."""

    result_type: Literal["complete"] = Field(default="complete", serialization_alias="resultType")
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    input_requests: dict[str, Any] | None = Field(default=None, serialization_alias="inputRequests")


def _fields(view: TaskView) -> dict[str, Any]:
    return {
        "task_id": view.task_id,
        "status": view.status,
        "created_at": view.created_at,
        "last_updated_at": view.last_updated_at,
        "ttl_ms": view.ttl_ms,
        "poll_interval_ms": view.poll_interval_ms,
        "status_message": view.status_message,
    }


def created(view: TaskView) -> CreateTaskResult:
    """The ``CreateTaskResult`` of a new task (no payload: that is for ``tasks/get``)."""
    return CreateTaskResult(**_fields(view))


def detailed(view: TaskView) -> GetTaskResult:
    """The ``tasks/get`` answer: each payload only with the status that calls for it."""
    result = view.result if view.status == "completed" else None
    if result is not None:
        result = {**result, "resultType": "complete"}
    return GetTaskResult(
        **_fields(view),
        result=result,
        error=view.error if view.status == "failed" else None,
        input_requests=view.input_requests if view.status == "input_required" else None,
    )


class TaskIdParams(RequestParams):
    model_config = ConfigDict(populate_by_name=True)

    task_id: str = Field(alias="taskId")


class UpdateParams(TaskIdParams):
    input_responses: dict[str, Any] = Field(alias="inputResponses")


class TaskSource(Protocol):
    """Where tasks come from: which calls become tasks, and what a task is now."""

    async def call(
        self,
        params: CallToolRequestParams,
        context: Context,
        call_next: ToolCallContinuation,
        *,
        opted: bool,
    ) -> ToolCallOutcome:
        """Run the call: its result, or a :class:`CreateTaskResult` (only when ``opted``:
        the request declared the extension)."""
        ...

    async def get(self, task_id: str) -> TaskView:
        """The task now; raises :class:`UnknownTask`."""
        ...

    async def update(self, task_id: str, responses: dict[str, Any]) -> None:
        """Answer outstanding input requests (others are ignored); raises
        :class:`UnknownTask`."""
        ...

    async def cancel(self, task_id: str) -> None:
        """Ask the task to stop (a finished task stays as it is); raises
        :class:`UnknownTask`."""
        ...


class TasksExtension(ServerExtension):
    """The extension's wire around a :class:`TaskSource`."""

    identifier = TASKS

    def __init__(self, source: TaskSource) -> None:
        self.source = source

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return [
            MethodBinding("tasks/get", TaskIdParams, self._get, modern),
            MethodBinding("tasks/update", UpdateParams, self._update, modern),
            MethodBinding("tasks/cancel", TaskIdParams, self._cancel, modern),
        ]

    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        context: Context,
        call_next: ToolCallContinuation,
    ) -> ToolCallOutcome:
        return await self.source.call(params, context, call_next, opted=declares_tasks(context))

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> BaseModel:
        _check(ctx, params.task_id)
        try:
            return detailed(await self.source.get(params.task_id))
        except UnknownTask:
            raise _not_found() from None

    async def _update(
        self, ctx: ServerRequestContext[Any, Any], params: UpdateParams
    ) -> dict[str, Any]:
        _check(ctx, params.task_id)
        try:
            await self.source.update(params.task_id, params.input_responses)
        except UnknownTask:
            raise _not_found() from None
        return {}

    async def _cancel(
        self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams
    ) -> dict[str, Any]:
        _check(ctx, params.task_id)
        try:
            await self.source.cancel(params.task_id)
        except UnknownTask:
            raise _not_found() from None
        return {}


def missing_capability() -> MCPError:
    """``-32021``: the request did not declare the extension."""
    return MCPError(
        code=MISSING_REQUIRED_CLIENT_CAPABILITY,
        message="Missing required client capability",
        data={"requiredCapabilities": {"extensions": {TASKS: {}}}},
    )


def _not_found() -> MCPError:
    return MCPError(code=INVALID_PARAMS, message="Failed to retrieve task: Task not found")


def _check(ctx: ServerRequestContext[Any, Any], task_id: str) -> None:
    """The request declares the extension, and over HTTP its ``Mcp-Name`` is the task."""
    if read_client_extension_settings(ctx, TASKS) is None:
        raise missing_capability()
    try:
        header = get_http_request().headers.get(MCP_NAME_HEADER)
    except RuntimeError:  # not over HTTP
        return
    if header is not None and decode_header_value(header) != task_id:
        raise MCPError(
            code=HEADER_MISMATCH, message=f"the {MCP_NAME_HEADER} header is not params.taskId"
        )
