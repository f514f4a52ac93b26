"""A fake Anthropic Messages API (``POST /v1/messages``) backed by any :class:`LLM`.

Built from Anthropic's documented formats: the request (``system``, ``messages`` of
content blocks, ``tools`` with ``input_schema``, required ``max_tokens``), the ``message``
object, the streaming events (``message_start``, ``content_block_start``/``delta``/
``stop`` with ``text_delta``, ``input_json_delta``, ``thinking_delta``,
``signature_delta``, ``message_delta``, ``message_stop``, ``ping``, ``error``) and error
bodies (``{"type": "error", "error": {"type": …, "message": …}}``).

It also enforces the rules an adapter most easily breaks, with the API's status codes:
``x-api-key`` and ``anthropic-version`` headers, ``max_tokens``, non-empty text blocks,
a conversation that starts with a user turn, every ``tool_use`` answered by a ``tool_result`` in the next (user) turn with results
first, thinking blocks sent back with the signature they were issued with, and, with
``thinking`` enabled, a thinking block leading the assistant turn whose tool calls are
being answered.

The backing LLM's ``reasoning`` becomes a ``thinking`` block signed by this fake;
a reasoning payload tagged ``"anthropic"`` in its answer is rendered as it says (so a
test can script ``redacted_thinking``). Usage: ``input_tokens`` is reported without the
cached part, as Anthropic does, and cache reads/writes as
``cache_read_input_tokens``/``cache_creation_input_tokens``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall, ToolSpec
from agents_mcp.testing.fake_server import FakeServer, Fault, Rejected, event, split, sse

__all__ = ["FakeAnthropicServer", "signature"]

_WIRE_KEYS = frozenset({"model", "messages", "system", "tools", "stream"})
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


def signature(thinking: str) -> str:
    """The signature this fake gives (and expects back on) a thinking block."""
    return "sig_" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


class FakeAnthropicServer(FakeServer):
    """A Starlette app at ``POST /v1/messages`` (and ``/messages``).

    With ``api_key`` set, requests without ``x-api-key: <api_key>`` get a 401.
    """

    paths = ("/v1/messages", "/messages")

    def authorized(self, request: Request) -> bool:
        return request.headers.get("x-api-key") == self.api_key

    def header_problem(self, request: Request) -> str | None:
        if "anthropic-version" not in request.headers:
            return "anthropic-version: header is required"
        return None

    def error_response(self, status: int, message: str, **headers: str) -> Response:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        if status == 401:
            message = "invalid x-api-key"
        body = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_fake",
        }
        return JSONResponse(body, status, headers)

    def fault_error_status(self) -> int:
        return 529

    def parse_request(self, body: dict[str, Any]) -> LLMRequest:
        if not isinstance(body.get("max_tokens"), int):
            raise Rejected(400, "max_tokens: Field required")
        system = body.get("system") or ""
        if isinstance(system, list):
            system = "\n\n".join(block["text"] for block in system)
        turns = _turns(body["messages"])
        if turns and turns[0][0] != "user":
            raise Rejected(400, 'messages: first message must use the "user" role')
        _check_tool_results(turns)
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            _check_thinking_leads(turns)
        messages = [m for role, blocks in turns for m in _parse_turn(role, blocks)]
        tools = tuple(
            ToolSpec(
                name=t["name"],
                description=t.get("description") or "",
                parameters=t.get("input_schema") or {},
            )
            for t in body.get("tools") or ()
        )
        settings = {k: v for k, v in body.items() if k not in _WIRE_KEYS}
        return LLMRequest(system=system, messages=messages, tools=tools, settings=settings)

    def render(self, response: LLMResponse, body: dict[str, Any]) -> Response:
        model = str(body.get("model"))
        blocks = content_blocks(response)
        if not self.streams(body):
            return JSONResponse(message_json(response, model, blocks))
        return sse(stream_events(response, model, blocks))

    def fault_events(self, fault: Fault, body: dict[str, Any]) -> list[str]:
        head = _start_events(LLMResponse(content=None), str(body.get("model")))
        if fault.truncate:
            text = [_delta(0, {"type": "text_delta", "text": p}) for p in split("This is cut o")]
            return [*head, _block_start(0, {"type": "text", "text": ""}), *text]
        if fault.stream_error:
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            return [*head, event(error, "error")]
        return [*head, 'event: content_block_start\ndata: {"type": "content_block_start", "ind']

    def partial_body(self, body: dict[str, Any]) -> str:
        response = LLMResponse(content="This answer is cut off")
        return json.dumps(message_json(response, str(body.get("model")), content_blocks(response)))


# --- request checks -------------------------------------------------------------------------


def _turns(messages: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Messages as (role, blocks), consecutive same-role messages combined (as the API does)."""
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for i, m in enumerate(messages):
        role, content = m["role"], m["content"]
        if role not in ("user", "assistant"):
            raise Rejected(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for j, block in enumerate(blocks):
            if block.get("type") == "text" and not block.get("text"):
                raise Rejected(
                    400, f"messages.{i}.content.{j}: text content blocks must be non-empty"
                )
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, list(blocks)))
    return turns


def _check_tool_results(turns: list[tuple[str, list[dict[str, Any]]]]) -> None:
    for i, (role, blocks) in enumerate(turns):
        if role != "assistant":
            continue
        uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        if not uses:
            continue
        after = turns[i + 1][1] if i + 1 < len(turns) else None
        if after is None:
            continue  # the conversation ends with the calls: fine for a request
        results = [str(b.get("tool_use_id")) for b in after if b.get("type") == "tool_result"]
        kinds = [b.get("type") for b in after]
        leading = kinds[: len(results)]
        if sorted(results) != sorted(uses) or any(k != "tool_result" for k in leading):
            raise Rejected(
                400,
                f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks"
                f" immediately after: {', '.join(uses)}. Each `tool_use` block must have a"
                " corresponding `tool_result` block in the next message, first in its content.",
            )


def _check_thinking_leads(turns: list[tuple[str, list[dict[str, Any]]]]) -> None:
    # The assistant turn whose tool calls the last user turn answers must start with its
    # thinking, unchanged.
    if len(turns) < 2 or turns[-1][0] != "user":
        return
    role, blocks = turns[-2]
    answered = any(b.get("type") == "tool_result" for b in turns[-1][1])
    if role != "assistant" or not answered:
        return
    first = blocks[0].get("type") if blocks else None
    if first not in ("thinking", "redacted_thinking"):
        raise Rejected(
            400,
            f"messages.{len(turns) - 2}.content.0.type: Expected `thinking` or"
            f" `redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final"
            " `assistant` message must start with a thinking block.",
        )


def _parse_turn(role: str, blocks: list[dict[str, Any]]) -> list[Message]:
    if role == "user":
        out: list[Message] = []
        for block in blocks:
            if block["type"] == "tool_result":
                content = block.get("content")
                if isinstance(content, list):
                    content = "".join(p.get("text", "") for p in content)
                out.append(
                    Message(
                        role="tool",
                        tool_call_id=block["tool_use_id"],
                        content=content,
                        status="error" if block.get("is_error") else "complete",
                    )
                )
            elif block["type"] == "text":
                out.append(Message(role="user", content=block["text"]))
        return out
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    for block in blocks:
        kind = block["type"]
        if kind == "text":
            text.append(block["text"])
        elif kind == "tool_use":
            calls.append(
                ToolCall(id=block["id"], name=block["name"], arguments=json.dumps(block["input"]))
            )
        elif kind == "thinking":
            if block.get("signature") != signature(block["thinking"]):
                raise Rejected(400, "Invalid `signature` in `thinking` block")
            thoughts.append(block["thinking"])
    return [
        Message(
            role="assistant",
            content="".join(text) or None,
            tool_calls=tuple(calls),
            reasoning="\n\n".join(thoughts) or None,
        )
    ]


# --- response rendering ---------------------------------------------------------------------


def content_blocks(response: LLMResponse) -> list[dict[str, Any]]:
    """The answer as the content blocks of a ``message``."""
    text = [{"type": "text", "text": response.content}] if response.content else []
    calls = [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": _input(c.arguments)}
        for c in response.tool_calls
    ]
    payload = response.reasoning_payload
    if payload is not None and payload.provider == "anthropic":
        blocks: list[dict[str, Any]] = []
        for block in payload.data:
            if block["type"] in ("thinking", "redacted_thinking"):
                blocks.append(block)
            elif block["type"] == "text" and text:
                blocks.append(text.pop(0))
            elif block["type"] == "tool_use" and calls:
                blocks.append(calls.pop(0))
        return blocks + text + calls
    thinking = []
    if response.reasoning:
        thought = response.reasoning
        thinking = [{"type": "thinking", "thinking": thought, "signature": signature(thought)}]
    return thinking + text + calls


def _input(arguments: str) -> Any:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _usage_json(response: LLMResponse) -> dict[str, int]:
    u = response.usage
    return {
        "input_tokens": u.input_tokens - u.cache_read_tokens - u.cache_write_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "output_tokens": u.output_tokens,
    }


def _stop_reason(response: LLMResponse) -> str:
    reason = response.finish_reason or ("tool_calls" if response.tool_calls else "stop")
    return _STOP.get(reason, reason)


def message_json(response: LLMResponse, model: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streaming ``message`` object."""
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": _stop_reason(response),
        "stop_sequence": None,
        "usage": _usage_json(response),
    }


def _start_events(response: LLMResponse, model: str) -> list[str]:
    message = {**message_json(response, model, []), "stop_reason": None}
    message["usage"] = {**message["usage"], "output_tokens": 1}
    return [event({"type": "message_start", "message": message}, "message_start"), _ping()]


def _ping() -> str:
    return event({"type": "ping"}, "ping")


def _block_start(index: int, block: dict[str, Any]) -> str:
    return event(
        {"type": "content_block_start", "index": index, "content_block": block},
        "content_block_start",
    )


def _delta(index: int, delta: dict[str, Any]) -> str:
    return event(
        {"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta"
    )


def stream_events(response: LLMResponse, model: str, blocks: list[dict[str, Any]]) -> list[str]:
    """The answer as the event stream Anthropic sends for it."""
    events = _start_events(response, model)
    for index, block in enumerate(blocks):
        kind = block["type"]
        if kind == "text":
            events.append(_block_start(index, {"type": "text", "text": ""}))
            events += [
                _delta(index, {"type": "text_delta", "text": p}) for p in split(block["text"])
            ]
        elif kind == "thinking":
            events.append(_block_start(index, {"type": "thinking", "thinking": ""}))
            events += [
                _delta(index, {"type": "thinking_delta", "thinking": p})
                for p in split(block["thinking"])
            ]
            events.append(
                _delta(index, {"type": "signature_delta", "signature": block["signature"]})
            )
        elif kind == "tool_use":
            events.append(_block_start(index, {**block, "input": {}}))
            events += [
                _delta(index, {"type": "input_json_delta", "partial_json": p})
                for p in split(json.dumps(block["input"]), pad=True)
            ]
        else:  # redacted_thinking arrives whole
            events.append(_block_start(index, block))
        events.append(event({"type": "content_block_stop", "index": index}, "content_block_stop"))
    delta = {"stop_reason": _stop_reason(response), "stop_sequence": None}
    usage = {"output_tokens": response.usage.output_tokens}
    events.append(event({"type": "message_delta", "delta": delta, "usage": usage}, "message_delta"))
    events.append(event({"type": "message_stop"}, "message_stop"))
    return events
