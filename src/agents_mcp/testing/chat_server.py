"""A fake OpenAI-compatible ``/chat/completions`` endpoint backed by any :class:`LLM`.

It speaks the real wire format (SSE chunks or one JSON completion), records what it was
sent and injects faults, so the HTTP adapter and a whole agents-mcp subprocess can be
tested against it without a provider.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agents_mcp.errors import LLMError
from agents_mcp.llm import LLM
from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall, ToolSpec

log = logging.getLogger("agents_mcp.testing")

_CREATED = 1_700_000_000  # fixed so recorded responses are deterministic
_WIRE_KEYS = frozenset({"model", "messages", "tools", "stream", "stream_options"})


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One injected failure; it answers the next request instead of the backing LLM.

    Exactly one of: ``status`` (an HTTP error with ``body`` — a dict is sent as JSON, a
    string as text — and an optional ``Retry-After``), ``truncate`` (a stream that stops
    without ``finish_reason``/``[DONE]``; a non-streaming request gets half a JSON body) or
    ``malformed`` (a chunk, or a body, that is not JSON).
    """

    status: int | None = None
    retry_after: str | None = None
    body: dict[str, Any] | str | None = None
    truncate: bool = False
    malformed: bool = False

    def __post_init__(self) -> None:
        if (self.status is not None) + self.truncate + self.malformed != 1:
            raise ValueError("a Fault needs exactly one of status, truncate or malformed")


class FakeChatServer:
    """A Starlette app at ``POST /v1/chat/completions`` (and ``/chat/completions``).

    ``requests`` holds every JSON body received and ``request_headers`` the matching
    headers. ``faults`` are consumed one per request, before the LLM is asked. With
    ``api_key`` set, requests without ``Authorization: Bearer <api_key>`` get a 401. With
    ``ignore_stream``, streaming requests get a JSON completion, as some providers do.
    """

    def __init__(
        self,
        llm: LLM,
        *,
        api_key: str | None = None,
        reasoning_field: Literal["reasoning_content", "reasoning"] = "reasoning_content",
        interleave_tool_calls: bool = False,
        ignore_stream: bool = False,
    ) -> None:
        self.llm = llm
        self.api_key = api_key
        self.reasoning_field = reasoning_field
        self.interleave_tool_calls = interleave_tool_calls
        self.ignore_stream = ignore_stream
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.faults: list[Fault] = []
        routes = [
            Route(path, self._handle, methods=["POST"])
            for path in ("/v1/chat/completions", "/chat/completions")
        ]
        self.app = Starlette(routes=routes)

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve on a free loopback port in this event loop; yield the ``…/v1`` base URL."""
        # Bind and listen before uvicorn starts so the URL is valid immediately: early
        # connections wait in the backlog instead of being refused.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        server = _EmbeddedServer(config)
        stopped = anyio.Event()
        # Shielded so an outer cancellation still gets a graceful shutdown; cancelled by
        # hand only if that shutdown overruns.
        serve_scope = anyio.CancelScope(shield=True)

        async def run() -> None:
            try:
                with serve_scope:
                    await server.serve(sockets=[sock])
            finally:
                stopped.set()

        failure: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                try:
                    yield f"http://127.0.0.1:{port}/v1"
                except BaseException as exc:
                    # Re-raised below, outside the task group, so the caller sees its own
                    # exception rather than an ExceptionGroup around it.
                    failure = exc
                finally:
                    server.should_exit = True
                    server.stopping.set()
                    with anyio.move_on_after(5, shield=True):
                        await stopped.wait()
                    serve_scope.cancel()
        finally:
            # Close asyncio's listeners before the socket: a closed fd that is still
            # registered with the selector breaks the next server that reuses the number.
            for listener in server.servers:
                listener.close()
            sock.close()
        if failure is not None:
            raise failure

    async def _handle(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        self.requests.append(body)
        self.request_headers.append(dict(request.headers))
        if self.api_key is not None and (
            request.headers.get("authorization") != f"Bearer {self.api_key}"
        ):
            return _error(401, "Incorrect API key provided.", code="invalid_api_key")
        stream = bool(body.get("stream")) and not self.ignore_stream
        if self.faults:
            return _fault_response(self.faults.pop(0), stream, str(body.get("model")))
        try:
            llm_request = parse_chat_request(body)
        except (KeyError, TypeError, ValueError) as exc:
            return _error(400, f"Invalid request: {exc!r}")
        try:
            response = await self.llm.complete(llm_request)
        except LLMError as exc:
            return _error(exc.status or 500, str(exc))
        except Exception as exc:
            # Surface scripted-LLM failures to the client instead of a bare 500 page.
            log.exception("fake chat server: backing LLM failed")
            return _error(500, f"{type(exc).__name__}: {exc}")
        model = str(body.get("model"))
        if not stream:
            return JSONResponse(self.completion_json(response, model))
        options = body.get("stream_options") or {}
        chunks = self.stream_chunks(
            response, model, include_usage=bool(options.get("include_usage"))
        )
        return _sse([": fake keep-alive", *(_data(c) for c in chunks), "data: [DONE]"])

    def completion_json(self, response: LLMResponse, model: str) -> dict[str, Any]:
        """``response`` as one non-streaming ``chat.completion`` object."""
        return _completion_json(response, model, self.reasoning_field)

    def stream_chunks(
        self, response: LLMResponse, model: str, *, include_usage: bool
    ) -> list[dict[str, Any]]:
        """``response`` as the ``chat.completion.chunk`` objects a provider would stream."""
        chunks = [_chunk(model, {"role": "assistant", "content": ""})]
        chunks += [_chunk(model, {self.reasoning_field: p}) for p in _split(response.reasoning)]
        chunks += [_chunk(model, {"content": p}) for p in _split(response.content)]
        per_call: list[list[dict[str, Any]]] = []
        for index, call in enumerate(response.tool_calls):
            first, *rest = _split(call.arguments, pad=True)
            head = {"index": index, "id": call.id, "type": "function"}
            frags = [{**head, "function": {"name": call.name, "arguments": first}}]
            frags += [{"index": index, "function": {"arguments": p}} for p in rest]
            per_call.append(frags)
        if self.interleave_tool_calls:
            # Round-robin: fragments of different calls alternate, as some providers do.
            order = [f for group in _zip_longest(per_call) for f in group]
        else:
            order = [f for frags in per_call for f in frags]
        chunks += [_chunk(model, {"tool_calls": [f]}) for f in order]
        chunks.append(_chunk(model, {}, finish_reason=_finish_reason(response)))
        if include_usage:
            chunks.append({**_chunk(model, {}), "choices": [], "usage": _usage_json(response)})
        return chunks


def _completion_json(response: LLMResponse, model: str, reasoning_field: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.content}
    if response.reasoning:
        message[reasoning_field] = response.reasoning
    if response.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in response.tool_calls
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(response)}],
        "usage": _usage_json(response),
    }


def parse_chat_request(body: dict[str, Any]) -> LLMRequest:
    """Turn a Chat Completions request body into an :class:`LLMRequest`."""
    system: list[str] = []
    messages: list[Message] = []
    for raw in body["messages"]:
        role, content = raw["role"], _text(raw.get("content"))
        if role in ("system", "developer"):
            system.append(content or "")
        elif role == "user":
            messages.append(Message(role="user", content=content))
        elif role == "assistant":
            calls = tuple(
                ToolCall(
                    id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"]
                )
                for c in raw.get("tool_calls") or ()
            )
            messages.append(Message(role="assistant", content=content, tool_calls=calls))
        elif role == "tool":
            messages.append(Message(role="tool", tool_call_id=raw["tool_call_id"], content=content))
        else:
            raise ValueError(f"unknown role {role!r}")
    tools = tuple(
        ToolSpec(
            name=t["function"]["name"],
            description=t["function"].get("description") or "",
            parameters=t["function"].get("parameters") or {},
        )
        for t in body.get("tools") or ()
    )
    settings = {k: v for k, v in body.items() if k not in _WIRE_KEYS}
    return LLMRequest(system="\n\n".join(system), messages=messages, tools=tools, settings=settings)


class _EmbeddedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stopping = anyio.Event()

    async def main_loop(self) -> None:
        # Wake on ``stopping`` instead of uvicorn's 100 ms polling so teardown is quick;
        # one tick still sets the default response headers.
        await self.on_tick(0)
        await self.stopping.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's shutdown always sleeps 100 ms; a test suite starting many fakes can't
        # afford that, so poll briefly for open connections instead (lifespan is off).
        for listener in self.servers:
            listener.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        with anyio.move_on_after(self.config.timeout_graceful_shutdown or 5):
            # uvicorn offers no event for "all connections closed"; polling is the only way.
            while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        for task in self.server_state.tasks:
            task.cancel()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The hosting process (pytest) owns SIGINT/SIGTERM; don't take them over.
        yield


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    # Content parts: [{"type": "text", "text": ...}, ...]
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def _split(text: str | None, parts: int = 3, *, pad: bool = False) -> list[str]:
    """Cut ``text`` into up to ``parts`` fragments (exactly ``parts`` when ``pad``)."""
    text = text or ""
    size = max(1, -(-len(text) // parts))
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    return pieces + [""] * (parts - len(pieces)) if pad else pieces


def _zip_longest(groups: list[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(max((len(g) for g in groups), default=0)):
        yield [g[i] for g in groups if i < len(g)]


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _finish_reason(response: LLMResponse) -> str:
    return response.finish_reason or ("tool_calls" if response.tool_calls else "stop")


def _usage_json(response: LLMResponse) -> dict[str, int]:
    u = response.usage
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def _data(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk)}"


def _sse(lines: list[str]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        for line in lines:
            yield line + "\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


def _error(status: int, message: str, *, code: str | None = None) -> JSONResponse:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
    )


def _fault_response(fault: Fault, stream: bool, model: str) -> Response:
    if fault.status is not None:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        if isinstance(fault.body, str):
            return Response(fault.body, fault.status, headers, media_type="text/plain")
        body = fault.body or {
            "error": {"message": f"Injected fault: HTTP {fault.status}", "type": "server_error"}
        }
        return JSONResponse(body, fault.status, headers)
    partial = LLMResponse(content="This answer is cut o")
    if stream:
        head = [_data(_chunk(model, {"role": "assistant", "content": ""}))]
        if fault.truncate:
            return _sse(
                head + [_data(_chunk(model, {"content": p})) for p in _split(partial.content)]
            )
        return _sse([*head, 'data: {"choices": [{"delta": {"content": "x"'])
    text = json.dumps(_completion_json(partial, model, "reasoning_content"))
    body_text = text[: len(text) // 2] if fault.truncate else '{"choices": [{"message": '
    return Response(body_text, 200, media_type="application/json")
