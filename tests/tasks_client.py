"""A Python client of the MCP Tasks extension, for tests: raw ``tasks/*`` requests
through ``fastmcp.Client``'s public session (``send_request``), as any host would send
them, and a client extension that declares the extension and keeps a ``tools/call``
that answered a task as it came (``CreateTaskResult``)."""

from __future__ import annotations

from typing import Any, Literal

import mcp_types
from fastmcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp_types import CallToolResult, RequestParams, Result
from pydantic import ConfigDict, Field

TASKS = "io.modelcontextprotocol/tasks"


class TaskParams(RequestParams):
    model_config = ConfigDict(populate_by_name=True)

    task_id: str = Field(serialization_alias="taskId")


class UpdateParams(TaskParams):
    input_responses: dict[str, Any] = Field(serialization_alias="inputResponses")


class GetTask(mcp_types.Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskParams
    name_param = "taskId"  # the session stamps Mcp-Name from params.taskId


class UpdateTask(mcp_types.Request[UpdateParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    params: UpdateParams
    name_param = "taskId"


class CancelTask(mcp_types.Request[TaskParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskParams
    name_param = "taskId"


class CreatedTask(Result):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    task_id: str = Field(alias="taskId")
    status: str
    result_type: Literal["task"] = Field(alias="resultType")
    ttl_ms: int | None = Field(alias="ttlMs")
    poll_interval_ms: int | None = Field(default=None, alias="pollIntervalMs")


class DetailedTask(Result):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    task_id: str = Field(alias="taskId")
    status: str
    status_message: str | None = Field(default=None, alias="statusMessage")
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    input_requests: dict[str, Any] | None = Field(default=None, alias="inputRequests")


async def _not_polled(created: CreatedTask, ctx: ClaimContext) -> CallToolResult:
    """``Client.call_tool`` would hand the task here to be polled to its end; these tests
    take it as it came (:func:`create`) and poll with :func:`get` themselves."""
    raise AssertionError(f"task {created.task_id}: use tasks_client.create, not call_tool")


class TasksClient(ClientExtension):
    """Declares the extension on every request; ``call_tool(..., allow_claimed=True)`` on
    the session then returns a task as :class:`CreatedTask`."""

    identifier = TASKS

    def claims(self) -> tuple[ResultClaim[CreatedTask], ...]:
        return (ResultClaim(result_type="task", model=CreatedTask, resolve=_not_polled),)


async def create(client: Client[Any], tool: str, **arguments: Any) -> Any:
    """Call ``tool``: a :class:`CreatedTask`, or the ``CallToolResult`` it answered."""
    return await client.session.call_tool(tool, arguments, allow_claimed=True)


async def get(client: Client[Any], task_id: str) -> DetailedTask:
    request = GetTask(params=TaskParams(task_id=task_id))
    return await client.session.send_request(request, DetailedTask)


async def update(client: Client[Any], task_id: str, responses: dict[str, Any]) -> Result:
    params = UpdateParams(task_id=task_id, input_responses=responses)
    return await client.session.send_request(UpdateTask(params=params), Result)


async def cancel(client: Client[Any], task_id: str) -> Result:
    request = CancelTask(params=TaskParams(task_id=task_id))
    return await client.session.send_request(request, Result)
