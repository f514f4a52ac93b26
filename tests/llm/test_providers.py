"""One suite every provider adapter passes, each against its wire-format fake over loopback HTTP.

Chat Completions (``openai``), Anthropic Messages (``anthropic``) and the Responses API
(``responses``): plain answers, one and parallel tool calls, reasoning and its payload,
streaming or not, usage, retries, malformed events, timeouts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from inline_snapshot import snapshot

from agents_mcp.errors import LLMError
from agents_mcp.llm.anthropic import AnthropicModel
from agents_mcp.llm.chat import OpenAIChatModel
from agents_mcp.llm.endpoint import HTTPModel
from agents_mcp.llm.responses import ResponsesModel
from agents_mcp.messages import (
    LLMRequest,
    LLMResponse,
    Message,
    ReasoningPayload,
    ToolCall,
    ToolSpec,
    Usage,
)
from agents_mcp.testing.anthropic_server import FakeAnthropicServer
from agents_mcp.testing.chat_server import FakeChatServer
from agents_mcp.testing.fake_server import FakeServer, Fault
from agents_mcp.testing.responses_server import FakeResponsesServer

pytestmark = pytest.mark.anyio

HELLO = LLMRequest(system="Be brief.", messages=[Message(role="user", content="Hi")])
WEATHER = ToolSpec(
    name="weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
PARIS = ToolCall(id="call_1", name="weather", arguments='{"city": "Paris"}')
ROME = ToolCall(id="call_2", name="weather", arguments='{"city": "Rome"}')


def _thinking_sent(body: dict[str, Any]) -> bool:
    return any(
        block.get("type") in ("thinking", "redacted_thinking")
        for m in body["messages"]
        if isinstance(m["content"], list)
        for block in m["content"]
    )


def _reasoning_items_sent(body: dict[str, Any]) -> bool:
    return any(item.get("type") == "reasoning" for item in body["input"])


@dataclass(frozen=True)
class Provider:
    name: str
    fake: Callable[..., FakeServer]
    model: type[HTTPModel]
    reasoning_sent: Callable[[dict[str, Any]], bool]
    """Whether a request body carries reasoning back to the model."""
    payloads: bool
    """Whether the adapter keeps a reasoning payload (Chat Completions has none)."""
    cache_writes: bool
    """Whether the provider reports prompt-cache writes (only Anthropic does)."""


PROVIDERS = [
    Provider("openai", FakeChatServer, OpenAIChatModel, lambda _: False, False, False),
    Provider("anthropic", FakeAnthropicServer, AnthropicModel, _thinking_sent, True, True),
    Provider("responses", FakeResponsesServer, ResponsesModel, _reasoning_items_sent, True, False),
]


@pytest.fixture(params=PROVIDERS, ids=[p.name for p in PROVIDERS])
def provider(request: pytest.FixtureRequest) -> Provider:
    assert isinstance(request.param, Provider)
    return request.param


class Answers:
    """A backing LLM that returns canned responses in order and records requests."""

    def __init__(self, *responses: LLMResponse) -> None:
        self.responses = list(responses)
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest, *, on_text: Any = None) -> LLMResponse:
        self.requests.append(request)
        return self.responses.pop(0)


def top() -> float:
    """A "random" source that always draws the top of the range: each jittered backoff
    delay is then its upper bound (the jitter itself is tested in test_sse.py)."""
    return 1.0


class Sleeps:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@asynccontextmanager
async def connect(provider: Provider, fake: FakeServer, **kwargs: Any) -> AsyncIterator[HTTPModel]:
    kwargs.setdefault("backoff", 0.5)
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("rand", top)
    with anyio.fail_after(10):
        async with (
            fake.serve() as base_url,
            provider.model(base_url=base_url, model="m-test", **kwargs) as model,
        ):
            yield model


async def ask(
    model: HTTPModel, request: LLMRequest = HELLO, *, reader: bool = True
) -> tuple[LLMResponse, list[str]]:
    fragments: list[str] = []

    async def on_text(text: str) -> None:
        fragments.append(text)

    return await model.complete(request, on_text=on_text if reader else None), fragments


def redact(model: HTTPModel, error: LLMError) -> str:
    """The error's text, with the URL requests go to as <url> and base_url as <base>."""
    return (
        str(error).replace(model.base_url + model.path, "<url>").replace(model.base_url, "<base>")
    )


# --- answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_plain_answer(provider: Provider, stream: bool) -> None:
    answer = LLMResponse(
        content="Hello, streaming world!", usage=Usage(input_tokens=7, output_tokens=5)
    )
    fake = provider.fake(Answers(answer))
    async with connect(provider, fake, stream=stream) as model:
        response, fragments = await ask(model)
    assert response == LLMResponse(
        content="Hello, streaming world!",
        usage=Usage(input_tokens=7, output_tokens=5),
        finish_reason="stop",
    )
    assert "".join(fragments) == "Hello, streaming world!"
    assert len(fragments) == (3 if stream else 1)  # the fakes stream text in three pieces
    assert fake.requests[0]["stream"] is stream


async def test_auto_streams_only_for_a_reader(provider: Provider) -> None:
    fake = provider.fake(Answers(LLMResponse(content="one"), LLMResponse(content="two")))
    async with connect(provider, fake) as model:
        assert model.stream == "auto"
        alone, _ = await ask(model, reader=False)
        read, fragments = await ask(model)
    assert (alone.content, read.content, fragments) == ("one", "two", ["t", "w", "o"])
    assert [r["stream"] for r in fake.requests] == [False, True]


@pytest.mark.parametrize("stream", [True, False])
async def test_one_tool_call(provider: Provider, stream: bool) -> None:
    fake = provider.fake(Answers(LLMResponse(content=None, tool_calls=(PARIS,))))
    request = LLMRequest(system="", messages=HELLO.messages, tools=[WEATHER])
    async with connect(provider, fake, stream=stream) as model:
        response, fragments = await ask(model, request)
    assert (response.content, response.tool_calls, response.finish_reason) == (
        None,
        (PARIS,),
        "tool_calls",
    )
    assert fragments == []
    assert isinstance(fake.llm, Answers) and fake.llm.requests[0].tools == (WEATHER,)


@pytest.mark.parametrize("stream", [True, False])
async def test_parallel_tool_calls_and_their_results(provider: Provider, stream: bool) -> None:
    calls = LLMResponse(content="Looking both up.", tool_calls=(PARIS, ROME))
    backing = Answers(calls, LLMResponse(content="Paris 18°C, Rome 24°C."))
    fake = provider.fake(backing)
    first = LLMRequest(system="Weather bot.", messages=HELLO.messages, tools=[WEATHER])
    async with connect(provider, fake, stream=stream) as model:
        response, _ = await ask(model, first)
        assert response.tool_calls == (PARIS, ROME)
        transcript = [
            *first.messages,
            Message(role="assistant", content=response.content, tool_calls=response.tool_calls),
            Message(role="tool", tool_call_id="call_1", content="18°C"),
            Message(role="tool", tool_call_id="call_2", content="24°C", status="error"),
        ]
        second = LLMRequest(system="Weather bot.", messages=transcript, tools=[WEATHER])
        final, _ = await ask(model, second)
    assert final.content == "Paris 18°C, Rome 24°C."
    # The fake parsed the wire back into the same conversation.
    seen = backing.requests[1].messages
    assert [(m.role, m.content, m.tool_calls, m.tool_call_id) for m in seen] == [
        ("user", "Hi", (), None),
        ("assistant", "Looking both up.", (PARIS, ROME), None),
        ("tool", "18°C", (), "call_1"),
        ("tool", "24°C", (), "call_2"),
    ]


# --- reasoning ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_round_trip(provider: Provider, stream: bool) -> None:
    thought = LLMResponse(content=None, reasoning="Paris: look it up.", tool_calls=(PARIS,))
    backing = Answers(thought, LLMResponse(content="18°C."), LLMResponse(content="Still 18°C."))
    fake = provider.fake(backing)
    first = LLMRequest(system="", messages=HELLO.messages, tools=[WEATHER])
    async with connect(provider, fake, stream=stream) as model:
        response, fragments = await ask(model, first)
        assert fragments == []  # reasoning is not the answer
        assert response.reasoning == "Paris: look it up."
        payload = response.reasoning_payload
        assert (payload is not None) is provider.payloads
        assert payload is None or payload.provider == provider.name

        def transcript(payload: ReasoningPayload | None) -> LLMRequest:
            answer = Message(
                role="assistant",
                tool_calls=response.tool_calls,
                reasoning=response.reasoning,
                reasoning_payload=payload,
            )
            result = Message(role="tool", tool_call_id="call_1", content="18°C")
            return LLMRequest(
                system="", messages=[*HELLO.messages, answer, result], tools=[WEATHER]
            )

        same, _ = await ask(model, transcript(payload))
        other = None if payload is None else ReasoningPayload("elsewhere", payload.data)
        foreign, _ = await ask(model, transcript(other))
    assert (same.content, foreign.content) == ("18°C.", "Still 18°C.")
    # Back to the provider that made it, unchanged (the fakes verify signatures and ids);
    # never to another, and never as plain text.
    assert provider.reasoning_sent(fake.requests[1]) is provider.payloads
    assert provider.reasoning_sent(fake.requests[2]) is False
    assert all(
        "Paris: look it up." not in str(r) for r in fake.requests[1:] if not provider.payloads
    )


# --- usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_usage_with_cached_tokens(provider: Provider, stream: bool) -> None:
    usage = Usage(input_tokens=100, output_tokens=7, cache_read_tokens=60, cache_write_tokens=30)
    fake = provider.fake(Answers(LLMResponse(content="ok", usage=usage)))
    async with connect(provider, fake, stream=stream) as model:
        response, _ = await ask(model)
    expected = (
        usage
        if provider.cache_writes
        else Usage(input_tokens=100, output_tokens=7, cache_read_tokens=60)
    )
    assert response.usage == expected


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "delay"),
    [
        (Fault(status=429, retry_after="2"), 2.0),
        (Fault(status=503), 0.5),
        (Fault(status=529, retry_after_ms="1500"), 1.5),
        (Fault(stream_error=True), 0.5),
        (Fault(truncate=True), 0.5),
    ],
    ids=["429-retry-after", "503", "529-overloaded-retry-after-ms", "error-event", "truncated"],
)
async def test_transient_failures_are_retried(
    provider: Provider, fault: Fault, delay: float
) -> None:
    fake = provider.fake(Answers(LLMResponse(content="Complete answer.")))
    fake.faults = [fault]
    sleeps = Sleeps()
    async with connect(provider, fake, sleep=sleeps, backoff=0.5) as model:
        response, fragments = await ask(model)
    assert response.content == "Complete answer."
    assert len(fake.requests) == 2
    assert sleeps.delays == [delay]
    assert "".join(fragments).endswith("Complete answer.")


@pytest.mark.parametrize("stream", [True, False])
async def test_server_errors_until_retries_run_out(provider: Provider, stream: bool) -> None:
    fake = provider.fake(Answers())
    fake.faults = [Fault(status=500)] * 4
    sleeps = Sleeps()
    async with connect(provider, fake, stream=stream, sleep=sleeps, max_retries=3) as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert caught.value.status == 500
    assert redact(model, caught.value) == (
        "LLM request failed: HTTP 500 from <url>: Injected fault: HTTP 500"
        " (gave up after 4 attempts)"
    )
    assert sleeps.delays == [0.5, 1.0, 2.0]


async def test_overloaded_event_until_retries_run_out(provider: Provider) -> None:
    fake = provider.fake(Answers())
    fake.faults = [Fault(stream_error=True)] * 2
    async with connect(provider, fake, max_retries=1) as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert len(fake.requests) == 2
    message = redact(model, caught.value)
    assert (
        message
        == {
            "openai": "LLM request failed: provider error from <base>: Injected fault: stream error (gave up after 2 attempts)",
            "anthropic": "LLM request failed: provider error from <base>: overloaded_error: Overloaded (gave up after 2 attempts)",
            "responses": "LLM request failed: provider error from <base>: server_error: The server had an error while processing your request. (gave up after 2 attempts)",
        }[provider.name]
    )
    assert caught.value.status == {"openai": 500, "anthropic": 529, "responses": 500}[provider.name]


@pytest.mark.parametrize("stream", [True, False])
async def test_malformed_answers_are_not_retried(provider: Provider, stream: bool) -> None:
    fake = provider.fake(Answers())
    fake.faults = [Fault(malformed=True)]
    async with connect(provider, fake, stream=stream) as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert len(fake.requests) == 1
    assert caught.value.status is None
    assert redact(model, caught.value).startswith("LLM response from <base> was malformed: ")
    assert "is not valid JSON" in str(caught.value)


@pytest.mark.parametrize("stream", [True, False])
async def test_a_hang_past_the_timeout(provider: Provider, stream: bool) -> None:
    fake = provider.fake(Answers())
    fake.faults = [Fault(hang=True)] * 2
    async with connect(provider, fake, stream=stream, timeout=0.2, max_retries=1) as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert len(fake.requests) == 2
    assert redact(model, caught.value) == (
        "LLM request failed: <base>: no answer for 0.2 s: the provider may be overloaded; if"
        " the model needs longer, raise its `timeout` in the config (gave up after 2 attempts)"
    )


async def test_a_rejected_key_fails_at_once_without_leaking_it(provider: Provider) -> None:
    fake = provider.fake(Answers(), api_key="sk-right")
    async with connect(provider, fake, api_key="sk-wrong-SECRET") as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert caught.value.status == 401
    assert len(fake.requests) == 1
    assert "SECRET" not in str(caught.value) and "SECRET" not in repr(model)
    assert redact(model, caught.value).startswith("LLM request failed: HTTP 401 from <url>: ")


async def test_an_echoed_key_is_redacted(provider: Provider) -> None:
    fake = provider.fake(Answers())
    fake.faults = [Fault(status=400, body={"error": {"message": "bad key sk-SECRET here"}})]
    async with connect(provider, fake, api_key="sk-SECRET") as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert redact(model, caught.value) == snapshot(
        "LLM request failed: HTTP 400 from <url>: bad key *** here"
    )


async def test_probe_reports_tool_use_and_streaming(provider: Provider) -> None:
    from agents_mcp.llm.probe import PING, probe
    from agents_mcp.testing import Call as Scripted
    from agents_mcp.testing import ScriptedLLM

    fake = provider.fake(ScriptedLLM(Scripted("ping", id="call_p"), "ok, pong received"))
    async with connect(provider, fake) as model:
        called = await probe(model)
        answered = await probe(model)
    assert (called.tool_call, called.reply) == ("ping", None)
    assert (answered.tool_call, answered.reply, answered.fragments) == (
        None,
        "ok, pong received",
        3,
    )
    assert isinstance(fake.llm, ScriptedLLM) and fake.llm.requests[0].tools == (PING,)
    assert all(r["stream"] is True for r in fake.requests)


async def test_the_test_guard_covers_every_provider(provider: Provider) -> None:
    from agents_mcp.testing import RealLLMBlocked

    async with provider.model(base_url="https://api.example.com/v1", model="m") as model:
        with pytest.raises(RealLLMBlocked):
            await model.complete(HELLO)


def test_build_llm_follows_the_model_entry() -> None:
    from agents_mcp.config import ModelConfig
    from agents_mcp.llm import build_llm
    from agents_mcp.testing import DemoLLM

    entries = {
        "openai": {"base_url": "http://127.0.0.1:1/v1", "model": "m"},
        "anthropic": {"provider": "anthropic", "model": "claude", "stream": True},
        "responses": {"provider": "responses", "base_url": "http://127.0.0.1:1/v1", "model": "o"},
    }
    built = {name: build_llm(ModelConfig.model_validate(e)) for name, e in entries.items()}
    http = {n: m for n, m in built.items() if isinstance(m, HTTPModel)}
    assert http.keys() == built.keys()
    assert {n: (type(m).__name__, m.base_url, m.stream) for n, m in http.items()} == {
        "openai": ("OpenAIChatModel", "http://127.0.0.1:1/v1", "auto"),
        "anthropic": ("AnthropicModel", "https://api.anthropic.com/v1", True),
        "responses": ("ResponsesModel", "http://127.0.0.1:1/v1", "auto"),
    }
    limited = build_llm(ModelConfig.model_validate(entries["openai"]), timeout=3, max_retries=0)
    assert isinstance(limited, HTTPModel)
    assert (limited.timeout, limited.retry.max_retries) == (3, 0)
    assert isinstance(build_llm(ModelConfig.model_validate({"provider": "demo"})), DemoLLM)
