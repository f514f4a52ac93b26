"""A fake OpenAI Responses API (``POST /v1/responses``) backed by any :class:`LLM`.

Built from OpenAI's documented formats: the request (``instructions``, ``input`` items:
``message``, ``function_call``, ``function_call_output``, ``reasoning``; function
``tools``; ``store``, ``include``), the ``response`` object with its ``output`` items and
``usage``, the streaming events (``response.created``, ``response.in_progress``,
``response.output_item.added``/``done``, ``response.content_part.added``/``done``,
``response.output_text.delta``/``done``, ``response.function_call_arguments.delta``/
``done``, ``response.completed``, ``response.failed``) and error bodies
(``{"error": {"message", "type", "param", "code"}}``).

Like the real API, it refuses a ``function_call_output`` whose call is not in the input.
With ``store: false``, a reasoning item sent back must carry the
``encrypted_content`` issued with it (else 404, "Item … not found"); the content is tied
to the item's id (else 400, "could not be verified"). Encrypted content is returned only
when ``include`` asks for ``reasoning.encrypted_content``; with
``encrypted_reasoning=False`` the fake refuses that ``include``, as models without
reasoning do.

The backing LLM's ``reasoning`` becomes a ``reasoning`` item whose summary is that text.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from starlette.responses import JSONResponse, Response

from agents_mcp.llm import LLM
from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall, ToolSpec
from agents_mcp.testing.fake_server import CREATED, FakeServer, Fault, Rejected, event, split, sse

__all__ = ["FakeResponsesServer", "encrypted_content"]

_WIRE_KEYS = frozenset({"model", "input", "instructions", "tools", "stream", "store", "include"})
_ENCRYPTED = "reasoning.encrypted_content"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encrypted_content(item_id: str, text: str) -> str:
    """What this fake issues as ``encrypted_content`` for reasoning item ``item_id``."""
    return base64.b64encode(json.dumps({"id": item_id, "text": text}).encode()).decode()


class FakeResponsesServer(FakeServer):
    """A Starlette app at ``POST /v1/responses`` (and ``/responses``)."""

    paths = ("/v1/responses", "/responses")

    def __init__(
        self, llm: LLM, *, api_key: str | None = None, encrypted_reasoning: bool = True
    ) -> None:
        super().__init__(llm, api_key=api_key)
        self.encrypted_reasoning = encrypted_reasoning

    def error_response(self, status: int, message: str, **headers: str) -> Response:
        return _error(status, message, headers=headers)

    def parse_request(self, body: dict[str, Any]) -> LLMRequest:
        include = body.get("include") or []
        if _ENCRYPTED in include and not self.encrypted_reasoning:
            raise Rejected(400, "Encrypted content is not supported with this model.")
        items = body["input"]
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        messages: list[Message] = []
        for item in items:
            _add_item(messages, item, stored=body.get("store", True) is not False)
        tools = tuple(
            ToolSpec(
                name=t["name"],
                description=t.get("description") or "",
                parameters=t.get("parameters") or {},
            )
            for t in body.get("tools") or ()
            if t.get("type") == "function"
        )
        settings = {k: v for k, v in body.items() if k not in _WIRE_KEYS}
        system = body.get("instructions") or ""
        return LLMRequest(system=system, messages=messages, tools=tools, settings=settings)

    def render(self, response: LLMResponse, body: dict[str, Any]) -> Response:
        model = str(body.get("model"))
        encrypted = _ENCRYPTED in (body.get("include") or [])
        done = response_json(response, model, output_items(response, encrypted=encrypted))
        if not self.streams(body):
            return JSONResponse(done)
        return sse(stream_events(done))

    def fault_events(self, fault: Fault, body: dict[str, Any]) -> list[str]:
        started = response_json(LLMResponse(content=None), str(body.get("model")), [])
        started = {**started, "status": "in_progress", "usage": None}
        head = [_event("response.created", 0, response=started)]
        if fault.truncate:
            item = {
                "type": "message",
                "id": "msg_cut",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            head.append(_event("response.output_item.added", 1, output_index=0, item=item))
            for n, part in enumerate(split("This is cut o")):
                head.append(
                    _event(
                        "response.output_text.delta",
                        2 + n,
                        item_id="msg_cut",
                        output_index=0,
                        content_index=0,
                        delta=part,
                    )
                )
            return head
        if fault.stream_error:
            error = {
                "code": "server_error",
                "message": "The server had an error while processing your request.",
            }
            failed = {**started, "status": "failed", "error": error}
            return [*head, _event("response.failed", 1, response=failed)]
        return [*head, 'event: response.in_progress\ndata: {"type": "response.in_progress", "seq']

    def partial_body(self, body: dict[str, Any]) -> str:
        response = LLMResponse(content="This answer is cut off")
        return json.dumps(
            response_json(response, str(body.get("model")), output_items(response, encrypted=False))
        )


# --- request --------------------------------------------------------------------------------


def _add_item(messages: list[Message], item: dict[str, Any], *, stored: bool) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role, content = item["role"], item["content"]
        if not isinstance(content, str):
            content = "".join(p.get("text", "") for p in content)
        last = messages[-1] if messages else None
        if (
            role == "assistant"
            and last is not None
            and last.role == "assistant"
            and not (last.content or last.tool_calls)
        ):  # the message that follows its reasoning item
            messages[-1] = Message(
                role="assistant", content=content or None, reasoning=last.reasoning
            )
        elif role == "assistant":
            messages.append(Message(role="assistant", content=content or None))
        elif role == "user":
            messages.append(Message(role="user", content=content))
        else:
            raise Rejected(
                400,
                f"Invalid value: '{role}'. Supported values are: 'user' and 'assistant' in input messages here.",
            )
    elif kind == "function_call":
        call = ToolCall(id=item["call_id"], name=item["name"], arguments=item["arguments"])
        last = messages[-1] if messages else None
        if last is not None and last.role == "assistant":
            messages[-1] = Message(
                role="assistant",
                content=last.content,
                tool_calls=(*last.tool_calls, call),
                reasoning=last.reasoning,
            )
        else:
            messages.append(Message(role="assistant", tool_calls=(call,)))
    elif kind == "function_call_output":
        if not any(c.id == item["call_id"] for m in messages for c in m.tool_calls):
            raise Rejected(
                400, f"No tool call found for function call output with call_id {item['call_id']}."
            )
        messages.append(Message(role="tool", tool_call_id=item["call_id"], content=item["output"]))
    elif kind == "reasoning":
        _check_reasoning(item, stored=stored)
        text = "\n\n".join(s["text"] for s in item.get("summary") or ())
        messages.append(Message(role="assistant", reasoning=text or None))
    else:
        raise Rejected(400, f"Invalid input item type: '{kind}'")


def _check_reasoning(item: dict[str, Any], *, stored: bool) -> None:
    item_id = item.get("id", "")
    encrypted = item.get("encrypted_content")
    if not encrypted:
        if stored:
            return  # would be looked up by id in the store; the fake keeps none
        raise Rejected(
            404,
            f"Item with id '{item_id}' not found. Items are not persisted when `store` is set"
            " to false. Try again with `store` set to true, or remove this item from your input.",
        )
    try:
        issued = json.loads(base64.b64decode(encrypted))["id"]
    except (ValueError, KeyError, TypeError):
        issued = None
    if issued != item_id:
        raise Rejected(
            400,
            f"The encrypted content for item {item_id} could not be verified. Reason:"
            " Encrypted content item_id did not match the target item id.",
        )


# --- response -------------------------------------------------------------------------------


def output_items(response: LLMResponse, *, encrypted: bool) -> list[dict[str, Any]]:
    """The answer as ``output`` items: reasoning, message, function calls."""
    items: list[dict[str, Any]] = []
    if response.reasoning:
        rs_id = "rs_" + _digest(response.reasoning)
        reasoning: dict[str, Any] = {
            "type": "reasoning",
            "id": rs_id,
            "summary": [{"type": "summary_text", "text": response.reasoning}],
        }
        if encrypted:
            reasoning["encrypted_content"] = encrypted_content(rs_id, response.reasoning)
        items.append(reasoning)
    if response.content:
        items.append(
            {
                "type": "message",
                "id": "msg_" + _digest(response.content),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": response.content, "annotations": []}],
            }
        )
    for call in response.tool_calls:
        items.append(
            {
                "type": "function_call",
                "id": "fc_" + _digest(call.id),
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
        )
    return items


def response_json(
    response: LLMResponse, model: str, output: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ``response`` object."""
    u = response.usage
    incomplete = response.finish_reason == "length"
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": CREATED,
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "model": model,
        "output": output,
        "store": False,
        "usage": {
            "input_tokens": u.input_tokens,
            "input_tokens_details": {"cached_tokens": u.cache_read_tokens},
            "output_tokens": u.output_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.input_tokens + u.output_tokens,
        },
    }


def _event(kind: str, sequence: int, **fields: Any) -> str:
    return event({"type": kind, "sequence_number": sequence, **fields}, kind)


def stream_events(done: dict[str, Any]) -> list[str]:
    """The event stream that builds the ``response`` object ``done``."""
    started = {**done, "status": "in_progress", "output": [], "usage": None}
    out = [
        _event("response.created", 0, response=started),
        _event("response.in_progress", 1, response=started),
    ]

    def emit(kind: str, **fields: Any) -> None:
        out.append(_event(kind, len(out), **fields))

    for index, item in enumerate(done["output"]):
        at = {"output_index": index}
        kind = item["type"]
        if kind == "message":
            emit(
                "response.output_item.added",
                **at,
                item={**item, "status": "in_progress", "content": []},
            )
            part = item["content"][0]
            where = {"item_id": item["id"], **at, "content_index": 0}
            emit("response.content_part.added", **where, part={**part, "text": ""})
            for piece in split(part["text"]):
                emit("response.output_text.delta", **where, delta=piece)
            emit("response.output_text.done", **where, text=part["text"])
            emit("response.content_part.done", **where, part=part)
        elif kind == "function_call":
            emit(
                "response.output_item.added",
                **at,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for piece in split(item["arguments"], pad=True):
                emit(
                    "response.function_call_arguments.delta", item_id=item["id"], **at, delta=piece
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                **at,
                arguments=item["arguments"],
            )
        else:
            emit("response.output_item.added", **at, item={**item, "summary": []})
        emit("response.output_item.done", **at, item=item)
    emit("response.completed", response=done)
    return out


def _error(status: int, message: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    code = "invalid_api_key" if status == 401 else None
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
        headers=headers,
    )
