"""The LLM seen by the loop (one async ``complete()``) and its OpenAI-compatible adapter."""

from __future__ import annotations

import email.utils
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import httpx2

from agents_mcp.errors import LLMError
from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall, Usage

TextCallback = Callable[[str], Awaitable[None]]
"""Called with each streamed text fragment as it arrives."""


class LLM(Protocol):
    """Anything that can answer an :class:`LLMRequest`."""

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse: ...


# --- OpenAI-compatible Chat Completions adapter -------------------------------------------

log = logging.getLogger("agents_mcp.llm")

Sleep = Callable[[float], Awaitable[None]]

_MAX_BACKOFF = 20.0
_MAX_RETRY_AFTER = 60.0
_RETRY_STATUSES = frozenset({408, 409, 429})
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


class _Retryable(Exception):
    """An attempt failed in a way worth repeating; ``error`` is raised once retries run out."""

    def __init__(self, error: LLMError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class _Malformed(Exception):
    """The provider answered with something that is not a Chat Completions payload."""


class OpenAIChatModel:
    """An :class:`LLM` speaking the OpenAI-compatible ``/chat/completions`` wire format.

    Retries connection failures, timeouts, truncated streams and HTTP 408/409/429/5xx.
    When a truncated stream is retried, ``on_text`` sees the repeated beginning again.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float = 120.0,
        extra: Mapping[str, Any] | None = None,
        max_retries: int = 3,
        stream: bool = True,
        transport: httpx2.AsyncBaseTransport | None = None,
        backoff: float = 0.5,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.extra: dict[str, Any] = dict(extra or {})
        self.max_retries = max_retries
        self.stream = stream
        self.backoff = backoff
        self._api_key = api_key
        self._transport = transport
        self._sleep = sleep
        self._client: httpx2.AsyncClient | None = None
        self._wire = _WireCache()

    def __repr__(self) -> str:
        return f"OpenAIChatModel(model={self.model!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> OpenAIChatModel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client (and an injected transport with it)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx2.AsyncClient:
        # Lazy: building the client creates an SSL context, which agents that never run
        # should not pay for.
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx2.AsyncClient(
                headers=headers,
                timeout=httpx2.Timeout(connect=10.0, read=self.timeout, write=30.0, pool=30.0),
                transport=self._transport,
            )
        return self._client

    def build_body(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": _wire_messages(request, self._wire),
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
        body["stream"] = self.stream
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.extra)
        body.update(request.settings)
        return body

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        """Send ``request``; stream text fragments to ``on_text``; retry transient failures."""
        body = self.build_body(request)
        attempt = 0
        while True:
            log.debug(
                "POST %s/chat/completions model=%s messages=%d attempt=%d",
                self.base_url,
                self.model,
                len(body["messages"]),
                attempt + 1,
            )
            try:
                return await self._attempt(body, on_text)
            except _Retryable as exc:
                if attempt >= self.max_retries:
                    if not attempt:
                        raise exc.error from exc.__cause__
                    msg = f"{exc.error} (gave up after {attempt + 1} attempts)"
                    raise LLMError(msg, status=exc.error.status) from exc.__cause__
                delay = min(self.backoff * 2**attempt, _MAX_BACKOFF)
                if exc.retry_after is not None:
                    delay = exc.retry_after
                log.debug("retrying in %.2fs: %s", delay, exc.error)
                await self._sleep(delay)
                attempt += 1

    async def _attempt(self, body: dict[str, Any], on_text: TextCallback | None) -> LLMResponse:
        url = f"{self.base_url}/chat/completions"
        try:
            async with self._http().stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._status_error(response)
                ctype = response.headers.get("content-type", "")
                if "text/event-stream" in ctype or (body.get("stream") and "json" not in ctype):
                    result = await self._read_stream(response, on_text)
                else:
                    payload = _as_dict(
                        _loads(await response.aread(), "response body"), "response body"
                    )
                    self._check_embedded_error(payload)
                    result = _parse_completion(payload)
                    if on_text is not None and result.content:
                        await on_text(result.content)
        except _Malformed as exc:
            msg = f"LLM response from {self.base_url} was malformed: {exc}"
            raise LLMError(self._redact(msg)) from exc
        except (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError) as exc:
            msg = f"LLM request failed: {self.base_url}: {type(exc).__name__}: {exc}"
            raise _Retryable(LLMError(self._redact(msg))) from exc
        except httpx2.HTTPError as exc:
            msg = f"LLM request failed: {self.base_url}: {type(exc).__name__}: {exc}"
            raise LLMError(self._redact(msg)) from exc
        log.debug(
            "finish_reason=%s tool_calls=%d usage=%s",
            result.finish_reason,
            len(result.tool_calls),
            result.usage,
        )
        return result

    async def _read_stream(
        self, response: httpx2.Response, on_text: TextCallback | None
    ) -> LLMResponse:
        acc = _Accumulator()
        done = False
        async for line in response.aiter_lines():
            # Only ``data:`` fields matter; comments (": keep-alive"), blank separators and
            # event/id/retry fields are skipped.
            if done or not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                # Read on to the end rather than break: an unread body makes httpx2 drop
                # the connection, and every request would pay a new (TLS) handshake.
                done = True
                continue
            chunk = _as_dict(_loads(data, "stream chunk"), "stream chunk")
            self._check_embedded_error(chunk)
            text = acc.feed_chunk(chunk)
            if text and on_text is not None:
                await on_text(text)
        tail = acc.flush()
        if tail and on_text is not None:
            await on_text(tail)
        if not done and acc.finish_reason is None:
            err = LLMError(f"LLM request failed: {self.base_url}: stream ended before completion")
            raise _Retryable(err)
        return acc.result()

    def _status_error(self, response: httpx2.Response) -> Exception:
        status = response.status_code
        detail = _provider_message(response)
        msg = self._redact(f"LLM request failed: HTTP {status} from {self.base_url}: {detail}")
        error = LLMError(msg, status=status)
        if status in _RETRY_STATUSES or status >= 500:
            return _Retryable(error, _retry_after(response.headers.get("retry-after")))
        return error

    def _check_embedded_error(self, payload: dict[str, Any]) -> None:
        # Some providers report failures inside a 200 body or as a mid-stream chunk.
        if "error" not in payload or payload.get("choices"):
            return
        error = payload["error"]
        detail = _error_text(error) or json.dumps(error)[:300]
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) else None
        msg = self._redact(f"LLM request failed: provider error from {self.base_url}: {detail}")
        if status is not None and (status in _RETRY_STATUSES or status >= 500):
            raise _Retryable(LLMError(msg, status=status))
        raise LLMError(msg, status=status)

    def _redact(self, text: str) -> str:
        # Some providers echo the key they rejected; it must never reach logs or clients.
        return text.replace(self._api_key, "***") if self._api_key else text


def _wire_messages(request: LLMRequest, cache: _WireCache | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    wire = cache.get if cache is not None else _wire_message
    out += [wire(m) for m in request.messages]
    return out


def _wire_message(m: Message) -> dict[str, Any]:
    if m.role == "user":
        return {"role": "user", "content": m.content or ""}
    if m.role == "assistant":
        # Reasoning is deliberately dropped: providers reject or mis-bill it when echoed.
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


class _WireCache:
    """Each message's wire dict, built once.

    Messages are immutable and a running thread sends the same ones again on every
    request, so a long thread would otherwise rebuild thousands of dicts per step. Keyed
    by identity; each entry holds its message, so the id cannot be reused while cached.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._items: dict[int, tuple[Message, dict[str, Any]]] = {}

    def get(self, m: Message) -> dict[str, Any]:
        hit = self._items.get(id(m))
        if hit is not None and hit[0] is m:
            return hit[1]
        wire = _wire_message(m)
        if len(self._items) >= self._size:
            del self._items[next(iter(self._items))]  # the oldest entry
        self._items[id(m)] = (m, wire)
        return wire


def _loads(data: str | bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        snippet = data[:200].decode(errors="replace") if isinstance(data, bytes) else data[:200]
        raise _Malformed(f"{what} is not valid JSON: {snippet!r}") from exc


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is not a JSON object")
    return value


def _as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Malformed(f"{what} is not a JSON array")
    return value


def _opt_str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{what} is not a string")
    return value


def _error_text(error: Any) -> str | None:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return None


def _provider_message(response: httpx2.Response) -> str:
    text = response.text
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("error", "message", "detail"):
            found = _error_text(payload.get(key))
            if found:
                return found
    text = text.strip()
    if not text:
        return response.reason_phrase or "no details"
    return text if len(text) <= 300 else text[:300] + "…"


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    return Usage(
        input_tokens=prompt if isinstance(prompt, int) else 0,
        output_tokens=completion if isinstance(completion, int) else 0,
    )


def _parse_completion(body: dict[str, Any]) -> LLMResponse:
    choices = _as_list(body.get("choices"), "choices")
    if not choices:
        raise _Malformed("response has no choices")
    choice = _as_dict(choices[0], "choices[0]")
    acc = _Accumulator()
    message = _as_dict(choice.get("message") or {}, "choices[0].message")
    acc.feed_delta(message, positional=True)
    acc.flush()
    acc.finish_reason = _opt_str(choice.get("finish_reason"), "finish_reason") or None
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
        for raw in _as_list(chunk.get("choices"), "choices"):
            choice = _as_dict(raw, "choice")
            if choice.get("index", 0) != 0:
                continue  # n > 1 is never requested; ignore stray alternatives
            text += self.feed_delta(_as_dict(choice.get("delta") or {}, "delta"))
            reason = _opt_str(choice.get("finish_reason"), "finish_reason")
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
        for position, raw in enumerate(_as_list(delta.get("tool_calls"), "tool_calls")):
            self._feed_call(_as_dict(raw, "tool call"), position if positional else None)
        content = _opt_str(delta.get("content"), "content")
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
        call_id = _opt_str(frag.get("id"), "tool call id")
        index = frag.get("index", position)
        if not isinstance(index, int):
            # No index: a new id starts a new call, anything else continues the last one.
            known = {c.id for c in self._calls.values()}
            if not self._calls or (call_id and call_id not in known):
                index = len(self._calls)
            else:
                index = max(self._calls)
        call = self._calls.setdefault(index, _PartialCall())
        function = _as_dict(frag.get("function") or {}, "tool call function")
        # id and name arrive once; keep the first so providers that repeat them don't double up.
        call.id = call.id or call_id
        call.name = call.name or _opt_str(function.get("name"), "tool call name")
        args = function.get("arguments")
        if isinstance(args, dict | list):
            args = json.dumps(args)  # a few providers send parsed arguments
        call.arguments.append(_opt_str(args, "tool call arguments"))

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
