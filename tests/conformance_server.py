"""A test-only server for the conformance suite's wire scenarios (``tasks-*`` and
``input-required-result-*``): agents-mcp's own :class:`TasksExtension` and request-state
policy (the shared-key codec of ``server.mrtr``) around the suite's fixture tools, which
agents-mcp, whose tools are agents, does not have. Tasks here live in memory and run
the fixture bodies in the background; the suite's checks are about the wire.

Run: ``python tests/conformance_server.py --fd FD`` (serves streamable HTTP on the
listening socket FD), or ``fixture_app()`` in process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import mcp_types as mt
from fastmcp import Context, FastMCP
from fastmcp.server.extensions import ToolCallContinuation, ToolCallOutcome
from fastmcp.tools.base import InputRequiredToolResult
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolRequestParams

from agents_mcp.server.mrtr import SharedKey, security
from agents_mcp.server.tasks import (
    TasksExtension,
    TaskView,
    UnknownTask,
    created,
    missing_capability,
)
from agents_mcp.store import now

Body = Callable[["FixtureTask", dict[str, Any]], Awaitable[dict[str, Any]]]


def text(value: str, is_error: bool = False) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": is_error}


def elicit(message: str, props: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": props, "required": list(props)}
    return {
        "method": "elicitation/create",
        "params": {"message": message, "requestedSchema": schema},
    }


@dataclass
class FixtureTask:
    id: str = field(default_factory=lambda: "task_" + secrets.token_urlsafe(18))
    status: str = "working"
    created: str = field(default_factory=now)
    updated: str = field(default_factory=now)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    pending: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)
    answered: anyio.Event = field(default_factory=anyio.Event)
    runner: asyncio.Task[None] | None = None
    gathered: dict[str, Any] | None = None

    def touch(self, status: str) -> None:
        self.status, self.updated = status, now()

    async def ask(self, requests: dict[str, Any]) -> dict[str, Any]:
        self.pending, self.answered = dict(requests), anyio.Event()
        self.touch("input_required")
        await self.answered.wait()
        self.touch("working")
        return {k: self.answers[k] for k in requests}


async def _slow_compute(task: FixtureTask, args: dict[str, Any]) -> dict[str, Any]:
    await anyio.sleep(float(args.get("seconds", 1)))
    return text(f"computed {args.get('label', '')} after {args.get('seconds', 1)}s")


async def _failing_job(task: FixtureTask, args: dict[str, Any]) -> dict[str, Any]:
    await anyio.sleep(0.5)
    return text("job failed: tool execution error", is_error=True)


async def _protocol_error_job(task: FixtureTask, args: dict[str, Any]) -> dict[str, Any]:
    await anyio.sleep(0.2)
    raise MCPError(code=-32603, message="protocol error in job")


async def _confirm_delete(task: FixtureTask, args: dict[str, Any]) -> dict[str, Any]:
    got = await task.ask({"confirm": elicit("Delete it?", {"confirm": {"type": "boolean"}})})
    return text(f"delete confirmed: {json.dumps(got['confirm'])}")


async def _multi_input(task: FixtureTask, args: dict[str, Any]) -> dict[str, Any]:
    got = await task.ask(
        {
            "first": elicit("First?", {"a": {"type": "string"}}),
            "second": elicit("Second?", {"b": {"type": "string"}}),
        }
    )
    return text(f"got {json.dumps(got)}")


async def _with_task(task: FixtureTask, args: dict[str, Any]) -> dict[str, Any]:
    await anyio.sleep(0.3)
    name = ((task.gathered or {}).get("content") or {}).get("name")
    return text(f"Hello, {name}! (from a task)")


BODIES: dict[str, tuple[Literal["optional", "required"], Body]] = {
    "slow_compute": ("optional", _slow_compute),
    "failing_job": ("required", _failing_job),
    "protocol_error_job": ("optional", _protocol_error_job),
    "confirm_delete": ("optional", _confirm_delete),
    "multi_input": ("optional", _multi_input),
    "test_tool_with_task": ("required", _with_task),
}


class FixtureTasks:
    """A :class:`~agents_mcp.server.tasks.TaskSource` of the suite's fixture tools."""

    def __init__(self) -> None:
        self.tasks: dict[str, FixtureTask] = {}

    def view(self, task: FixtureTask) -> TaskView:
        return TaskView(
            task_id=task.id,
            status=task.status,  # type: ignore[arg-type]
            created_at=task.created,
            last_updated_at=task.updated,
            ttl_ms=3_600_000,
            poll_interval_ms=100,
            result=task.result,
            error=task.error,
            input_requests=dict(task.pending) if task.status == "input_required" else None,
        )

    async def call(
        self,
        params: CallToolRequestParams,
        context: Context,
        call_next: ToolCallContinuation,
        *,
        opted: bool,
    ) -> ToolCallOutcome:
        entry = BODIES.get(params.name)
        if entry is None:
            return await call_next()
        mode, body = entry
        if not opted:
            if mode == "required":
                raise missing_capability()
            return await call_next()
        gathered = None
        if params.name == "test_tool_with_task":  # input-required rounds first, then a task
            answers = context.input_responses or {}
            if "user_name" not in answers:
                ask = elicit("What is your name?", {"name": {"type": "string"}})
                return InputRequiredToolResult(
                    mt.InputRequiredResult.model_validate(
                        {"inputRequests": {"user_name": ask}, "requestState": "round-1"}
                    )
                )
            gathered = answers["user_name"].model_dump(mode="json", exclude_none=True)
        if (params.arguments or {}).get("seconds") == 0:
            return await call_next()
        task = FixtureTask(gathered=gathered)
        self.tasks[task.id] = task
        arguments = dict(params.arguments or {})
        task.runner = asyncio.get_running_loop().create_task(self._run(task, body, arguments))
        return created(self.view(task))

    async def _run(self, task: FixtureTask, body: Body, arguments: dict[str, Any]) -> None:
        try:
            task.result = await body(task, arguments)
            task.touch("completed")
        except asyncio.CancelledError:
            task.pending = {}
            task.touch("cancelled")
        except MCPError as exc:
            task.error = {"code": exc.error.code, "message": exc.error.message}
            task.touch("failed")

    def _task(self, task_id: str) -> FixtureTask:
        task = self.tasks.get(task_id)
        if task is None:
            raise UnknownTask(task_id)
        return task

    async def get(self, task_id: str) -> TaskView:
        return self.view(self._task(task_id))

    async def update(self, task_id: str, responses: dict[str, Any]) -> None:
        task = self._task(task_id)
        for key, value in responses.items():
            if key in task.pending:
                task.answers[key] = value
                del task.pending[key]
        if task.status == "input_required" and not task.pending:
            task.answered.set()

    async def cancel(self, task_id: str) -> None:
        task = self._task(task_id)
        if task.runner is not None and not task.runner.done():
            task.runner.cancel()


NAME = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def _ir(requests: dict[str, Any], state: str | None = None) -> mt.InputRequiredResult:
    return mt.InputRequiredResult.model_validate({"inputRequests": requests, "requestState": state})


def _ask_name() -> dict[str, Any]:
    return {
        "method": "elicitation/create",
        "params": {"message": "What is your name?", "requestedSchema": NAME},
    }


def _sample(prompt: str, tokens: int) -> dict[str, Any]:
    message = {"role": "user", "content": {"type": "text", "text": prompt}}
    return {
        "method": "sampling/createMessage",
        "params": {"messages": [message], "maxTokens": tokens},
    }


ROOTS = {"method": "roots/list", "params": {}}


def fixture_app() -> FastMCP:
    key = SharedKey()
    key.load(secrets.token_urlsafe(32))
    mcp = FastMCP("conformance-fixtures", request_state_security=security(key))
    mcp.add_extension(TasksExtension(FixtureTasks()))
    _task_tools(mcp)
    _input_required_tools(mcp)
    return mcp


def _task_tools(mcp: FastMCP) -> None:
    @mcp.tool
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    @mcp.tool
    async def slow_compute(seconds: float = 1, label: str = "") -> str:
        await anyio.sleep(seconds)
        return f"computed {label} after {seconds}s"

    for name in ("failing_job", "protocol_error_job", "confirm_delete", "multi_input"):
        mcp.tool(name=name)(_inline)
    mcp.tool(name="test_tool_with_task")(_inline)


async def _inline() -> str:
    """Run without a task (never reached for the tools that need one)."""
    return "inline"


def _input_required_tools(mcp: FastMCP) -> None:  # noqa: C901  (one fixture per scenario)
    @mcp.tool
    async def test_input_required_result_elicitation(ctx: Context) -> Any:
        answer = (ctx.input_responses or {}).get("user_name")
        content = getattr(answer, "content", None) or {}
        if getattr(answer, "action", None) != "accept" or not content.get("name"):
            return _ir({"user_name": _ask_name()})
        return f"Hello, {content['name']}!"

    @mcp.tool
    async def test_input_required_result_sampling(ctx: Context) -> Any:
        answers = ctx.input_responses or {}
        if "capital_question" not in answers:
            return _ir({"capital_question": _sample("What is the capital of France?", 100)})
        content = answers["capital_question"].content  # type: ignore[union-attr]
        return f"sampling said: {getattr(content, 'text', content)}"

    @mcp.tool
    async def test_input_required_result_list_roots(ctx: Context) -> Any:
        answers = ctx.input_responses or {}
        if "client_roots" not in answers:
            return _ir({"client_roots": ROOTS})
        roots = answers["client_roots"].roots  # type: ignore[union-attr]
        return "roots: " + ", ".join(str(r.uri) for r in roots)

    @mcp.tool
    async def test_input_required_result_request_state(ctx: Context) -> Any:
        if "confirm" not in (ctx.input_responses or {}):
            ok = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
            ask = {
                "method": "elicitation/create",
                "params": {"message": "Please confirm", "requestedSchema": ok},
            }
            return _ir({"confirm": ask}, state="confirm-round-1")
        return "state-ok" if ctx.request_state == "confirm-round-1" else "bad state"

    @mcp.tool
    async def test_input_required_result_multiple_inputs(ctx: Context) -> Any:
        if not {"user_name", "greeting", "client_roots"} <= set(ctx.input_responses or {}):
            requests = {
                "user_name": _ask_name(),
                "greeting": _sample("Generate a greeting", 50),
                "client_roots": ROOTS,
            }
            return _ir(requests, state="multi-1")
        return f"all inputs received (state {ctx.request_state})"

    @mcp.tool
    async def test_input_required_result_multi_round(ctx: Context) -> Any:
        answers, state = ctx.input_responses or {}, ctx.request_state
        if "step2" in answers and state and state.startswith("{"):
            color = answers["step2"].content.get("color")  # type: ignore[union-attr]
            return f"{json.loads(state)['name']} likes {color}"
        if "step1" in answers and state == "round-1":
            name = answers["step1"].content.get("name")  # type: ignore[union-attr]
            color = {
                "type": "object",
                "properties": {"color": {"type": "string"}},
                "required": ["color"],
            }
            ask = {
                "method": "elicitation/create",
                "params": {
                    "message": "Step 2: What is your favorite color?",
                    "requestedSchema": color,
                },
            }
            return _ir({"step2": ask}, state=json.dumps({"round": 2, "name": name}))
        ask = {
            "method": "elicitation/create",
            "params": {"message": "Step 1: What is your name?", "requestedSchema": NAME},
        }
        return _ir({"step1": ask}, state="round-1")

    @mcp.tool
    async def test_input_required_result_tampered_state(ctx: Context) -> Any:
        if ctx.request_state is None:
            ok = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
            ask = {
                "method": "elicitation/create",
                "params": {"message": "Confirm?", "requestedSchema": ok},
            }
            return _ir({"confirm": ask}, state="sealed-by-boundary")
        return "state verified"

    @mcp.tool
    async def test_input_required_result_capabilities(ctx: Context) -> Any:
        meta = ctx.request_context.meta if ctx.request_context else None
        caps = (meta or {}).get("io.modelcontextprotocol/clientCapabilities") or {}
        wanted = {
            "user_name": ("elicitation", _ask_name()),
            "greeting": ("sampling", _sample("Generate a greeting", 50)),
            "client_roots": ("roots", ROOTS),
        }
        answers = ctx.input_responses or {}
        missing = {k: r for k, (cap, r) in wanted.items() if cap in caps and k not in answers}
        if missing:
            return _ir(missing)
        return f"done with {sorted(answers)}"

    @mcp.prompt
    async def test_input_required_result_prompt(ctx: Context) -> Any:
        answers = ctx.input_responses or {}
        if "user_context" not in answers:
            schema = {
                "type": "object",
                "properties": {"context": {"type": "string"}},
                "required": ["context"],
            }
            ask = {
                "method": "elicitation/create",
                "params": {
                    "message": "What context should the prompt use?",
                    "requestedSchema": schema,
                },
            }
            return _ir({"user_context": ask})
        return f"Use this context: {answers['user_context'].content.get('context')}"  # type: ignore[union-attr]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True, help="a listening socket to serve on")
    args = parser.parse_args()
    sock = socket.socket(fileno=args.fd)
    server = fixture_app()
    anyio.run(lambda: server.run_http_async(show_banner=False, log_level="error", sockets=[sock]))
