"""A fake OpenAI-compatible ``/chat/completions`` endpoint backed by any :class:`LLM`.

It speaks the real wire format (SSE chunks or one JSON completion), records what it was
sent and injects faults, so the HTTP adapter and a whole agents-mcp subprocess can be
tested against it without a provider.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

from starlette.responses import JSONResponse, Response

from agents_mcp.llm import LLM
from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall, ToolSpec
from agents_mcp.testing.fake_server import CREATED, FakeServer, Fault, Rejected, split, sse

__all__ = ["FakeChatServer", "Fault", "parse_chat_request"]

_CREATED = CREATED
_WIRE_KEYS = frozenset({"model", "messages", "tools", "stream", "stream_options"})
_split = split


class FakeChatServer(FakeServer):
    """A Starlette app at ``POST /v1/chat/completions`` (and ``/chat/completions``).

    ``requests`` holds every JSON body received and ``request_headers`` the matching
    headers. ``faults`` are consumed one per request, before the LLM is asked. With
    ``api_key`` set, requests without ``Authorization: Bearer <api_key>`` get a 401. With
    ``ignore_stream``, streaming requests get a JSON completion, as some providers do.
    """

    paths = ("/v1/chat/completions", "/chat/completions")

    def __init__(
        self,
        llm: LLM,
        *,
        api_key: str | None = None,
        reasoning_field: Literal["reasoning_content", "reasoning"] = "reasoning_content",
        interleave_tool_calls: bool = False,
        ignore_stream: bool = False,
    ) -> None:
        super().__init__(llm, api_key=api_key)
        self.reasoning_field = reasoning_field
        self.interleave_tool_calls = interleave_tool_calls
        self.ignore_stream = ignore_stream

    def streams(self, body: dict[str, Any]) -> bool:
        return bool(body.get("stream")) and not self.ignore_stream

    def error_response(self, status: int, message: str, **headers: str) -> Response:
        code = "invalid_api_key" if status == 401 else None
        return _error(status, message, code=code, headers=headers)

    def parse_request(self, body: dict[str, Any]) -> LLMRequest:
        return parse_chat_request(body)

    def render(self, response: LLMResponse, body: dict[str, Any]) -> Response:
        model = str(body.get("model"))
        if not self.streams(body):
            return JSONResponse(self.completion_json(response, model))
        options = body.get("stream_options") or {}
        chunks = self.stream_chunks(
            response, model, include_usage=bool(options.get("include_usage"))
        )
        return sse([": fake keep-alive", *(_data(c) for c in chunks), "data: [DONE]"])

    def fault_events(self, fault: Fault, body: dict[str, Any]) -> list[str]:
        model = str(body.get("model"))
        head = [_data(_chunk(model, {"role": "assistant", "content": ""}))]
        if fault.truncate:
            return head + [_data(_chunk(model, {"content": p})) for p in _split(_CUT_OFF)]
        if fault.stream_error:
            error = {"message": "Injected fault: stream error", "code": 500}
            return [*head, _data({"error": error})]
        return [*head, 'data: {"choices": [{"delta": {"content": "x"']

    def partial_body(self, body: dict[str, Any]) -> str:
        partial = LLMResponse(content=_CUT_OFF)
        return json.dumps(_completion_json(partial, str(body.get("model")), "reasoning_content"))

    def malformed_body(self) -> str:
        return '{"choices": [{"message": '

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
    """Turn a Chat Completions request body into an :class:`LLMRequest`.

    Like the API, it refuses a ``tool`` message that answers no call of the assistant
    message before it.
    """
    system: list[str] = []
    messages: list[Message] = []
    open_calls: set[str] = set()
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
            open_calls = {c.id for c in calls}
            continue
        elif role == "tool":
            if raw["tool_call_id"] not in open_calls:
                raise Rejected(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a"
                    " preceeding message with 'tool_calls'.",
                )
            messages.append(Message(role="tool", tool_call_id=raw["tool_call_id"], content=content))
            continue
        else:
            raise ValueError(f"unknown role {role!r}")
        open_calls = set()
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


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    # Content parts: [{"type": "text", "text": ...}, ...]
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


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


def _usage_json(response: LLMResponse) -> dict[str, Any]:
    u = response.usage
    usage: dict[str, Any] = {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    }
    if u.cache_read_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": u.cache_read_tokens}
    if u.reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return usage


def _data(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk)}"


def _error(
    status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
        headers=headers,
    )


_CUT_OFF = "This answer is cut o"
