"""The OpenAI-compatible Chat Completions adapter (``provider = "openai"``).

Speaks ``POST {base_url}/chat/completions`` as OpenAI documents it, which OpenAI, Ollama,
vLLM, llama.cpp and most gateways accept: ``messages`` with ``system``/``user``/
``assistant``/``tool`` roles, ``tools`` as functions, streamed ``chat.completion.chunk``
deltas ending in ``data: [DONE]``. Reasoning some servers add (``reasoning_content``,
``reasoning``, a leading ``<think>`` block) is captured but never sent back: this API has no
place for it, and no reasoning payload is made here.

A structured answer (``output_schema``) is asked for as ``response_format`` with a strict
``json_schema`` when the schema meets strict mode's rules, else in the instructions.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
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
from agents_mcp.llm.retry import retryable_status
from agents_mcp.llm.sse import ServerSentEvent
from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall, Usage

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


class OpenAIChatModel(HTTPModel):
    """An :class:`~agents_mcp.llm.LLM` speaking the OpenAI-compatible ``/chat/completions`` format."""

    provider = "openai"
    path = "/chat/completions"

    @functools.cached_property
    def _wire(self) -> WireCache[dict[str, Any]]:
        return WireCache(_wire_message)

    @property
    def wire_cache(self) -> WireCache[dict[str, Any]]:
        return self._wire

    def build_body(self, request: LLMRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        schema = request.output_schema
        native = schema is not None and structured.strict_compatible(schema)
        system = request.system
        if schema is not None and not native:
            system = "\n\n".join(p for p in (system, structured.instructions(schema)) if p)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": _wire_messages(system, request.messages, self._wire),
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters),
                    },
                }
                for t in request.tools
            ]
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.extra)
        body.update(request.settings)
        if schema is not None and native:
            body["response_format"] = _response_format(schema)
        return body

    def parse_body(self, payload: dict[str, Any]) -> LLMResponse:
        self._check_embedded_error(payload)
        return _parse_completion(payload)

    async def read_stream(
        self, events: AsyncIterator[ServerSentEvent], on_text: TextCallback | None
    ) -> LLMResponse:
        acc = _Accumulator()
        done = False
        async for event in events:
            if done:
                continue  # read on to the end: see read_events
            if event.data == "[DONE]":
                done = True
                continue
            chunk = as_dict(loads(event.data, "stream chunk"), "stream chunk")
            self._check_embedded_error(chunk)
            text = acc.feed_chunk(chunk)
            if text and on_text is not None:
                await on_text(text)
        tail = acc.flush()
        if tail and on_text is not None:
            await on_text(tail)
        if not done and acc.finish_reason is None:
            raise self.truncated()
        return acc.result()

    def _check_embedded_error(self, payload: dict[str, Any]) -> None:
        # Some providers report failures inside a 200 body or as a mid-stream chunk.
        if "error" not in payload or payload.get("choices"):
            return
        error = payload["error"]
        detail = error_text(error) or json.dumps(error)[:300]
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) else None
        retry = status is not None and retryable_status(status)
        raise self.provider_error(detail, status=status, retry=retry)


def _wire_messages(
    system: str, messages: Sequence[Message], cache: WireCache[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    wire = cache.get if cache is not None else _wire_message
    out += [wire(m) for m in messages]
    return out


def _response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A schema strict mode takes, as Chat Completions' ``response_format``."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": structured.name_of(schema),
            "schema": structured.wire_schema(schema),
            "strict": True,
        },
    }


def _wire_message(m: Message) -> dict[str, Any]:
    if m.role == "user":
        return {"role": "user", "content": m.content or ""}
    if m.role == "assistant":
        # Reasoning is deliberately dropped: providers reject or mis-bill it when echoed,
        # and a reasoning payload belongs to another API.
        item: dict[str, Any] = {"role": "assistant", "content": m.content or None}
        if m.tool_calls:
            item["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in m.tool_calls
            ]
        return item
    return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content or ""}


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    details = value.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    out = value.get("completion_tokens_details")
    reasoning = out.get("reasoning_tokens") if isinstance(out, dict) else None
    return Usage(
        input_tokens=opt_int(value.get("prompt_tokens")),
        output_tokens=opt_int(value.get("completion_tokens")),
        cache_read_tokens=opt_int(cached),
        reasoning_tokens=opt_int(reasoning),
    )


def _parse_completion(body: dict[str, Any]) -> LLMResponse:
    choices = as_list(body.get("choices"), "choices")
    if not choices:
        raise Malformed("response has no choices")
    choice = as_dict(choices[0], "choices[0]")
    acc = _Accumulator()
    message = as_dict(choice.get("message") or {}, "choices[0].message")
    acc.feed_delta(message, positional=True)
    acc.flush()
    acc.finish_reason = opt_str(choice.get("finish_reason"), "finish_reason") or None
    acc.usage = _usage(body.get("usage"))
    return acc.result()


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list[str])


class _ThinkFilter:
    """Moves a leading ``<think>…</think>`` block out of (streamed) content."""

    def __init__(self) -> None:
        # start: undecided; think: inside the block; strip: dropping whitespace after it;
        # text: pass-through.
        self._state = "start"
        self._buf = ""
        self.thought: str | None = None

    def feed(self, text: str) -> str:
        if self._state == "text":
            return text
        self._buf += text
        if self._state == "start":
            head = self._buf.lstrip()
            if head.startswith(_THINK_OPEN):
                self._state, self._buf = "think", head[len(_THINK_OPEN) :]
            elif not head or _THINK_OPEN.startswith(head):
                return ""  # could still become "<think>"
            else:
                self._state = "text"
                out, self._buf = self._buf, ""
                return out
        if self._state == "think":
            end = self._buf.find(_THINK_CLOSE)
            if end < 0:
                return ""
            self.thought = self._buf[:end].strip()
            self._state, self._buf = "strip", self._buf[end + len(_THINK_CLOSE) :]
        rest, self._buf = self._buf.lstrip(), ""
        if rest:
            self._state = "text"
        return rest

    def flush(self) -> str:
        out, self._buf = self._buf, ""
        if self._state == "think":
            # An unclosed block (e.g. cut off by max_tokens) is still reasoning, not answer.
            self.thought = out.strip()
            return ""
        return out if self._state == "start" else ""


class _Accumulator:
    """Assembles streamed deltas (or one non-streamed message) into an :class:`LLMResponse`."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._think = _ThinkFilter()
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def feed_chunk(self, chunk: dict[str, Any]) -> str:
        """Absorb one stream chunk; return the visible text it adds."""
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        text = ""
        for raw in as_list(chunk.get("choices"), "choices"):
            choice = as_dict(raw, "choice")
            if choice.get("index", 0) != 0:
                continue  # n > 1 is never requested; ignore stray alternatives
            text += self.feed_delta(as_dict(choice.get("delta") or {}, "delta"))
            reason = opt_str(choice.get("finish_reason"), "finish_reason")
            if reason:
                self.finish_reason = reason
        return text

    def feed_delta(self, delta: dict[str, Any], *, positional: bool = False) -> str:
        """Absorb a delta (or a whole message); return the visible text it adds."""
        for key in ("reasoning_content", "reasoning"):
            part = delta.get(key)
            if isinstance(part, str) and part:
                self._reasoning.append(part)
                break
        for position, raw in enumerate(as_list(delta.get("tool_calls"), "tool_calls")):
            self._feed_call(as_dict(raw, "tool call"), position if positional else None)
        content = opt_str(delta.get("content"), "content")
        if not content:
            return ""
        text = self._think.feed(content)
        self._content.append(text)
        return text

    def flush(self) -> str:
        """End of content: release anything the think filter held back."""
        text = self._think.flush()
        self._content.append(text)
        return text

    def _feed_call(self, frag: dict[str, Any], position: int | None) -> None:
        call_id = opt_str(frag.get("id"), "tool call id")
        index = frag.get("index", position)
        if not isinstance(index, int):
            # No index: a new id starts a new call, anything else continues the last one.
            known = {c.id for c in self._calls.values()}
            if not self._calls or (call_id and call_id not in known):
                index = len(self._calls)
            else:
                index = max(self._calls)
        call = self._calls.setdefault(index, _PartialCall())
        function = as_dict(frag.get("function") or {}, "tool call function")
        # id and name arrive once; keep the first so providers that repeat them don't double up.
        call.id = call.id or call_id
        call.name = call.name or opt_str(function.get("name"), "tool call name")
        args = function.get("arguments")
        if isinstance(args, dict | list):
            args = json.dumps(args)  # a few providers send parsed arguments
        call.arguments.append(opt_str(args, "tool call arguments"))

    def result(self) -> LLMResponse:
        parts = ["".join(self._reasoning)] if self._reasoning else []
        if self._think.thought:
            parts.append(self._think.thought)
        calls = tuple(
            ToolCall(
                id=c.id or f"call_{uuid.uuid4().hex[:24]}",
                name=c.name,
                arguments="".join(c.arguments),
            )
            for _, c in sorted(self._calls.items())
        )
        return LLMResponse(
            content="".join(self._content) or None,
            tool_calls=calls,
            reasoning="\n\n".join(parts) or None,
            usage=self.usage or Usage(),
            finish_reason=self.finish_reason,
        )
