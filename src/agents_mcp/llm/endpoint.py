"""What every HTTP model adapter shares: the client, one attempt, errors, retries, the wire cache.

A provider module subclasses :class:`HTTPModel` and supplies its path, its auth headers,
the request body (:meth:`HTTPModel.build_body`), and how to read a whole answer
(:meth:`HTTPModel.parse_body`) or a stream of events (:meth:`HTTPModel.read_stream`).
"""

from __future__ import annotations

import functools
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

import anyio
import httpx2

from agents_mcp.errors import LLMError
from agents_mcp.llm import TextCallback
from agents_mcp.llm.failures import (
    FAILURES,
    NOT_FOUND,
    QUICK_RETRIES,
    RETRIED_PAGES,
    UNTRUSTED,
    WrongEndpoint,
    endpoint_hint,
    is_loopback,
    is_page,
    page_title,
    provider_message,
    refused,
    refused_text,
)
from agents_mcp.llm.failures import (
    error_text as error_text,  # the providers read error objects with it
)
from agents_mcp.llm.retry import (
    Random,
    Retryable,
    RetryPolicy,
    Sleep,
    retry_after,
    retryable_status,
)
from agents_mcp.llm.sse import ServerSentEvent, read_events
from agents_mcp.messages import LLMRequest, LLMResponse, Message

log = logging.getLogger("agents_mcp.llm")

LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0)
"""The pool of one model's client: 100 requests in flight at once (httpx2's default), 20
connections kept open for 30 s after their last answer. httpx2's default keeps them 5 s,
shorter than many tool calls: the agent's next model request after a slow tool would
then pay a new TCP and TLS handshake. Providers close idle connections after about a
minute; a connection they closed first is not reused (httpx2 checks before sending)."""

StreamMode = bool | Literal["auto"]
"""``True``/``False`` force streaming on or off; ``"auto"`` streams when someone reads it."""

WIRE_CACHE_BYTES = 8 * 1024 * 1024
"""What one model's wire cache may hold: text characters of the cached messages (their
content, tool calls and reasoning payloads) plus :data:`WIRE_ENTRY_OVERHEAD` per message."""

WIRE_ENTRY_OVERHEAD = 256
"""The bytes counted per cached message for the dicts that make up its wire form."""


class Malformed(Exception):
    """The provider answered with something that is not its documented wire format."""


class HTTPModel:
    """An :class:`~agents_mcp.llm.LLM` behind one HTTP endpoint of a provider.

    Retries what :mod:`agents_mcp.llm.retry` says is worth retrying. When a truncated stream
    is retried, ``on_text`` sees the repeated beginning again. With ``stream="auto"`` the
    request streams only when ``complete`` is given an ``on_text`` to show it to.
    """

    provider: ClassVar[str]
    """The ``provider`` name of the config; it also tags the reasoning payloads made here."""
    path: ClassVar[str]
    """Appended to ``base_url``: where requests are POSTed."""
    conversation: ClassVar[str] = "messages"
    """The body's list of conversation items: the JSON of those from :attr:`wire_cache`
    is spliced in as it was encoded when they were first sent."""

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
        stream: StreamMode = "auto",
        transport: httpx2.AsyncBaseTransport | None = None,
        backoff: float = 0.5,
        sleep: Sleep = anyio.sleep,
        rand: Random = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.extra: dict[str, Any] = dict(extra or {})
        self.stream = stream
        self.retry = RetryPolicy(max_retries=max_retries, backoff=backoff, sleep=sleep, rand=rand)
        self._api_key = api_key
        self._transport = transport
        self._client: httpx2.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def in_process(self) -> bool:
        """Whether requests go to an injected transport (a test double) instead of the network."""
        return self._transport is not None

    async def aclose(self) -> None:
        """Close the HTTP client (and an injected transport with it)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry ``api_key``."""
        return {"Authorization": f"Bearer {api_key}"}

    def extra_headers(self) -> dict[str, str]:
        """Headers every request carries besides auth (e.g. an API version)."""
        return {}

    def _http(self) -> httpx2.AsyncClient:
        """The HTTP client, as httpx2 makes it: its pool (:data:`LIMITS`), TLS verified
        against the system's certificates or those ``SSL_CERT_FILE``/``SSL_CERT_DIR`` name,
        a proxy from the environment (``NO_PROXY`` included), the Basic auth of a
        ``user:password@`` in ``base_url``, and the cookies the provider sets.

        Lazy: building the client creates an SSL context, which agents that never run
        should not pay for.
        """
        if self._client is None:
            headers = {**_JSON, **self.extra_headers()}
            if self._api_key:
                headers.update(self.auth_headers(self._api_key))
            self._client = httpx2.AsyncClient(
                headers=headers,
                timeout=httpx2.Timeout(connect=10.0, read=self.timeout, write=30.0, pool=30.0),
                limits=LIMITS,
                transport=self._transport,
            )
        return self._client

    @functools.cached_property
    def _url(self) -> httpx2.URL:
        # Parsed once: httpx2 parses and validates a URL given as text at every request.
        return httpx2.URL(f"{self.base_url}{self.path}")

    @property
    def wire_cache(self) -> WireCache[Any] | None:
        """The adapter's cache of each message's wire form (None: it keeps none)."""
        return None

    def streams(self, on_text: TextCallback | None) -> bool:
        """Whether a request answered to ``on_text`` streams."""
        return self.stream is True or (self.stream == "auto" and on_text is not None)

    def build_body(self, request: LLMRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        raise NotImplementedError

    def parse_body(self, payload: dict[str, Any]) -> LLMResponse:
        """A whole (non-streamed) answer. Raise :class:`Malformed` for a foreign shape."""
        raise NotImplementedError

    async def read_stream(
        self, events: AsyncIterator[ServerSentEvent], on_text: TextCallback | None
    ) -> LLMResponse:
        """A streamed answer: pass visible text to ``on_text``; read ``events`` to the end."""
        raise NotImplementedError

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        """Send ``request``; stream text fragments to ``on_text``; retry transient failures."""
        body = self.build_body(request, stream=self.streams(on_text))
        data = encode_body(body, self.wire_cache, self.conversation)
        return await self.retry.run(lambda n: self._attempt(body, data, on_text, n))

    async def _attempt(
        self, body: dict[str, Any], data: bytes, on_text: TextCallback | None, n: int
    ) -> LLMResponse:
        client = self._http()
        log.debug("POST %s model=%s attempt=%d", self._url, self.model, n + 1)
        try:
            async with client.stream("POST", self._url, content=data) as response:
                result = await self._answer(response, body, on_text)
        except Malformed as exc:
            msg = f"LLM response from {self.base_url} was malformed: {exc}"
            raise LLMError(self.redact(msg)) from exc
        except httpx2.HTTPError as exc:
            raise self._failure(exc, client.timeout) from exc
        log.debug(
            "finish_reason=%s tool_calls=%d usage=%s",
            result.finish_reason,
            len(result.tool_calls),
            result.usage,
        )
        return result

    def _failure(self, exc: httpx2.HTTPError, timeout: httpx2.Timeout) -> Exception:
        """httpx2's exception as our :class:`LLMError`: what went wrong and what to do,
        wrapped in :class:`Retryable` when trying again may help."""
        retry, explain = next((r, e) for kind, r, e in FAILURES if isinstance(exc, kind))
        detail = str(exc) or type(exc).__name__
        limit = None
        if isinstance(exc, httpx2.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in detail:
            retry, explain = False, UNTRUSTED  # trying again will not make it trusted
        elif isinstance(exc, httpx2.ConnectError) and refused(exc):
            # Nothing listens there. On this machine, it will not start listening while
            # we wait; another machine's server may be restarting: one quick retry.
            retry, explain = not is_loopback(self._url.host), refused_text(self._url)
            limit = QUICK_RETRIES
        what = explain.format(
            detail=detail, max_connections=LIMITS.max_connections, **timeout.as_dict()
        )
        error = LLMError(self.redact(f"LLM request failed: {self.base_url}: {what}"))
        return Retryable(error, limit=limit) if retry else error

    async def _answer(
        self, response: httpx2.Response, body: dict[str, Any], on_text: TextCallback | None
    ) -> LLMResponse:
        if response.status_code >= 400:
            await response.aread()
            raise self._status_error(response)
        if is_page(response):
            raise self._page(response, await response.aread())
        ctype = response.headers.get("content-type", "")
        if "text/event-stream" in ctype or (body.get("stream") and "json" not in ctype):
            return await self.read_stream(read_events(response), on_text)
        raw = await response.aread()
        if is_page(response, raw):
            raise self._page(response, raw)
        result = self.parse_body(as_dict(loads(raw, "response body"), "response body"))
        if on_text is not None and result.content:
            await on_text(result.content)
        return result

    def _page(self, response: httpx2.Response, raw: bytes) -> WrongEndpoint:
        """A web page where the API's answer should be (a web UI at base_url, say)."""
        title = page_title(raw.decode(errors="replace"))
        problem = f"LLM request failed: {self._url} answered with a web page ({title})"
        hint = endpoint_hint(self.path)
        return WrongEndpoint(self.redact(problem), hint, status=response.status_code)

    def _status_error(self, response: httpx2.Response) -> Exception:
        """An HTTP error status: the status, the URL and one line of what came with it.

        Retried as :mod:`.retry` says, except a web page that no gateway would send
        (:data:`~.failures.RETRIED_PAGES`): that, 404 and 405 say the URL is wrong.
        """
        status = response.status_code
        detail = provider_message(response)
        msg = self.redact(f"LLM request failed: HTTP {status} from {self._url}: {detail}")
        page = is_page(response, response.content)
        if status in NOT_FOUND or (page and status not in RETRIED_PAGES):
            hint = endpoint_hint(self.path, model_too=not page)
            return WrongEndpoint(msg, hint, status=status)
        error = LLMError(msg, status=status)
        if retryable_status(status):
            return Retryable(error, retry_after(response.headers))
        return error

    def provider_error(
        self, detail: str, *, status: int | None = None, retry: bool = False
    ) -> Exception:
        """An error the provider reported in a 200 body or inside a stream."""
        msg = self.redact(f"LLM request failed: provider error from {self.base_url}: {detail}")
        error = LLMError(msg, status=status)
        return Retryable(error) if retry else error

    def truncated(self) -> Retryable:
        """The stream ended before the provider said the answer was complete."""
        msg = f"LLM request failed: {self.base_url}: stream ended before completion"
        return Retryable(LLMError(self.redact(msg)))

    def redact(self, text: str) -> str:
        """``text`` without the API key: some providers echo the key they rejected."""
        return text.replace(self._api_key, "***") if self._api_key else text


_JSON = {"Content-Type": "application/json"}


def dumps(value: Any) -> str:
    """JSON as httpx2 encodes a ``json=`` body: compact, UTF-8 as is, no NaN."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_body(body: Mapping[str, Any], cache: WireCache[Any] | None, conversation: str) -> bytes:
    """The request body as JSON. The items of its ``conversation`` list that ``cache``
    built are spliced in as the JSON they were encoded to once: encoding the whole history
    again on every request was most of a long thread's turn (5 ms per request at 5 000
    messages), and the text is the same."""
    fields = []
    for key, value in body.items():
        if key == conversation and cache is not None and isinstance(value, list):
            items = b",".join(cache.json_of(v) or dumps(v).encode() for v in value)
            fields.append(b"%s:[%s]" % (dumps(key).encode(), items))
        else:
            fields.append(b"%s:%s" % (dumps(key).encode(), dumps(value).encode()))
    return b"{%s}" % b",".join(fields)


# --- the wire cache -------------------------------------------------------------------------

W = TypeVar("W")


class WireCache(Generic[W]):
    """Each message's wire form, built once, and its JSON, encoded once.

    Messages are immutable and a running thread sends the same ones again on every
    request, so a long thread would otherwise rebuild thousands of dicts, and encode them
    again, per step. Keyed by identity; each entry holds its message, so the id cannot be
    reused while cached. A wire form is never changed once built (requests that need a
    variant build a fresh one), so its JSON stays true. Bounded by ``budget`` (see
    :data:`WIRE_CACHE_BYTES`): the oldest entries leave first, and a message bigger than
    the whole budget is built every time instead of cached.
    """

    def __init__(self, build: Callable[[Message], W], budget: int = WIRE_CACHE_BYTES) -> None:
        self._build = build
        self.budget = budget
        self.size = 0
        self._items: dict[int, tuple[Message, W, int]] = {}
        self._json: dict[int, tuple[object, bytes]] = {}
        """The JSON of each cached wire form (of each item, when it is a list), by id."""

    def __len__(self) -> int:
        return len(self._items)

    def get(self, m: Message) -> W:
        hit = self._items.get(id(m))
        if hit is not None and hit[0] is m:
            return hit[1]
        wire = self._build(m)
        cost = message_size(m)
        if cost > self.budget:
            return wire
        texts = [(part, dumps(part).encode()) for part in _parts(wire)]
        cost += sum(len(text) for _, text in texts)
        if cost > self.budget:
            return wire
        while self.size + cost > self.budget:
            oldest = next(iter(self._items))
            _, gone, gone_cost = self._items.pop(oldest)
            self.size -= gone_cost
            for part in _parts(gone):
                self._json.pop(id(part), None)
        self._items[id(m)] = (m, wire, cost)
        self._json.update((id(part), (part, text)) for part, text in texts)
        self.size += cost
        return wire

    def json_of(self, part: object) -> bytes | None:
        """The JSON of a wire form (or list item) this cache holds, else None."""
        hit = self._json.get(id(part))
        return hit[1] if hit is not None and hit[0] is part else None


def _parts(wire: object) -> list[object]:
    return list(wire) if isinstance(wire, list) else [wire]


def message_size(m: Message) -> int:
    """What caching ``m`` keeps alive, roughly: its text plus a fixed overhead."""
    size = WIRE_ENTRY_OVERHEAD + len(m.content or "") + len(m.tool_call_id or "")
    for call in m.tool_calls:
        size += len(call.id) + len(call.name) + len(call.arguments)
    if m.reasoning_payload is not None:
        size += len(json.dumps(m.reasoning_payload.data))
    return size


# --- reading JSON defensively ---------------------------------------------------------------


def loads(data: str | bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        snippet = data[:200].decode(errors="replace") if isinstance(data, bytes) else data[:200]
        raise Malformed(f"{what} is not valid JSON: {snippet!r}") from exc


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not a JSON object")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{what} is not a JSON array")
    return value


def opt_str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{what} is not a string")
    return value


def opt_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
