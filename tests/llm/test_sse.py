"""The shared SSE reader and retry policy, on edge cases the provider fakes never produce."""

from __future__ import annotations

import random

import anyio
import httpx2
import pytest

from agents_mcp.errors import LLMError
from agents_mcp.llm.retry import MAX_BACKOFF, Retryable, RetryPolicy, retry_after
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

    policy = RetryPolicy(max_retries=3, backoff=0.5, sleep=sleep, rand=lambda: 0.75)
    assert await policy.run(flaky) == "ok"
    assert (attempts, delays) == ([0, 1, 2], [3.0, 0.75])  # Retry-After, then 0.75 of 1 s

    async def refused(n: int) -> str:
        raise LLMError("bad request", status=400)

    with pytest.raises(LLMError, match=r"^bad request$"):
        await policy.run(refused)
    assert delays == [3.0, 0.75]


async def backoff_of(
    policy: RetryPolicy, failures: int, retry_after: float | None = None
) -> list[float]:
    """The delays ``policy`` waits through ``failures`` retryable failures, then success."""
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    async def busy(n: int) -> str:
        if n < failures:
            raise Retryable(LLMError("rate limited", status=429), retry_after)
        return "ok"

    policy.sleep = sleep
    assert await policy.run(busy) == "ok"
    return delays


async def test_replicas_rate_limited_together_back_off_apart_within_bounds() -> None:
    replicas = [RetryPolicy(max_retries=8, backoff=0.5, rand=random.Random(seed).random)
                for seed in (1, 2)]  # fmt: skip
    first, second = [await backoff_of(policy, failures=8) for policy in replicas]
    ceilings = [min(0.5 * 2**n, MAX_BACKOFF) for n in range(8)]
    assert ceilings[-2:] == [MAX_BACKOFF, MAX_BACKOFF]
    for delays in (first, second):
        assert all(0 <= d < top for d, top in zip(delays, ceilings, strict=True))
    assert all(a != b for a, b in zip(first, second, strict=True))  # never in lockstep


async def test_the_jitter_spans_zero_to_the_doubled_backoff() -> None:
    draws = iter([0.0, 0.5, 0.999, 0.999])
    policy = RetryPolicy(max_retries=4, backoff=0.5, rand=lambda: next(draws))
    assert await backoff_of(policy, failures=4) == [0.0, 0.5, 0.999 * 2.0, 0.999 * 4.0]


async def test_a_delay_the_provider_names_is_kept_exactly() -> None:
    def no_draws() -> float:
        raise AssertionError("a Retry-After delay is not jittered")

    policy = RetryPolicy(max_retries=3, backoff=0.5, rand=no_draws)
    assert await backoff_of(policy, failures=3, retry_after=7.0) == [7.0, 7.0, 7.0]
