"""OpenAIChatModel against the fake Chat Completions server (loopback HTTP and ASGI)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from inline_snapshot import snapshot

from agents_mcp.errors import LLMError
from agents_mcp.llm.chat import OpenAIChatModel
from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall, ToolSpec, Usage
from agents_mcp.testing.chat_server import FakeChatServer, Fault

pytestmark = pytest.mark.anyio

HELLO = LLMRequest(system="Be brief.", messages=[Message(role="user", content="Hi")])


@pytest.fixture(params=["loopback", "asgi"])
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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
async def connect(fake: FakeChatServer, via: str, **kwargs: Any) -> AsyncIterator[OpenAIChatModel]:
    """An adapter talking to ``fake`` over real loopback HTTP or in-process ASGI."""
    kwargs.setdefault("backoff", 0.0)
    kwargs.setdefault("rand", top)
    with anyio.fail_after(5):
        if via == "loopback":
            async with (
                fake.serve() as base_url,
                OpenAIChatModel(base_url=base_url, model="gpt-test", **kwargs) as model,
            ):
                yield model
        else:
            transport = httpx2.ASGITransport(app=fake.app)
            async with OpenAIChatModel(
                base_url="http://localhost/v1", model="gpt-test", transport=transport, **kwargs
            ) as model:
                yield model


async def ask(model: OpenAIChatModel, request: LLMRequest = HELLO) -> tuple[LLMResponse, list[str]]:
    fragments: list[str] = []

    async def on_text(text: str) -> None:
        fragments.append(text)

    return await model.complete(request, on_text=on_text), fragments


def redact(model: OpenAIChatModel, error: LLMError) -> str:
    return str(error).replace(model.base_url, "<base>")


def sse_transport(*events: dict[str, Any] | str) -> httpx2.MockTransport:
    """A transport answering every request with these SSE ``data:`` payloads."""
    body = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return httpx2.MockTransport(handler)


async def test_streamed_text_and_usage(via: str) -> None:
    answer = LLMResponse(
        content="Hello, streaming world!", usage=Usage(input_tokens=7, output_tokens=5)
    )
    fake = FakeChatServer(Answers(answer))
    async with connect(fake, via) as model:
        response, fragments = await ask(model)
    assert fragments == snapshot(["Hello, s", "treaming", " world!"])
    assert response == snapshot(
        LLMResponse(
            content="Hello, streaming world!",
            usage=Usage(input_tokens=7, output_tokens=5),
            finish_reason="stop",
        )
    )
    assert fake.requests[0]["stream_options"] == {"include_usage": True}


async def test_interleaved_tool_call_fragments_are_assembled(via: str) -> None:
    calls = (
        ToolCall(id="call_a", name="search", arguments='{"query": "weather in Paris"}'),
        ToolCall(id="call_b", name="add", arguments='{"a": 1, "b": 2}'),
    )
    answer = LLMResponse(content=None, tool_calls=calls)
    fake = FakeChatServer(Answers(answer), interleave_tool_calls=True)
    wire = fake.stream_chunks(answer, "m", include_usage=False)
    # The fake really interleaves: index 0, 1, 0, 1, …, with id/name only in first fragments.
    assert [c["choices"][0]["delta"].get("tool_calls") for c in wire[1:-1]] == snapshot(
        [
            [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "search", "arguments": '{"query": '},
                }
            ],
            [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": '},
                }
            ],
            [{"index": 0, "function": {"arguments": '"weather i'}}],
            [{"index": 1, "function": {"arguments": '1, "b"'}}],
            [{"index": 0, "function": {"arguments": 'n Paris"}'}}],
            [{"index": 1, "function": {"arguments": ": 2}"}}],
        ]
    )
    async with connect(fake, via) as model:
        response, fragments = await ask(model)
    assert fragments == []
    assert response == snapshot(
        LLMResponse(
            content=None,
            tool_calls=(
                ToolCall(id="call_a", name="search", arguments='{"query": "weather in Paris"}'),
                ToolCall(id="call_b", name="add", arguments='{"a": 1, "b": 2}'),
            ),
            finish_reason="tool_calls",
        )
    )


async def test_missing_tool_call_id_is_generated(via: str) -> None:
    answer = LLMResponse(content=None, tool_calls=(ToolCall(id="", name="f", arguments="{}"),))
    async with connect(FakeChatServer(Answers(answer)), via) as model:
        response, _ = await ask(model)
    assert response.tool_calls[0].id.startswith("call_")
    assert len(response.tool_calls[0].id) > len("call_")


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_fields(via: str, field: Any) -> None:
    answer = LLMResponse(content="42.", reasoning="The user wants the answer; it is 42.")
    fake = FakeChatServer(Answers(answer), reasoning_field=field)
    async with connect(fake, via) as model:
        response, fragments = await ask(model)
    assert "".join(fragments) == "42."
    assert response.reasoning == "The user wants the answer; it is 42."
    assert response.content == "42."


@pytest.mark.parametrize("stream", [True, False])
async def test_think_block_moves_to_reasoning(via: str, stream: bool) -> None:
    answer = LLMResponse(content="<think>\nPlan: greet back.\n</think>\n\nHello!")
    async with connect(FakeChatServer(Answers(answer)), via, stream=stream) as model:
        response, fragments = await ask(model)
    assert "".join(fragments) == "Hello!"
    assert (response.content, response.reasoning) == ("Hello!", "Plan: greet back.")


async def test_think_tag_split_across_single_character_chunks() -> None:
    text = "  <think>a</think>\n b"
    chunks = [{"choices": [{"index": 0, "delta": {"content": ch}}]} for ch in text]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    transport = sse_transport(*chunks, "[DONE]")
    async with OpenAIChatModel(
        base_url="http://localhost/v1", model="m", transport=transport
    ) as model:
        with anyio.fail_after(5):
            response, fragments = await ask(model)
    assert (response.content, response.reasoning, "".join(fragments)) == ("b", "a", "b")


async def test_non_streaming_mode(via: str) -> None:
    answer = LLMResponse(
        content="Calling a tool.",
        tool_calls=(ToolCall(id="call_1", name="lookup", arguments='{"id": 3}'),),
        reasoning="Need data.",
        usage=Usage(input_tokens=11, output_tokens=4),
    )
    fake = FakeChatServer(Answers(answer))
    async with connect(fake, via, stream=False) as model:
        response, fragments = await ask(model)
    assert fragments == ["Calling a tool."]
    assert response == snapshot(
        LLMResponse(
            content="Calling a tool.",
            tool_calls=(ToolCall(id="call_1", name="lookup", arguments='{"id": 3}'),),
            reasoning="Need data.",
            usage=Usage(input_tokens=11, output_tokens=4),
            finish_reason="tool_calls",
        )
    )
    assert "stream_options" not in fake.requests[0]
    assert fake.requests[0]["stream"] is False


async def test_json_answer_to_a_streaming_request(via: str) -> None:
    answer = LLMResponse(content="Not streamed.", usage=Usage(input_tokens=2, output_tokens=3))
    fake = FakeChatServer(Answers(answer), ignore_stream=True)
    async with connect(fake, via) as model:
        response, fragments = await ask(model)
    assert fake.requests[0]["stream"] is True
    assert fragments == ["Not streamed."]
    assert response == snapshot(
        LLMResponse(
            content="Not streamed.",
            usage=Usage(input_tokens=2, output_tokens=3),
            finish_reason="stop",
        )
    )


async def test_429_with_retry_after_then_success(via: str) -> None:
    fake = FakeChatServer(Answers(LLMResponse(content="ok")))
    fake.faults = [Fault(status=429, retry_after="0")]
    sleeps = Sleeps()
    async with connect(fake, via, sleep=sleeps, backoff=5.0) as model:
        response, _ = await ask(model)
    assert response.content == "ok"
    assert len(fake.requests) == 2
    assert sleeps.delays == [0.0]  # Retry-After wins over the 5 s backoff


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [("7", 7.0), ("3600", 60.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", 0.5)],
)
async def test_retry_after_values(retry_after: str, delay: float) -> None:
    fake = FakeChatServer(Answers(LLMResponse(content="ok")))
    fake.faults = [Fault(status=503, retry_after=retry_after)]
    sleeps = Sleeps()
    async with connect(fake, "asgi", sleep=sleeps, backoff=0.5) as model:
        await ask(model)
    assert sleeps.delays == [delay]


async def test_500_until_retries_run_out(via: str) -> None:
    fake = FakeChatServer(Answers())
    fake.faults = [Fault(status=500)] * 4
    sleeps = Sleeps()
    async with connect(fake, via, sleep=sleeps, backoff=0.5, max_retries=3) as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert caught.value.status == 500
    assert redact(model, caught.value) == snapshot(
        "LLM request failed: HTTP 500 from <base>/chat/completions: Injected fault: HTTP 500 (gave up after 4 attempts)"
    )
    assert len(fake.requests) == 4
    assert sleeps.delays == [0.5, 1.0, 2.0]


async def test_401_fails_at_once_without_leaking_the_key(via: str) -> None:
    fake = FakeChatServer(Answers(), api_key="sk-right")
    async with connect(fake, via, api_key="sk-wrong-SECRET") as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert caught.value.status == 401
    assert redact(model, caught.value) == snapshot(
        "LLM request failed: HTTP 401 from <base>/chat/completions: Incorrect API key provided."
    )
    assert "SECRET" not in str(caught.value) and "SECRET" not in repr(model)
    assert len(fake.requests) == 1
    assert fake.request_headers[0]["authorization"] == "Bearer sk-wrong-SECRET"


async def test_echoed_key_is_redacted() -> None:
    body = {"error": {"message": "Incorrect API key provided: sk-wrong-SECRET."}}
    fake = FakeChatServer(Answers())
    fake.faults = [Fault(status=401, body=body)]
    async with connect(fake, "asgi", api_key="sk-wrong-SECRET") as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert redact(model, caught.value) == snapshot(
        "LLM request failed: HTTP 401 from <base>/chat/completions: Incorrect API key provided: ***."
    )


async def test_plain_text_error_body() -> None:
    fake = FakeChatServer(Answers())
    fake.faults = [Fault(status=400, body="upstream says no")]
    async with connect(fake, "asgi") as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert (caught.value.status, redact(model, caught.value)) == snapshot(
        (400, "LLM request failed: HTTP 400 from <base>/chat/completions: upstream says no")
    )


async def test_truncated_stream_is_retried(via: str) -> None:
    fake = FakeChatServer(Answers(LLMResponse(content="Complete answer.")))
    fake.faults = [Fault(truncate=True)]
    async with connect(fake, via) as model:
        response, fragments = await ask(model)
    assert response.content == "Complete answer."
    assert len(fake.requests) == 2
    # The cut-off attempt's text was already streamed; the retry streams from the start.
    assert "".join(fragments) == "This answer is cut oComplete answer."


async def test_truncated_stream_until_retries_run_out(via: str) -> None:
    fake = FakeChatServer(Answers())
    fake.faults = [Fault(truncate=True)] * 2
    async with connect(fake, via, max_retries=1) as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert caught.value.status is None
    assert redact(model, caught.value) == snapshot(
        "LLM request failed: <base>: stream ended before completion (gave up after 2 attempts)"
    )


@pytest.mark.parametrize("stream", [True, False])
async def test_malformed_json_is_not_retried(via: str, stream: bool) -> None:
    fake = FakeChatServer(Answers())
    fake.faults = [Fault(malformed=True)]
    async with connect(fake, via, stream=stream) as model:
        with pytest.raises(LLMError) as caught:
            await ask(model)
    assert len(fake.requests) == 1
    assert (
        redact(model, caught.value)
        == snapshot(
            {
                True: 'LLM response from <base> was malformed: stream chunk is not valid JSON: \'{"choices": [{"delta": {"content": "x"\'',
                False: 'LLM response from <base> was malformed: response body is not valid JSON: \'{"choices": [{"message": \'',
            }
        )[stream]
    )


async def test_connection_refused_on_this_machine_is_not_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens here
    sleeps = Sleeps()
    model = OpenAIChatModel(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=2, sleep=sleeps, rand=top
    )
    async with model:
        with anyio.fail_after(5), pytest.raises(LLMError) as caught:
            await ask(model)
    assert f"nothing is listening at 127.0.0.1:{port}" in str(caught.value)
    assert sleeps.delays == []


async def test_exact_request_body(via: str) -> None:
    request = LLMRequest(
        system="You are a weather agent.",
        messages=[
            Message(role="user", content="Weather in Paris?"),
            Message(
                role="assistant",
                content=None,
                reasoning="I should call the tool.",  # never sent back
                tool_calls=(ToolCall(id="call_1", name="weather", arguments='{"city": "Paris"}'),),
            ),
            Message(role="tool", tool_call_id="call_1", content="18°C, cloudy"),
        ],
        tools=[
            ToolSpec(
                name="weather",
                description="Current weather for a city.",
                parameters={"type": "object", "properties": {"city": {"type": "string"}}},
            )
        ],
        settings={"temperature": 0.1, "seed": 7},
    )
    backing = Answers(LLMResponse(content="It is 18°C and cloudy."))
    fake = FakeChatServer(backing)
    async with connect(
        fake, via, temperature=0.7, max_tokens=256, extra={"top_p": 0.9, "user": "agents-mcp"}
    ) as model:
        response, _ = await ask(model, request)
    assert response.content == "It is 18°C and cloudy."
    assert fake.requests == snapshot(
        [
            {
                "model": "gpt-test",
                "messages": [
                    {"role": "system", "content": "You are a weather agent."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "18°C, cloudy"},
                ],
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "weather",
                            "description": "Current weather for a city.",
                            "parameters": {
                                "type": "object",
                                "properties": {"city": {"type": "string"}},
                            },
                        },
                    }
                ],
                "stream": True,
                "stream_options": {"include_usage": True},
                "temperature": 0.1,
                "max_tokens": 256,
                "top_p": 0.9,
                "user": "agents-mcp",
                "seed": 7,
            }
        ]
    )
    # The fake parses the wire back into the conversation the model saw (no reasoning).
    assert backing.requests == snapshot(
        [
            LLMRequest(
                system="You are a weather agent.",
                messages=[
                    Message(role="user", content="Weather in Paris?"),
                    Message(
                        role="assistant",
                        tool_calls=(
                            ToolCall(id="call_1", name="weather", arguments='{"city": "Paris"}'),
                        ),
                    ),
                    Message(role="tool", content="18°C, cloudy", tool_call_id="call_1"),
                ],
                tools=(
                    ToolSpec(
                        name="weather",
                        description="Current weather for a city.",
                        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
                    ),
                ),
                settings={
                    "temperature": 0.1,
                    "max_tokens": 256,
                    "top_p": 0.9,
                    "user": "agents-mcp",
                    "seed": 7,
                },
            )
        ]
    )


async def test_fake_rejects_invalid_requests() -> None:
    fake = FakeChatServer(Answers())
    transport = httpx2.ASGITransport(app=fake.app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://fake.test") as client:
        with anyio.fail_after(5):
            not_json = await client.post("/v1/chat/completions", content=b"{")
            no_messages = await client.post("/chat/completions", json={"model": "m"})
    assert (not_json.status_code, no_messages.status_code) == (400, 400)
    assert no_messages.json()["error"]["message"] == snapshot(
        "Invalid request: KeyError('messages')"
    )


async def test_serve_survives_cancellation_and_errors() -> None:
    fake = FakeChatServer(Answers(LLMResponse(content="still serving")))
    with anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            async with fake.serve():
                scope.cancel()
                await anyio.sleep_forever()
        with pytest.raises(ValueError, match="boom"):  # not wrapped in an ExceptionGroup
            async with fake.serve():
                raise ValueError("boom")
        async with fake.serve() as base_url, OpenAIChatModel(base_url=base_url, model="m") as model:
            response, _ = await ask(model)
    assert response.content == "still serving"


async def test_tool_call_fragments_without_index() -> None:
    def delta(**fields: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": fields}]}

    transport = sse_transport(
        delta(tool_calls=[{"id": "c1", "function": {"name": "a", "arguments": '{"x"'}}]),
        delta(tool_calls=[{"function": {"arguments": ": 1}"}}]),
        delta(tool_calls=[{"id": "c2", "function": {"name": "b", "arguments": "{}"}}]),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        "[DONE]",
    )
    async with OpenAIChatModel(
        base_url="http://localhost/v1", model="m", transport=transport
    ) as model:
        with anyio.fail_after(5):
            response, _ = await ask(model)
    assert response.tool_calls == snapshot(
        (
            ToolCall(id="c1", name="a", arguments='{"x": 1}'),
            ToolCall(id="c2", name="b", arguments="{}"),
        )
    )


async def test_error_chunk_mid_stream() -> None:
    transport = sse_transport(
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"error": {"message": "Provider overloaded mid-stream", "code": 400}},
    )
    async with OpenAIChatModel(
        base_url="http://localhost/v1", model="m", transport=transport
    ) as model:
        with anyio.fail_after(5), pytest.raises(LLMError) as caught:
            await ask(model)
    assert (caught.value.status, str(caught.value)) == snapshot(
        (
            400,
            "LLM request failed: provider error from http://localhost/v1: Provider overloaded mid-stream",
        )
    )


def test_wire_cache_is_bounded_by_bytes() -> None:
    from agents_mcp.llm.chat import _wire_message
    from agents_mcp.llm.endpoint import WIRE_CACHE_BYTES, WireCache

    assert WIRE_CACHE_BYTES == 8 * 1024 * 1024
    cache = WireCache(_wire_message, budget=10_000)
    small = [Message(role="user", content=f"message {i}") for i in range(10)]
    assert [cache.get(m) for m in small] == [_wire_message(m) for m in small]
    assert cache.get(small[0]) is cache.get(small[0])  # built once
    big = [Message(role="tool", tool_call_id="c", content="x" * 3_000) for _ in range(5)]
    for m in big:
        cache.get(m)
    assert cache.size <= 10_000
    assert len(cache) < 15  # the oldest entries left
    huge = Message(role="user", content="y" * 20_000)
    assert cache.get(huge) == {"role": "user", "content": "y" * 20_000}
    assert cache.get(huge) is not cache.get(huge)  # bigger than the budget: never kept
    assert cache.size <= 10_000


async def test_wire_cache_holds_at_most_its_budget_across_a_long_thread() -> None:
    from agents_mcp.llm.endpoint import WIRE_CACHE_BYTES

    model = OpenAIChatModel(base_url="http://localhost/v1", model="m")
    thread = [Message(role="tool", tool_call_id=f"c{i}", content="z" * 50_000) for i in range(400)]
    body = model.build_body(LLMRequest(system="", messages=thread), stream=False)
    assert len(body["messages"]) == 400
    assert model._wire.size <= WIRE_CACHE_BYTES  # 20 MB of tool results were sent
    assert len(model._wire) < 400
    await model.aclose()


async def test_request_bodies_splice_the_json_of_messages_already_sent() -> None:
    """Each adapter sends the JSON of a message once encoded: byte for byte what encoding
    the whole body would give (httpx2's ``json=``), across requests that share history."""
    from agents_mcp.llm.anthropic import AnthropicModel
    from agents_mcp.llm.endpoint import dumps, encode_body
    from agents_mcp.llm.responses import ResponsesModel

    call = ToolCall(id="c1", name="look", arguments='{"q": "café ☕"}')
    history = [
        Message(role="user", content="Où est le café ? ☕"),
        Message(role="assistant", content="Je regarde.", tool_calls=(call,)),
        Message(role="tool", tool_call_id="c1", content='{"found": "2nd floor"}'),
        Message(role="user", content="Merci"),
    ]
    tools = [ToolSpec(name="look", description="Look", parameters={"type": "object"})]
    for kind in (OpenAIChatModel, AnthropicModel, ResponsesModel):
        model = kind(base_url="http://localhost/v1", model="m")
        cache = model.wire_cache
        assert cache is not None
        for n in (2, 3, 4, 4):  # a growing thread: each request resends the earlier ones
            request = LLMRequest(system="Be brief.", messages=history[:n], tools=tools)
            body = model.build_body(request, stream=False)
            sent = encode_body(body, cache, model.conversation)
            assert sent == dumps(body).encode(), kind.__name__
            assert json.loads(sent) == body
        items = body[model.conversation]
        assert any(cache.json_of(item) is not None for item in items), kind.__name__
        await model.aclose()
