"""ResponsesModel: the exact stateless Responses API requests it builds, reasoning items, events."""

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
from agents_mcp.testing.responses_server import FakeResponsesServer, encrypted_content

pytestmark = pytest.mark.anyio

WEATHER = ToolSpec(
    name="weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
PARIS = ToolCall(id="call_1", name="weather", arguments='{"city": "Paris"}')
HI = Message(role="user", content="Paris?")


class Answers:
    def __init__(self, *responses: LLMResponse) -> None:
        self.responses = list(responses)
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest, *, on_text: Any = None) -> LLMResponse:
        self.requests.append(request)
        return self.responses.pop(0)


@asynccontextmanager
async def connect(fake: FakeResponsesServer, **kwargs: Any) -> AsyncIterator[ResponsesModel]:
    with anyio.fail_after(10):
        async with (
            fake.serve() as base_url,
            ResponsesModel(base_url=base_url, model="o-test", **kwargs) as model,
        ):
            yield model


async def test_exact_request() -> None:
    transcript = [
        HI,
        Message(role="assistant", content="Checking.", tool_calls=(PARIS,), reasoning="not sent"),
        Message(role="tool", tool_call_id="call_1", content="18°C"),
        Message(role="assistant", content="18°C in Paris."),
        Message(role="user", content="Thanks"),
    ]
    schema = {"name": "answer", "schema": {"type": "object"}, "strict": True}
    request = LLMRequest(
        system="You are a weather agent.",
        messages=transcript,
        tools=[WEATHER],
        settings={
            "max_tokens": 300,
            "stop": "END",
            "seed": 1,
            "response_format": {"type": "json_schema", "json_schema": schema},
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
        },
    )
    fake = FakeResponsesServer(Answers(LLMResponse(content="{}")), api_key="sk-k")
    async with connect(
        fake, api_key="sk-k", temperature=0.2, extra={"reasoning": {"effort": "low"}}
    ) as model:
        response = await model.complete(request)
    assert response.content == "{}"
    assert fake.request_headers[0]["authorization"] == "Bearer sk-k"
    assert fake.requests == snapshot(
        [
            {
                "model": "o-test",
                "instructions": "You are a weather agent.",
                "input": [
                    {"type": "message", "role": "user", "content": "Paris?"},
                    {"type": "message", "role": "assistant", "content": "Checking."},
                    {
                        "type": "function_call",
                        "call_id": "call_1",
                        "name": "weather",
                        "arguments": '{"city": "Paris"}',
                    },
                    {"type": "function_call_output", "call_id": "call_1", "output": "18°C"},
                    {"type": "message", "role": "assistant", "content": "18°C in Paris."},
                    {"type": "message", "role": "user", "content": "Thanks"},
                ],
                "tools": [
                    {
                        "type": "function",
                        "name": "weather",
                        "description": "Current weather for a city.",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                        "strict": False,
                    }
                ],
                "store": False,
                "stream": False,
                "include": ["reasoning.encrypted_content"],
                "temperature": 0.2,
                "reasoning": {"effort": "low"},
                "max_output_tokens": 300,
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "answer",
                        "schema": {"type": "object"},
                        "strict": True,
                    }
                },
                "tool_choice": {"type": "function", "name": "weather"},
            }
        ]
    )


@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_items_go_back_with_their_ids(stream: bool) -> None:
    thought = LLMResponse(content="Checking.", reasoning="Use the tool.", tool_calls=(PARIS,))
    fake = FakeResponsesServer(Answers(thought, LLMResponse(content="18°C.")))
    async with connect(fake, stream=stream) as model:
        first = await model.complete(LLMRequest(system="", messages=[HI], tools=[WEATHER]))
        payload = first.reasoning_payload
        assert payload is not None
        item = payload.data[0]
        assert (item["type"], item["summary"]) == (
            "reasoning",
            [{"type": "summary_text", "text": "Use the tool."}],
        )
        assert item["encrypted_content"] == encrypted_content(item["id"], "Use the tool.")
        answer = Message(
            role="assistant",
            content=first.content,
            tool_calls=first.tool_calls,
            reasoning=first.reasoning,
            reasoning_payload=payload,
        )
        result = Message(role="tool", tool_call_id="call_1", content="18°C")
        await model.complete(LLMRequest(system="", messages=[HI, answer, result], tools=[WEATHER]))
    sent = fake.requests[1]["input"]
    assert [i["type"] for i in sent] == [
        "message",
        "reasoning",
        "message",
        "function_call",
        "function_call_output",
    ]
    assert sent[1] == item
    assert sent[2]["id"].startswith("msg_") and sent[2]["content"][0]["text"] == "Checking."
    assert sent[3]["id"].startswith("fc_") and sent[3]["call_id"] == "call_1"


async def test_an_endpoint_that_refuses_encrypted_reasoning_is_asked_without_it() -> None:
    fake = FakeResponsesServer(
        Answers(LLMResponse(content="one", reasoning="r"), LLMResponse(content="two")),
        encrypted_reasoning=False,
    )
    async with connect(fake) as model:
        first = await model.complete(LLMRequest(system="", messages=[HI]))
        second = await model.complete(LLMRequest(system="", messages=[HI]))
    assert (first.content, second.content) == ("one", "two")
    assert [r.get("include") for r in fake.requests] == [
        ["reasoning.encrypted_content"],
        None,
        None,
    ]
    # Without encrypted content the reasoning cannot go back (store is false): text only.
    assert (first.reasoning, first.reasoning_payload) == ("r", None)


async def test_a_reasoning_item_from_another_endpoint_is_refused() -> None:
    forged = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [],
        "encrypted_content": encrypted_content("rs_2", "x"),
    }
    answer = Message(
        role="assistant",
        content="a",
        reasoning_payload=ReasoningPayload(
            "responses", [forged, {"type": "message", "id": "msg_1"}]
        ),
    )
    fake = FakeResponsesServer(Answers())
    async with connect(fake) as model:
        with pytest.raises(LLMError) as caught:
            await model.complete(
                LLMRequest(system="", messages=[HI, answer, Message(role="user", content="?")])
            )
    assert caught.value.status == 400
    assert "could not be verified" in str(caught.value)
    assert len(fake.requests) == 1


async def test_an_incomplete_answer_says_why() -> None:
    fake = FakeResponsesServer(Answers(LLMResponse(content="Cut", finish_reason="length")))
    async with connect(fake, stream=True) as model:
        response = await model.complete(LLMRequest(system="", messages=[HI]))
    assert (response.content, response.finish_reason) == ("Cut", "length")


def events(*items: dict[str, Any]) -> httpx2.MockTransport:
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in items)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return httpx2.MockTransport(handler)


async def test_items_are_assembled_from_events_when_the_final_event_omits_them() -> None:
    # Some Responses-compatible servers send response.completed without the output list.
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "c1",
        "name": "weather",
        "arguments": "",
    }
    transport = events(
        {"type": "response.created", "response": {"status": "in_progress", "output": []}},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"type": "message", "id": "m1", "role": "assistant", "content": []},
        },
        {
            "type": "response.output_text.delta",
            "output_index": 0,
            "item_id": "m1",
            "content_index": 0,
            "delta": "On ",
        },
        {
            "type": "response.output_text.delta",
            "output_index": 0,
            "item_id": "m1",
            "content_index": 0,
            "delta": "it.",
        },
        {"type": "response.output_item.added", "output_index": 1, "item": call},
        {
            "type": "response.function_call_arguments.delta",
            "output_index": 1,
            "item_id": "fc_1",
            "delta": '{"city": ',
        },
        {
            "type": "response.function_call_arguments.delta",
            "output_index": 1,
            "item_id": "fc_1",
            "delta": '"Oslo"}',
        },
        {
            "type": "response.completed",
            "response": {"status": "completed", "usage": {"input_tokens": 9, "output_tokens": 4}},
        },
    )
    fragments: list[str] = []

    async def on_text(text: str) -> None:
        fragments.append(text)

    async with ResponsesModel(
        base_url="http://localhost/v1", model="m", transport=transport
    ) as model:
        with anyio.fail_after(5):
            response = await model.complete(LLMRequest(system="", messages=[HI]), on_text=on_text)
    assert fragments == ["On ", "it."]
    assert response == snapshot(
        LLMResponse(
            content="On it.",
            tool_calls=(ToolCall(id="c1", name="weather", arguments='{"city": "Oslo"}'),),
            usage=Usage(input_tokens=9, output_tokens=4),
            finish_reason="tool_calls",
        )
    )


async def test_an_error_event() -> None:
    transport = events(
        {"type": "response.created", "response": {"status": "in_progress", "output": []}},
        {"type": "error", "code": "invalid_prompt", "message": "Invalid prompt.", "param": None},
    )
    async with ResponsesModel(
        base_url="http://localhost/v1", model="m", transport=transport, stream=True
    ) as model:
        with anyio.fail_after(5), pytest.raises(LLMError) as caught:
            await model.complete(LLMRequest(system="", messages=[HI]))
    assert str(caught.value) == snapshot(
        "LLM request failed: provider error from http://localhost/v1: invalid_prompt: Invalid prompt."
    )
