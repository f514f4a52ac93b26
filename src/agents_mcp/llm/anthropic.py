"""The Anthropic Messages API adapter (``provider = "anthropic"``).

``POST {base_url}/messages`` with ``x-api-key`` and ``anthropic-version`` headers, as
Anthropic documents it:

* the instructions go in ``system``; tools are ``{name, description, input_schema}``;
  ``max_tokens`` is required, so it defaults to :data:`DEFAULT_MAX_TOKENS`;
* an answer is a list of content blocks: ``text``, ``tool_use`` (parallel calls are
  several), ``thinking`` (with a ``signature``) and ``redacted_thinking``;
* tool results go back as ``tool_result`` blocks in a ``user`` message; the results of one
  answer's calls (and anything else the user says next) form a single user message;
* thinking blocks are the model's reasoning: their text becomes ``reasoning``, and the
  blocks themselves, unchanged and in their place among the answer's blocks, become the
  reasoning payload. They go back with that answer on later requests (the API requires it
  while a tool-use turn is open), only to this provider;
* prompt caching: ``cache_control`` marks the end of the instructions, of the tool list
  and of the conversation so far, so each step of a run reads the previous step's prefix
  from the cache; cache reads and writes are reported in usage;
* streaming events (``message_start``, ``content_block_start``/``delta``/``stop``,
  ``message_delta``, ``message_stop``, ``ping``, ``error``); an ``overloaded_error`` (HTTP
  529, or an ``error`` event mid-stream) is retried like a 429;
* a structured answer (``output_schema`` with an object at the top) is asked for as a
  :data:`~agents_mcp.structured.ANSWER_TOOL` tool whose input schema is the schema, with
  ``tool_choice`` forcing a tool (``auto`` with thinking, which allows nothing else); the
  call of that tool comes back as the answer's text. Any other schema goes in the
  instructions.

Agent ``params`` are translated where the API names them differently (``stop`` is
``stop_sequences``, ``tool_choice`` takes ``{"type": …}``); ``seed`` and
``response_format`` have no equivalent and are not sent.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agents_mcp import structured
from agents_mcp.llm import TextCallback
from agents_mcp.llm.endpoint import (
    HTTPModel,
    Malformed,
    WireCache,
    as_dict,
    as_list,
    error_text,
    loads,
    opt_int,
    opt_str,
)
from agents_mcp.llm.sse import ServerSentEvent
from agents_mcp.messages import (
    LLMRequest,
    LLMResponse,
    Message,
    ReasoningPayload,
    ToolCall,
    Usage,
)

log = logging.getLogger("agents_mcp.llm")

PROVIDER = "anthropic"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""Sent when neither the model nor the agent sets ``max_tokens`` (the API requires one)."""

_EPHEMERAL = {"type": "ephemeral"}
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
}
# Error types of https://docs.anthropic.com/en/api/errors with the HTTP status they go with.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_REASONING_BLOCKS = frozenset({"thinking", "redacted_thinking"})
_CACHEABLE_BLOCKS = frozenset({"text", "tool_result", "tool_use"})
_UNSUPPORTED_SETTINGS = frozenset({"seed", "response_format"})

Wire = dict[str, Any]


class AnthropicModel(HTTPModel):
    """An :class:`~agents_mcp.llm.LLM` speaking Anthropic's Messages API."""

    provider = PROVIDER
    path = "/messages"
    prompt_cache = True
    """Mark the instructions, tools and conversation for Anthropic's prompt cache."""

    @functools.cached_property
    def _wire(self) -> WireCache[Wire]:
        return WireCache(_wire_message)

    @property
    def wire_cache(self) -> WireCache[Wire]:
        return self._wire

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def extra_headers(self) -> dict[str, str]:
        return {"anthropic-version": ANTHROPIC_VERSION}

    def build_body(self, request: LLMRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        cache = self.prompt_cache
        schema = request.output_schema
        by_tool = schema is not None and structured.tool_compatible(schema)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens or DEFAULT_MAX_TOKENS,
        }
        text = request.system
        if schema is not None:
            asked = structured.tool_instructions() if by_tool else structured.instructions(schema)
            text = "\n\n".join(p for p in (text, asked) if p)
        if text:
            system: Wire = {"type": "text", "text": text}
            body["system"] = [{**system, "cache_control": _EPHEMERAL} if cache else system]
        body["messages"] = _wire_messages(request.messages, self._wire, cache=cache)
        tools: list[Wire] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
            for t in request.tools
        ]
        if schema is not None and by_tool:
            tools.append(_answer_tool(schema))
        if tools:
            if cache:
                tools[-1]["cache_control"] = _EPHEMERAL
            body["tools"] = tools
        body["stream"] = stream
        if self.temperature is not None:
            body["temperature"] = self.temperature
        body.update(self.extra)
        body.update(_settings(request.settings))
        if by_tool:
            body["tool_choice"] = _answer_choice(body, has_tools=bool(request.tools))
        return body

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        response = await super().complete(request, on_text=on_text)
        schema = request.output_schema
        if schema is None or not structured.tool_compatible(schema):
            return response
        return _answer_from_tool(response)

    def parse_body(self, payload: dict[str, Any]) -> LLMResponse:
        if payload.get("type") == "error":
            raise self._error(payload.get("error"))
        blocks = _Blocks()
        for index, raw in enumerate(as_list(payload.get("content"), "content")):
            blocks.start(index, as_dict(raw, "content block"))
        usage = _UsageCounts()
        usage.update(payload.get("usage"))
        return blocks.result(opt_str(payload.get("stop_reason"), "stop_reason"), usage.total())

    async def read_stream(
        self, events: AsyncIterator[ServerSentEvent], on_text: TextCallback | None
    ) -> LLMResponse:
        blocks = _Blocks()
        usage = _UsageCounts()
        stop_reason = ""
        done = False
        async for event in events:
            if done:
                continue  # read on to the end: see read_events
            data = as_dict(loads(event.data, f"{event.event} event"), f"{event.event} event")
            kind = data.get("type")
            if kind == "content_block_delta":
                delta = as_dict(data.get("delta"), "content_block_delta.delta")
                text = blocks.delta(_index(data), delta)
                if text and on_text is not None:
                    await on_text(text)
            elif kind == "content_block_start":
                block = as_dict(data.get("content_block"), "content_block")
                blocks.start(_index(data), block, streamed=True)
            elif kind == "message_start":
                usage.update(as_dict(data.get("message"), "message").get("usage"))
            elif kind == "message_delta":
                delta = as_dict(data.get("delta") or {}, "message_delta.delta")
                stop_reason = opt_str(delta.get("stop_reason"), "stop_reason") or stop_reason
                usage.update(data.get("usage"))
            elif kind == "message_stop":
                done = True
            elif kind == "error":
                raise self._error(data.get("error"))
            # ping, content_block_stop and event types added later carry nothing we need.
        if not done:
            raise self.truncated()
        return blocks.result(stop_reason, usage.total())

    def _error(self, error: Any) -> Exception:
        kind = error.get("type") if isinstance(error, dict) else None
        detail = error_text(error) or json.dumps(error)[:300]
        status = _ERROR_STATUS.get(kind) if isinstance(kind, str) else None
        retry = kind in ("overloaded_error", "rate_limit_error", "api_error", "timeout_error")
        if isinstance(kind, str):
            detail = f"{kind}: {detail}"
        return self.provider_error(detail, status=status, retry=retry)


# --- request --------------------------------------------------------------------------------


def _wire_messages(
    messages: Sequence[Message], wire: WireCache[Wire], *, cache: bool
) -> list[Wire]:
    out: list[Wire] = []
    for m in messages:
        item = wire.get(m)
        if not item["content"]:
            continue
        if out and out[-1]["role"] == item["role"]:
            # One turn per role: tool results (and what the user says after them) become one
            # user message. A fresh dict: cached ones are shared between requests.
            out[-1] = {"role": item["role"], "content": [*out[-1]["content"], *item["content"]]}
        else:
            out.append(item)
    if cache and out:
        last = out[-1]
        *head, tail = last["content"]
        if tail.get("type") in _CACHEABLE_BLOCKS:
            out[-1] = {
                "role": last["role"],
                "content": [*head, {**tail, "cache_control": _EPHEMERAL}],
            }
    return out


def _wire_message(m: Message) -> Wire:
    if m.role == "user":
        return {"role": "user", "content": [_text(m.content)] if m.content else []}
    if m.role == "tool":
        result: Wire = {"type": "tool_result", "tool_use_id": m.tool_call_id or ""}
        if m.content:
            result["content"] = m.content
        if m.status == "error":
            result["is_error"] = True
        return {"role": "user", "content": [result]}
    return {"role": "assistant", "content": _assistant_blocks(m)}


def _assistant_blocks(m: Message) -> list[Wire]:
    calls = [_tool_use(c) for c in m.tool_calls]
    text = [_text(m.content)] if m.content else []
    payload = m.reasoning_payload
    if payload is None or payload.provider != PROVIDER or not isinstance(payload.data, list):
        return text + calls
    # The answer's blocks in their original order: thinking blocks as they came, the
    # placeholders filled with the stored text and calls (whose ids the loop may have
    # made unique).
    blocks: list[Wire] = []
    for block in payload.data:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in _REASONING_BLOCKS:
            blocks.append(block)
        elif kind == "text" and text:
            blocks.append(text.pop(0))
        elif kind == "tool_use" and calls:
            blocks.append(calls.pop(0))
    return blocks + text + calls


def _text(text: str) -> Wire:
    return {"type": "text", "text": text}


def _tool_use(call: ToolCall) -> Wire:
    try:
        args = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        args = None
    # The API takes an object; arguments the model garbled (its call failed) go back empty.
    return {
        "type": "tool_use",
        "id": call.id,
        "name": call.name,
        "input": args if isinstance(args, dict) else {},
    }


def _settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key in _UNSUPPORTED_SETTINGS:
            log.debug("anthropic: %r has no Messages API equivalent; not sent", key)
        elif key == "stop":
            out["stop_sequences"] = [value] if isinstance(value, str) else list(value)
        elif key == "tool_choice":
            out["tool_choice"] = _tool_choice(value)
        else:
            out[key] = value
    return out


def _answer_tool(schema: Mapping[str, Any]) -> Wire:
    return {
        "name": structured.ANSWER_TOOL,
        "description": structured.ANSWER_TOOL_DESCRIPTION,
        "input_schema": structured.wire_schema(schema),
    }


def _answer_choice(body: Mapping[str, Any], *, has_tools: bool) -> Wire:
    """Force a tool (the answer, or another tool first), unless thinking is on: with
    extended thinking the API accepts only ``auto`` (the instructions ask for the tool)."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type", "disabled") != "disabled":
        return {"type": "auto"}
    if has_tools:
        return {"type": "any"}
    return {"type": "tool", "name": structured.ANSWER_TOOL}


def _answer_from_tool(response: LLMResponse) -> LLMResponse:
    """The answer given through the answer tool, as the answer's text.

    Text written along with it is dropped (the answer is the JSON alone); other tool calls
    stay. In the reasoning payload the answer tool's block becomes the text block, so the
    answer goes back to the model as what it is: text, not a call awaiting a result.
    """
    answers = [c for c in response.tool_calls if c.name == structured.ANSWER_TOOL]
    if not answers:
        return response
    answer = answers[0]
    calls = tuple(c for c in response.tool_calls if c.name != structured.ANSWER_TOOL)
    payload = response.reasoning_payload
    if payload is not None and isinstance(payload.data, list):
        layout: list[Any] = []
        for block in payload.data:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_use" and block.get("id") == answer.id:
                layout.append({"type": "text"})
            elif kind != "text" and not (
                kind == "tool_use" and any(block.get("id") == a.id for a in answers)
            ):
                layout.append(block)
        payload = ReasoningPayload(payload.provider, layout)
    return replace(
        response,
        content=answer.arguments,
        tool_calls=calls,
        reasoning_payload=payload,
        finish_reason="tool_calls" if calls else "stop",
    )


def _tool_choice(value: Any) -> Any:
    if isinstance(value, str):
        return {"type": {"required": "any"}.get(value, value)}
    if isinstance(value, dict) and value.get("type") == "function":
        function = value.get("function")
        name = function.get("name") if isinstance(function, dict) else value.get("name")
        return {"type": "tool", "name": name}
    return value  # already in Anthropic's form


# --- response -------------------------------------------------------------------------------


def _index(event: dict[str, Any]) -> int:
    index = event.get("index")
    if not isinstance(index, int):
        raise Malformed(f"{event.get('type')} event has no index")
    return index


@dataclass
class _Block:
    kind: str
    fields: dict[str, Any]
    parts: list[str] = field(default_factory=list[str])
    signature: list[str] = field(default_factory=list[str])


class _Blocks:
    """Content blocks, whole or assembled from stream deltas, turned into an LLMResponse."""

    def __init__(self) -> None:
        self._blocks: dict[int, _Block] = {}

    def start(self, index: int, block: dict[str, Any], *, streamed: bool = False) -> None:
        kind = opt_str(block.get("type"), "content block type")
        item = _Block(kind, block)
        if kind == "text":
            item.parts.append(opt_str(block.get("text"), "text"))
        elif kind == "thinking":
            item.parts.append(opt_str(block.get("thinking"), "thinking"))
            item.signature.append(opt_str(block.get("signature"), "signature"))
        elif kind == "tool_use" and not streamed:
            item.parts.append(json.dumps(block.get("input") or {}))
        self._blocks[index] = item

    def delta(self, index: int, delta: dict[str, Any]) -> str:
        """Absorb one delta; return the visible text it adds."""
        block = self._blocks.get(index)
        if block is None:
            raise Malformed(f"content_block_delta for block {index}, which never started")
        kind = delta.get("type")
        if kind == "text_delta":
            text = opt_str(delta.get("text"), "text_delta.text")
            block.parts.append(text)
            return text
        if kind == "input_json_delta":
            block.parts.append(opt_str(delta.get("partial_json"), "partial_json"))
        elif kind == "thinking_delta":
            block.parts.append(opt_str(delta.get("thinking"), "thinking_delta.thinking"))
        elif kind == "signature_delta":
            block.signature.append(opt_str(delta.get("signature"), "signature"))
        return ""

    def result(self, stop_reason: str, usage: Usage) -> LLMResponse:
        text: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        layout: list[Any] = []
        reasoned = False
        for _, block in sorted(self._blocks.items()):
            if block.kind == "text":
                text.append("".join(block.parts))
                layout.append({"type": "text"})
            elif block.kind == "tool_use":
                call = ToolCall(
                    id=opt_str(block.fields.get("id"), "tool_use.id"),
                    name=opt_str(block.fields.get("name"), "tool_use.name"),
                    arguments="".join(block.parts) or json.dumps(block.fields.get("input") or {}),
                )
                calls.append(call)
                layout.append({"type": "tool_use", "id": call.id})
            elif block.kind == "thinking":
                thought = "".join(block.parts)
                thoughts.append(thought)
                signature = "".join(block.signature)
                layout.append({"type": "thinking", "thinking": thought, "signature": signature})
                reasoned = True
            elif block.kind == "redacted_thinking":
                data = opt_str(block.fields.get("data"), "redacted_thinking.data")
                layout.append({"type": "redacted_thinking", "data": data})
                reasoned = True
        return LLMResponse(
            content="".join(text) or None,
            tool_calls=tuple(calls),
            reasoning="\n\n".join(t for t in thoughts if t) or None,
            reasoning_payload=ReasoningPayload(PROVIDER, layout) if reasoned else None,
            usage=usage,
            finish_reason=_STOP_REASONS.get(stop_reason, stop_reason or None),
        )


class _UsageCounts:
    """Anthropic's usage object, as first reported and then updated (counts are cumulative)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def update(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._counts.update({k: v for k, v in usage.items() if isinstance(v, int)})

    def total(self) -> Usage:
        c = self._counts
        written = opt_int(c.get("cache_creation_input_tokens"))
        read = opt_int(c.get("cache_read_input_tokens"))
        return Usage(
            input_tokens=opt_int(c.get("input_tokens")) + written + read,
            output_tokens=opt_int(c.get("output_tokens")),
            cache_read_tokens=read,
            cache_write_tokens=written,
        )
