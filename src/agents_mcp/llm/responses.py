"""The OpenAI Responses API adapter (``provider = "responses"``), stateless.

``POST {base_url}/responses`` as OpenAI documents it, with ``store: false``: nothing is
kept on the provider's side and no ``previous_response_id`` is used; every request carries
the thread's transcript as ``input`` items, so any Responses-compatible server works too.

* the instructions go in ``instructions``; tools are ``{"type": "function", name,
  description, parameters, "strict": false}`` (MCP schemas rarely meet strict mode's rules);
* ``input`` items: ``message`` (user and assistant text), ``function_call`` and
  ``function_call_output``; an answer's ``output`` items are read back the same way;
* reasoning items: with ``store: false`` a reasoning item can only go back with its
  ``encrypted_content``, so ``include: ["reasoning.encrypted_content"]`` is asked for.
  The items that carry it become the reasoning payload, kept with the ids of the answer's
  message and calls that followed them (the API checks that pairing), and go back only to
  this provider. Their summaries become the readable ``reasoning``. An endpoint that
  refuses the ``include`` (models without reasoning may) is asked again without it, and
  not asked for it again;
* streaming events: ``response.output_text.delta`` goes to ``on_text``;
  ``response.output_item.done`` and ``response.completed`` (with usage) carry the answer;
  ``response.failed``, ``response.incomplete`` and ``error`` end it.

A structured answer (``output_schema``) is asked for as a strict ``json_schema``
``text.format`` when the schema meets strict mode's rules, else in the instructions.

Agent ``params``: ``max_tokens`` is sent as ``max_output_tokens``, ``response_format`` as
``text.format``, a function ``tool_choice`` in this API's shape; ``stop`` and ``seed`` have
no equivalent and are not sent.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from agents_mcp import structured
from agents_mcp.errors import LLMError
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

PROVIDER = "responses"
ENCRYPTED_REASONING = "reasoning.encrypted_content"

_RETRY_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "server_is_overloaded", "slow_down"}
)
_CODE_STATUS = {"rate_limit_exceeded": 429, "server_error": 500, "server_is_overloaded": 503}
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
_UNSUPPORTED_SETTINGS = frozenset({"stop", "seed"})
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})

Item = dict[str, Any]


class ResponsesModel(HTTPModel):
    """An :class:`~agents_mcp.llm.LLM` speaking the OpenAI Responses API, without server state."""

    provider = PROVIDER
    path = "/responses"
    encrypted_reasoning = True
    """Ask for ``reasoning.encrypted_content``; turned off when the endpoint refuses it."""

    conversation = "input"

    @functools.cached_property
    def _wire(self) -> WireCache[list[Item]]:
        return WireCache(_wire_items)

    @property
    def wire_cache(self) -> WireCache[list[Item]]:
        return self._wire

    def build_body(self, request: LLMRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        body: dict[str, Any] = {"model": self.model}
        schema = request.output_schema
        native = schema is not None and structured.strict_compatible(schema)
        system = request.system
        if schema is not None and not native:
            system = "\n\n".join(p for p in (system, structured.instructions(schema)) if p)
        if system:
            body["instructions"] = system
        body["input"] = [item for m in request.messages for item in self._wire.get(m)]
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters),
                    "strict": False,
                }
                for t in request.tools
            ]
        body["store"] = False
        body["stream"] = stream
        if self.encrypted_reasoning:
            body["include"] = [ENCRYPTED_REASONING]
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_output_tokens"] = self.max_tokens
        body.update(self.extra)
        body.update(_settings(request.settings))
        if schema is not None and native:
            text = body.get("text")
            body["text"] = {**(text if isinstance(text, dict) else {}), "format": _format(schema)}
        return body

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        try:
            return await super().complete(request, on_text=on_text)
        except LLMError as exc:
            if not (self.encrypted_reasoning and _refuses_encrypted_include(exc)):
                raise
        log.info("%s refuses %r; asking without it from now on", self.base_url, ENCRYPTED_REASONING)
        self.encrypted_reasoning = False
        return await super().complete(request, on_text=on_text)

    def parse_body(self, payload: dict[str, Any]) -> LLMResponse:
        if "output" not in payload and payload.get("error"):
            raise self._error(payload["error"])
        return self._parse_response(payload)

    async def read_stream(
        self, events: AsyncIterator[ServerSentEvent], on_text: TextCallback | None
    ) -> LLMResponse:
        items = _StreamedItems()
        final: dict[str, Any] | None = None
        async for event in events:
            if final is not None:
                continue  # read on to the end: see read_events
            data = as_dict(loads(event.data, f"{event.event} event"), f"{event.event} event")
            kind = data.get("type")
            if kind in ("response.output_text.delta", "response.refusal.delta"):
                text = items.text(data)
                if text and on_text is not None:
                    await on_text(text)
            elif kind == "response.function_call_arguments.delta":
                items.arguments(data)
            elif kind in ("response.output_item.added", "response.output_item.done"):
                items.item(data, done=kind == "response.output_item.done")
            elif kind in _FINAL_EVENTS:
                final = as_dict(data.get("response"), f"{kind}.response")
            elif kind == "response.failed":
                response = as_dict(data.get("response"), "response.failed.response")
                raise self._error(response.get("error"))
            elif kind == "error":
                raise self._error(data)
        if final is None:
            raise self.truncated()
        if not as_list(final.get("output"), "output"):
            final = {**final, "output": items.output()}
        return self._parse_response(final)

    def _parse_response(self, response: dict[str, Any]) -> LLMResponse:
        if response.get("status") == "failed":
            raise self._error(response.get("error"))
        answer = _Answer()
        for raw in as_list(response.get("output"), "output"):
            answer.add(as_dict(raw, "output item"))
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return answer.result(_usage(response.get("usage")), reason)

    def _error(self, error: Any) -> Exception:
        code = error.get("code") if isinstance(error, dict) else None
        detail = error_text(error) or json.dumps(error)[:300]
        if isinstance(code, str) and code:
            detail = f"{code}: {detail}"
        status = _CODE_STATUS.get(code) if isinstance(code, str) else None
        return self.provider_error(detail, status=status, retry=code in _RETRY_CODES)


def _refuses_encrypted_include(exc: LLMError) -> bool:
    text = str(exc).lower()
    return exc.status == 400 and "encrypted" in text and ("support" in text or "include" in text)


# --- request --------------------------------------------------------------------------------


def _wire_items(m: Message) -> list[Item]:
    if m.role == "user":
        return [{"type": "message", "role": "user", "content": m.content or ""}]
    if m.role == "tool":
        return [
            {
                "type": "function_call_output",
                "call_id": m.tool_call_id or "",
                "output": m.content or "",
            }
        ]
    calls = [_function_call(c) for c in m.tool_calls]
    text = [{"type": "message", "role": "assistant", "content": m.content}] if m.content else []
    payload = m.reasoning_payload
    if payload is None or payload.provider != PROVIDER or not isinstance(payload.data, list):
        return text + calls
    # The answer's items in their original order: reasoning items as they came; the
    # message and calls that followed them with the ids they had, which the encrypted
    # reasoning is checked against.
    out: list[Item] = []
    for item in payload.data:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "reasoning":
            out.append(item)
        elif kind == "message" and text:
            text.pop()
            content: list[Item] = [{"type": "output_text", "text": m.content, "annotations": []}]
            out.append(
                {
                    "type": "message",
                    "role": "assistant",
                    "id": item.get("id"),
                    "status": "completed",
                    "content": content,
                }
            )
        elif kind == "function_call" and calls:
            out.append({**calls.pop(0), "id": item.get("id")})
    return out + text + calls


def _function_call(call: ToolCall) -> Item:
    return {
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
    }


def _settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key in _UNSUPPORTED_SETTINGS:
            log.debug("responses: %r has no Responses API equivalent; not sent", key)
        elif key == "max_tokens":
            out["max_output_tokens"] = value
        elif key == "response_format":
            out["text"] = {"format": _text_format(value)}
        elif key == "tool_choice":
            out["tool_choice"] = _tool_choice(value)
        else:
            out[key] = value
    return out


def _text_format(value: Any) -> Any:
    if isinstance(value, dict) and value.get("type") == "json_schema":
        spec = value.get("json_schema")
        if isinstance(spec, dict):
            return {"type": "json_schema", **spec}
    return value


def _format(schema: Mapping[str, Any]) -> Item:
    """A schema strict mode takes, as the Responses API's ``text.format``."""
    return {
        "type": "json_schema",
        "name": structured.name_of(schema),
        "schema": structured.wire_schema(schema),
        "strict": True,
    }


def _tool_choice(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        return {"type": "function", "name": value["function"].get("name")}
    return value


# --- response -------------------------------------------------------------------------------


class _Answer:
    """Output items turned into an LLMResponse."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.thoughts: list[str] = []
        self.calls: list[ToolCall] = []
        self.layout: list[Item] = []
        self.reasoned = False
        self.refused = False

    def add(self, item: Item) -> None:
        kind = item.get("type")
        if kind == "message":
            for raw in as_list(item.get("content"), "message content"):
                part = as_dict(raw, "content part")
                if part.get("type") == "output_text":
                    self.text.append(opt_str(part.get("text"), "output_text.text"))
                elif part.get("type") == "refusal":
                    self.text.append(opt_str(part.get("refusal"), "refusal"))
                    self.refused = True
            self.layout.append({"type": "message", "id": item.get("id")})
        elif kind == "function_call":
            call = ToolCall(
                id=opt_str(item.get("call_id"), "function_call.call_id"),
                name=opt_str(item.get("name"), "function_call.name"),
                arguments=opt_str(item.get("arguments"), "function_call.arguments") or "{}",
            )
            self.calls.append(call)
            self.layout.append({"type": "function_call", "id": item.get("id")})
        elif kind == "reasoning":
            for key in ("summary", "content"):
                for raw in as_list(item.get(key), f"reasoning.{key}"):
                    text = as_dict(raw, f"reasoning.{key} part").get("text")
                    if isinstance(text, str) and text:
                        self.thoughts.append(text)
            # Without encrypted content a reasoning item cannot go back (store is false).
            if item.get("encrypted_content"):
                self.layout.append(item)
                self.reasoned = True

    def result(self, usage: Usage, incomplete: Any) -> LLMResponse:
        if isinstance(incomplete, str) and incomplete:
            finish = _INCOMPLETE.get(incomplete, incomplete)
        elif self.refused:
            finish = "content_filter"
        else:
            finish = "tool_calls" if self.calls else "stop"
        return LLMResponse(
            content="".join(self.text) or None,
            tool_calls=tuple(self.calls),
            reasoning="\n\n".join(self.thoughts) or None,
            reasoning_payload=ReasoningPayload(PROVIDER, self.layout) if self.reasoned else None,
            usage=usage,
            finish_reason=finish,
        )


class _StreamedItems:
    """Output items as the stream builds them, for a final event that does not repeat them."""

    def __init__(self) -> None:
        self._items: dict[int, Item] = {}
        self._done: set[int] = set()
        self._text: dict[int, list[str]] = {}
        self._args: dict[int, list[str]] = {}

    def text(self, event: dict[str, Any]) -> str:
        delta = opt_str(event.get("delta"), "delta")
        self._text.setdefault(_output_index(event), []).append(delta)
        return delta

    def arguments(self, event: dict[str, Any]) -> None:
        delta = opt_str(event.get("delta"), "delta")
        self._args.setdefault(_output_index(event), []).append(delta)

    def item(self, event: dict[str, Any], *, done: bool) -> None:
        index = _output_index(event)
        self._items[index] = as_dict(event.get("item"), "item")
        if done:
            self._done.add(index)

    def output(self) -> list[Item]:
        out: list[Item] = []
        for index, item in sorted(self._items.items()):
            if index not in self._done:
                if item.get("type") == "function_call":
                    item = {**item, "arguments": "".join(self._args.get(index, ()))}
                elif item.get("type") == "message":
                    text = "".join(self._text.get(index, ()))
                    item = {**item, "content": [{"type": "output_text", "text": text}]}
            out.append(item)
        return out


def _output_index(event: dict[str, Any]) -> int:
    index = event.get("output_index")
    if not isinstance(index, int):
        raise Malformed(f"{event.get('type')} event has no output_index")
    return index


def _usage(value: Any) -> Usage:
    if not isinstance(value, dict):
        return Usage()
    details = value.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    out = value.get("output_tokens_details")
    reasoning = out.get("reasoning_tokens") if isinstance(out, dict) else None
    return Usage(
        input_tokens=opt_int(value.get("input_tokens")),
        output_tokens=opt_int(value.get("output_tokens")),
        cache_read_tokens=opt_int(cached),
        reasoning_tokens=opt_int(reasoning),
    )
