"""The shared SSE reader and retry policy, on edge cases the provider fakes never produce."""

from __future__ import annotations

import anyio
import httpx2
import pytest

from agents_mcp.errors import LLMError
from agents_mcp.llm.retry import Retryable, RetryPolicy, retry_after
from agents_mcp.llm.sse import ServerSentEvent, read_events

pytestmark = pytest.mark.anyio


async def events_of(body: bytes) -> list[ServerSentEvent]:
    transport = httpx2.MockTransport(lambda _: httpx2.Response(200, content=body))
    async with httpx2.AsyncClient(transport=transport) as client:
        with anyio.fail_after(5):
            async with client.stream("GET", "http://fake.test/") as response:
                return [e async for e in read_events(response)]


async def test_fields_comments_and_line_endings() -> None:
    body = (
        b": keep-alive\r\n\r\n"
        b'event: message_start\r\ndata: {"a": 1}\r\n\r\n'
        b"id: 7\nretry: 100\ndata:no space\n\n"
        b"data: first\ndata: second\n\n"
        b"event: empty\n\n"
        b"data: [DONE]"  # no blank line at the end of the body
    )
    assert await events_of(body) == [
        ServerSentEvent("message_start", '{"a": 1}'),
        ServerSentEvent("message", "no space"),
        ServerSentEvent("message", "first\nsecond"),
        ServerSentEvent("message", "[DONE]"),
    ]


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "86400"}, 60.0),
        ({"retry-after": "-3"}, 0.0),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], delay: float | None) -> None:
    assert retry_after(headers) == delay


async def test_the_policy_repeats_only_retryable_failures() -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    attempts: list[int] = []

    async def flaky(n: int) -> str:
        attempts.append(n)
        if n < 2:
            raise Retryable(LLMError("busy", status=529), retry_after=None if n else 3.0)
        return "ok"

    policy = RetryPolicy(max_retries=3, backoff=0.5, sleep=sleep)
    assert await policy.run(flaky) == "ok"
    assert (attempts, delays) == ([0, 1, 2], [3.0, 1.0])

    async def refused(n: int) -> str:
        raise LLMError("bad request", status=400)

    with pytest.raises(LLMError, match=r"^bad request$"):
        await policy.run(refused)
    assert delays == [3.0, 1.0]
