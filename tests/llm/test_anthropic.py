"""AnthropicModel: the exact Messages API requests it builds, thinking, caching, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from inline_snapshot import snapshot

from agents_mcp.errors import LLMError
from agents_mcp.llm.anthropic import AnthropicModel
from agents_mcp.messages import (
    LLMRequest,
    LLMResponse,
    Message,
    ReasoningPayload,
    ToolCall,
    ToolSpec,
    Usage,
)
from agents_mcp.testing.anthropic_server import FakeAnthropicServer, signature
from agents_mcp.testing.fake_server import Fault

pytestmark = pytest.mark.anyio

WEATHER = ToolSpec(
    name="weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
TIME = ToolSpec(name="time", description="The time.", parameters={"type": "object"})
PARIS = ToolCall(id="toolu_1", name="weather", arguments='{"city": "Paris"}')
ROME = ToolCall(id="toolu_2", name="weather", arguments='{"city": "Rome"}')
THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}}


class Answers:
    def __init__(self, *responses: LLMResponse) -> None:
        self.responses = list(responses)
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest, *, on_text: Any = None) -> LLMResponse:
        self.requests.append(request)
        return self.responses.pop(0)


@asynccontextmanager
async def connect(fake: FakeAnthropicServer, **kwargs: Any) -> AsyncIterator[AnthropicModel]:
    with anyio.fail_after(10):
        async with (
            fake.serve() as base_url,
            AnthropicModel(base_url=base_url, model="claude-test", **kwargs) as model,
        ):
            yield model


async def test_exact_request() -> None:
    transcript = [
        Message(role="user", content="Weather in Paris and Rome?"),
        Message(role="assistant", content="Checking.", tool_calls=(PARIS, ROME)),
        Message(role="tool", tool_call_id="toolu_1", content="18°C"),
        Message(role="tool", tool_call_id="toolu_2", content="", status="error"),
        Message(role="user", content="And in Oslo?"),
    ]
    request = LLMRequest(
        system="You are a weather agent.",
        messages=transcript,
        tools=[WEATHER, TIME],
        settings={"stop": "END", "tool_choice": "required", "seed": 7, "top_k": 5},
    )
    fake = FakeAnthropicServer(Answers(LLMResponse(content="Cold.")), api_key="sk-ant-k")
    async with connect(fake, api_key="sk-ant-k", temperature=0.3, extra={"top_p": 0.9}) as model:
        response = await model.complete(request)
    assert response.content == "Cold."
    headers = fake.request_headers[0]
    assert (headers["x-api-key"], headers["anthropic-version"]) == ("sk-ant-k", "2023-06-01")
    assert "authorization" not in headers
    assert fake.requests == snapshot(
        [
            {
                "model": "claude-test",
                "max_tokens": 4096,
                "system": [
                    {
                        "type": "text",
                        "text": "You are a weather agent.",
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "Weather in Paris and Rome?"}],
                    },
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "text", "text": "Checking."},
                            {
                                "type": "tool_use",
                                "id": "toolu_1",
                                "name": "weather",
                                "input": {"city": "Paris"},
                            },
                            {
                                "type": "tool_use",
                                "id": "toolu_2",
                                "name": "weather",
                                "input": {"city": "Rome"},
                            },
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True},
                            {
                                "type": "text",
                                "text": "And in Oslo?",
                                "cache_control": {"type": "ephemeral"},
                            },
                        ],
                    },
                ],
                "tools": [
                    {
                        "name": "weather",
                        "description": "Current weather for a city.",
                        "input_schema": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                    {
                        "name": "time",
                        "description": "The time.",
                        "input_schema": {"type": "object"},
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
                "stream": False,
                "temperature": 0.3,
                "top_p": 0.9,
                "stop_sequences": ["END"],
                "tool_choice": {"type": "any"},
                "top_k": 5,
            }
        ]
    )


async def test_cached_wire_messages_are_never_marked() -> None:
    # The cache mark on the newest block goes on a copy: the cached block is reused later,
    # when it is no longer the newest.
    fake = FakeAnthropicServer(Answers(LLMResponse(content="a"), LLMResponse(content="b")))
    hi = Message(role="user", content="Hi")
    async with connect(fake) as model:
        await model.complete(LLMRequest(system="", messages=[hi]))
        answer = Message(role="assistant", content="a")
        await model.complete(
            LLMRequest(system="", messages=[hi, answer, Message(role="user", content="more")])
        )
    first, second = (r["messages"] for r in fake.requests)
    assert first[0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert second[0] == {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
    assert "system" not in fake.requests[0] and "tools" not in fake.requests[0]


async def test_prompt_cache_can_be_turned_off() -> None:
    fake = FakeAnthropicServer(Answers(LLMResponse(content="ok")))
    async with connect(fake) as model:
        model.prompt_cache = False
        await model.complete(
            LLMRequest(system="S", messages=[Message(role="user", content="x")], tools=[TIME])
        )
    assert "cache_control" not in json.dumps(fake.requests[0])


@pytest.mark.parametrize("stream", [True, False])
async def test_thinking_goes_back_unchanged_while_the_tool_turn_is_open(stream: bool) -> None:
    thought = LLMResponse(content="Let me check.", reasoning="Use the tool.", tool_calls=(PARIS,))
    backing = Answers(thought, LLMResponse(content="18°C."))
    fake = FakeAnthropicServer(backing)
    async with connect(fake, extra=THINKING, stream=stream) as model:
        first = await model.complete(
            LLMRequest(
                system="", messages=[Message(role="user", content="Paris?")], tools=[WEATHER]
            )
        )
        assert first.reasoning_payload == ReasoningPayload(
            "anthropic",
            [
                {
                    "type": "thinking",
                    "thinking": "Use the tool.",
                    "signature": signature("Use the tool."),
                },
                {"type": "text"},
                {"type": "tool_use", "id": "toolu_1"},
            ],
        )
        answer = Message(
            role="assistant",
            content=first.content,
            tool_calls=first.tool_calls,
            reasoning=first.reasoning,
            reasoning_payload=first.reasoning_payload,
        )
        result = Message(role="tool", tool_call_id="toolu_1", content="18°C")
        request = LLMRequest(
            system="",
            messages=[Message(role="user", content="Paris?"), answer, result],
            tools=[WEATHER],
        )
        final = await model.complete(request)
    assert final.content == "18°C."
    assert fake.requests[1]["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Use the tool.", "signature": signature("Use the tool.")},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
    ]


async def test_redacted_thinking_keeps_its_place() -> None:
    layout = [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
        {"type": "tool_use", "id": "toolu_1"},
    ]
    scripted = LLMResponse(
        content=None,
        tool_calls=(PARIS,),
        reasoning_payload=ReasoningPayload("anthropic", layout),
    )
    fake = FakeAnthropicServer(Answers(scripted, LLMResponse(content="ok")))
    async with connect(fake, extra=THINKING) as model:
        first = await model.complete(
            LLMRequest(system="", messages=[Message(role="user", content="x")], tools=[WEATHER])
        )
        assert (first.reasoning, first.reasoning_payload) == (
            None,
            ReasoningPayload("anthropic", layout),
        )
        # The loop may have renamed the call id; the payload's placeholder takes the new one.
        renamed = ToolCall(id="toolu_1~2", name="weather", arguments=PARIS.arguments)
        answer = Message(
            role="assistant", tool_calls=(renamed,), reasoning_payload=first.reasoning_payload
        )
        result = Message(role="tool", tool_call_id="toolu_1~2", content="18°C")
        await model.complete(
            LLMRequest(
                system="",
                messages=[Message(role="user", content="x"), answer, result],
                tools=[WEATHER],
            )
        )
    assert [b["type"] for b in fake.requests[1]["messages"][1]["content"]] == [
        "redacted_thinking",
        "tool_use",
    ]
    assert fake.requests[1]["messages"][1]["content"][1]["id"] == "toolu_1~2"


async def test_a_tampered_signature_is_refused_not_retried() -> None:
    fake = FakeAnthropicServer(Answers())
    bad = ReasoningPayload(
        "anthropic", [{"type": "thinking", "thinking": "t", "signature": "forged"}]
    )
    answer = Message(role="assistant", content="a", reasoning_payload=bad)
    request = LLMRequest(
        system="",
        messages=[Message(role="user", content="x"), answer, Message(role="user", content="y")],
    )
    async with connect(fake) as model:
        with pytest.raises(LLMError) as caught:
            await model.complete(request)
    assert caught.value.status == 400
    assert str(caught.value).endswith(": Invalid `signature` in `thinking` block")
    assert len(fake.requests) == 1


async def test_without_its_thinking_an_open_tool_turn_is_refused() -> None:
    # What the API says when a thread made elsewhere (or an old one) continues with thinking on.
    answer = Message(role="assistant", tool_calls=(PARIS,))
    result = Message(role="tool", tool_call_id="toolu_1", content="18°C")
    fake = FakeAnthropicServer(Answers())
    async with connect(fake, extra=THINKING) as model:
        with pytest.raises(LLMError) as caught:
            await model.complete(
                LLMRequest(system="", messages=[Message(role="user", content="x"), answer, result])
            )
    assert "Expected `thinking` or `redacted_thinking`, but found `tool_use`" in str(caught.value)


def events(*items: dict[str, Any]) -> httpx2.MockTransport:
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in items)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return httpx2.MockTransport(handler)


START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "c",
        "stop_reason": None,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1},
    },
}


async def test_an_error_event_that_is_not_transient() -> None:
    transport = events(
        START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "prompt is too long"},
        },
    )
    async with AnthropicModel(
        base_url="http://localhost/v1", model="c", transport=transport, stream=True
    ) as model:
        with anyio.fail_after(5), pytest.raises(LLMError) as caught:
            await model.complete(
                LLMRequest(system="", messages=[Message(role="user", content="x")])
            )
    assert (caught.value.status, str(caught.value)) == snapshot(
        (
            400,
            "LLM request failed: provider error from http://localhost/v1: invalid_request_error: prompt is too long",
        )
    )


async def test_usage_is_updated_by_message_delta_and_unknown_events_are_ignored() -> None:
    transport = events(
        START,
        {"type": "ping"},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t1", "name": "time", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "some_future_event", "anything": True},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 12, "cache_creation_input_tokens": 3},
        },
        {"type": "message_stop"},
    )
    async with AnthropicModel(
        base_url="http://localhost/v1", model="c", transport=transport, stream=True
    ) as model:
        with anyio.fail_after(5):
            response = await model.complete(
                LLMRequest(system="", messages=[Message(role="user", content="x")])
            )
    assert response == snapshot(
        LLMResponse(
            content=None,
            tool_calls=(ToolCall(id="t1", name="time", arguments="{}"),),
            usage=Usage(
                input_tokens=18, output_tokens=12, cache_read_tokens=5, cache_write_tokens=3
            ),
            finish_reason="tool_calls",
        )
    )


async def test_overloaded_http_529_uses_the_anthropic_error_body() -> None:
    fake = FakeAnthropicServer(Answers())
    fake.faults = [Fault(status=529)]
    async with connect(fake, max_retries=0) as model:
        with pytest.raises(LLMError) as caught:
            await model.complete(
                LLMRequest(system="", messages=[Message(role="user", content="x")])
            )
    assert caught.value.status == 529
    assert str(caught.value).endswith(": Injected fault: HTTP 529")
