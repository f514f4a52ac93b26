"""``python -m benchmarks.adapters``: each provider adapter's own CPU per S1 conversation.

One S1 conversation is six model requests: five rounds of one ``echo`` tool call and its
result, then the final answer, each request carrying the transcript so far (as the loop
sends it). Here only the adapter runs: it builds each request body, sends it through
httpx2 to an in-process transport that returns the provider's answer (rendered once, in
advance, by the wire-format fakes of ``agents_mcp.testing``), and parses it, streamed or
whole. No sockets, server or MCP stack are involved, so the figures compare the adapters
with each other, not with the end-to-end S1 figures of ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx2

from agents_mcp.llm.anthropic import AnthropicModel
from agents_mcp.llm.chat import OpenAIChatModel
from agents_mcp.llm.endpoint import HTTPModel
from agents_mcp.llm.responses import ResponsesModel
from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall, ToolSpec, Usage
from agents_mcp.testing import anthropic_server, responses_server
from agents_mcp.testing.chat_server import FakeChatServer

ROUNDS = 5
ECHO = ToolSpec(
    name="bench__echo",
    description="Echoes its text.",
    parameters={"type": "object", "properties": {"text": {"type": "string"}}},
)
USAGE = Usage(input_tokens=100, output_tokens=10)


def answers() -> list[LLMResponse]:
    calls = [
        LLMResponse(
            content=None,
            tool_calls=(
                ToolCall(
                    id=f"call_{n}", name=ECHO.name, arguments=json.dumps({"text": f"ping-{n}"})
                ),
            ),
            usage=USAGE,
        )
        for n in range(ROUNDS)
    ]
    return [*calls, LLMResponse(content=f"done after {ROUNDS} tool results", usage=USAGE)]


def _chat(response: LLMResponse, stream: bool) -> tuple[str, str]:
    fake = FakeChatServer(_Unused())
    if not stream:
        return json.dumps(fake.completion_json(response, "m")), "application/json"
    chunks = fake.stream_chunks(response, "m", include_usage=True)
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return body, "text/event-stream"


def _anthropic(response: LLMResponse, stream: bool) -> tuple[str, str]:
    blocks = anthropic_server.content_blocks(response)
    if not stream:
        return json.dumps(anthropic_server.message_json(response, "m", blocks)), "application/json"
    events = anthropic_server.stream_events(response, "m", blocks)
    return "".join(e + "\n\n" for e in events), "text/event-stream"


def _responses(response: LLMResponse, stream: bool) -> tuple[str, str]:
    done = responses_server.response_json(
        response, "m", responses_server.output_items(response, encrypted=False)
    )
    if not stream:
        return json.dumps(done), "application/json"
    return "".join(e + "\n\n" for e in responses_server.stream_events(done)), "text/event-stream"


class _Unused:
    async def complete(self, request: LLMRequest, *, on_text: Any = None) -> LLMResponse:
        raise AssertionError("never asked")


PROVIDERS: dict[str, tuple[type[HTTPModel], Callable[[LLMResponse, bool], tuple[str, str]]]] = {
    "openai (Chat Completions)": (OpenAIChatModel, _chat),
    "anthropic (Messages)": (AnthropicModel, _anthropic),
    "responses (Responses)": (ResponsesModel, _responses),
}


def transport(bodies: list[tuple[str, str]]) -> httpx2.MockTransport:
    encoded = [(text.encode(), ctype) for text, ctype in bodies]
    count = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal count
        body, ctype = encoded[count % len(encoded)]
        count += 1
        return httpx2.Response(200, content=body, headers={"content-type": ctype})

    return httpx2.MockTransport(handler)


async def conversation(model: HTTPModel, stream: bool) -> None:
    async def on_text(text: str) -> None:
        pass

    messages: list[Message] = [Message(role="user", content=f"bench K={ROUNDS}")]
    for _ in range(ROUNDS + 1):
        request = LLMRequest(
            system="You are a benchmark agent.", messages=list(messages), tools=[ECHO]
        )
        response = await model.complete(request, on_text=on_text if stream else None)
        if not response.tool_calls:
            assert response.content == f"done after {ROUNDS} tool results", response
            return
        messages.append(
            Message(role="assistant", content=response.content, tool_calls=response.tool_calls)
        )
        for call in response.tool_calls:
            text = json.loads(call.arguments)["text"]
            messages.append(Message(role="tool", tool_call_id=call.id, content=text))
    raise AssertionError("the conversation did not end")


async def measure(name: str, stream: bool, conversations: int, rounds: int) -> float:
    """Median over ``rounds`` of the CPU ms per conversation."""
    cls, render = PROVIDERS[name]
    bodies = [render(a, stream) for a in answers()]
    async with cls(
        base_url="http://bench.invalid/v1", model="m", transport=transport(bodies), stream="auto"
    ) as model:
        for _ in range(5):  # warm-up
            await conversation(model, stream)
        samples = []
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(conversations):
                await conversation(model, stream)
            samples.append((time.process_time() - start) * 1000 / conversations)
    return statistics.median(samples)


async def main(conversations: int, rounds: int) -> None:
    print(
        f"CPU ms per S1 conversation in the adapter alone ({ROUNDS + 1} requests), median of {rounds} rounds of {conversations}"
    )
    print(f"| {'adapter':<26} | streamed | whole answer |")
    print(f"|{'-' * 28}|---------:|-------------:|")
    for name in PROVIDERS:
        streamed = await measure(name, True, conversations, rounds)
        whole = await measure(name, False, conversations, rounds)
        print(f"| {name:<26} | {streamed:8.2f} | {whole:12.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.conversations, args.rounds))
