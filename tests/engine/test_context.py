"""The context budget: a thread grown past its model's context window keeps working.

Every request stays within ``context_tokens`` (less the room kept for the answer), turns
leave whole (a call never without its result, an answer never without its reasoning), the
caller's latest message stays, the model is told what was left out, and the stored thread
keeps everything. Each provider's adapter runs against its wire-format fake, whose own
rules (results right after their calls, a user turn first, signed thinking blocks, encrypted
reasoning items) would refuse a request that broke them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from inline_snapshot import snapshot

from agents_mcp.config import config_from_dict
from agents_mcp.engine.context import ContextWindow, calibrated, message_chars
from agents_mcp.engine.transcript import Transcript
from agents_mcp.messages import LLMRequest, LLMResponse, Message, ToolCall, Usage
from agents_mcp.server.app import create_server
from agents_mcp.store import StoredMessage
from agents_mcp.testing.anthropic_server import FakeAnthropicServer
from agents_mcp.testing.chat_server import FakeChatServer
from agents_mcp.testing.fake_server import FakeServer
from agents_mcp.testing.responses_server import FakeResponsesServer
from tests.conftest import call
from tests.downstream_server import make_server

pytestmark = pytest.mark.anyio

CONTEXT = 4000
MAX_TOKENS = 500
RESULT = 1500
"""Characters of each tool result: a few turns fill the window."""

FAKES: dict[str, type[FakeServer]] = {
    "openai": FakeChatServer,
    "anthropic": FakeAnthropicServer,
    "responses": FakeResponsesServer,
}
THINKING: dict[str, dict[str, Any]] = {
    "openai": {},
    "anthropic": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
    "responses": {"reasoning": {"effort": "low", "summary": "auto"}},
}


def tokens(body: dict[str, Any]) -> int:
    """What the fake counts a request as: its JSON body at four characters a token."""
    return len(json.dumps(body)) // 4


class Worker:
    """Each turn: think, call ``notes__big``, then answer; usage as the fake counts it."""

    def __init__(self) -> None:
        self.fake: FakeServer | None = None
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest, *, on_text: Any = None) -> LLMResponse:
        assert self.fake is not None
        self.requests.append(request)
        usage = Usage(input_tokens=tokens(self.fake.requests[-1]), output_tokens=20)
        last = request.messages[-1]
        n = len(self.requests)
        if last.role == "user":
            call = ToolCall(
                id=f"call_{n}", name="notes__big", arguments=json.dumps({"size": RESULT})
            )
            return LLMResponse(
                content=None, tool_calls=(call,), reasoning=f"I need data ({n}).", usage=usage
            )
        return LLMResponse(content=f"done ({n})", reasoning=f"Enough ({n}).", usage=usage)


@pytest.fixture(params=list(FAKES))
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_thread_past_its_context_window_keeps_working(
    tmp_path: Path, provider: str
) -> None:
    worker = Worker()
    fake = FAKES[provider](worker)
    worker.fake = fake
    turns = 14
    async with fake.serve() as base_url:
        model = {
            "provider": provider,
            "base_url": base_url,
            "model": "m",
            "context_tokens": CONTEXT,
            "max_tokens": MAX_TOKENS,
            "extra": THINKING[provider],
        }
        cfg = config_from_dict(
            {
                "mcpServers": {"notes": {"command": "unused"}},
                "models": {"main": model},
                "agents": {
                    "helper": {
                        "description": "d",
                        "model": "main",
                        "servers": ["notes"],
                        "require_approval": "never",
                    }
                },
            },
            path=tmp_path / "agents.toml",
        )
        mcp = create_server(cfg, db_path=tmp_path / "t.db", transports={"notes": make_server()})
        async with Client(mcp) as client:
            tid = None
            for n in range(turns):
                args: dict[str, Any] = {"agent": "helper", "message": f"turn {n}"}
                if tid is not None:
                    args["thread_id"] = tid
                result = await call(client, "chat_with_agent", **args)
                assert result["status"] == "completed", result["error"]
                tid = result["thread_id"]
            # The whole stored thread, page by page (a page stays within the reply budget).
            stored: list[dict[str, Any]] = []
            before: int | None = None
            while True:
                page_args: dict[str, Any] = {"thread_id": tid, "include_messages": True}
                if before is not None:
                    page_args["messages_before"] = before
                page = await call(client, "get_thread", **page_args)
                stored = page["messages"] + stored
                before = page["messages_before"]
                if before is None:
                    break
    sizes = [tokens(body) for body in fake.requests]
    assert max(sizes) <= CONTEXT - MAX_TOKENS  # every request fits, with room for the answer
    assert sizes[-1] > (CONTEXT - MAX_TOKENS) // 2  # and the window is used, not wasted
    assert [m["index"] for m in stored] == list(range(turns * 4))  # the thread keeps it all
    told = [r for r in worker.requests if (r.messages[0].content or "").startswith("[agents-mcp:")]
    assert len(told) > turns  # most requests of the later turns left something out
    first = told[-1].messages
    omitted = int((first[0].content or "").split()[2])
    assert first[0].content == (
        f"[agents-mcp: the {omitted} oldest messages of this conversation are left out of this"
        " request to fit the model's context window (4000 tokens). The whole transcript stays"
        " in the thread; ask the user if you need something from it.]"
    )
    # What was left out is exactly what precedes the messages sent.
    assert first[1:] == worker.requests[-1].messages[1:] or omitted > 0
    for request in worker.requests:  # the caller's latest message is always there
        said = [m.content for m in request.messages if m.role == "user"]
        assert said[-1] == f"turn {_turn(worker, request)}"


def _turn(worker: Worker, request: LLMRequest) -> int:
    """Which turn a request belongs to (two requests per turn)."""
    return worker.requests.index(request) // 2


# --- the window, message by message -----------------------------------------------------------


def transcript(*messages: Message) -> Transcript:
    history = [StoredMessage(index=i, message=m) for i, m in enumerate(messages)]
    # No store: these tests only measure the window, which never reads or writes one.
    return Transcript(None, "th_x", history, budget=10_000)  # type: ignore[arg-type]


def turn(n: int, calls: int = 1, size: int = 100) -> list[Message]:
    ids = [f"c{n}_{i}" for i in range(calls)]
    answer = Message(
        role="assistant",
        tool_calls=tuple(ToolCall(id=i, name="t", arguments="{}") for i in ids),
    )
    results = [Message(role="tool", tool_call_id=i, content="x" * size) for i in ids]
    return [
        Message(role="user", content=f"q{n}"),
        answer,
        *results,
        Message(role="assistant", content=f"a{n}"),
    ]


def roles(messages: list[Message]) -> list[str]:
    return [f"{m.role}:{m.content or m.tool_call_id or ''}"[:12] for m in messages]


def test_whole_steps_leave_the_window_oldest_first() -> None:
    """A request starts at a user message or at an answer, whose results follow it."""
    t = transcript(*turn(0, calls=2), *turn(1), *turn(2))
    total = sum(message_chars(m) for m in t.prompt())
    kept, omitted, cost = t.window(total)
    assert (omitted, cost, len(kept)) == (0, total, 13)
    kept, omitted, cost = t.window(total - 1)
    assert roles(kept) == snapshot(
        [
            "assistant:a0",
            "user:q1",
            "assistant:",
            "tool:xxxxxxx",
            "assistant:a1",
            "user:q2",
            "assistant:",
            "tool:xxxxxxx",
            "assistant:a2",
        ]
    )
    assert omitted == 4  # the first question, the call and both its results
    assert cost == sum(message_chars(m) for m in kept)


def test_a_cut_never_separates_a_call_from_its_results() -> None:
    t = transcript(*turn(0), *turn(1, calls=3, size=400))
    for limit in range(0, 2000, 7):
        kept, _, _ = t.window(limit)
        asked = {c.id for m in kept for c in m.tool_calls}
        answered = {m.tool_call_id for m in kept if m.role == "tool"}
        assert asked == answered
        assert kept[0].role == "user" or kept[0].role == "assistant"


def test_the_latest_message_stays_when_its_own_turn_is_too_big() -> None:
    steps = [Message(role="user", content="the task")]
    for n in range(6):  # one long turn: six rounds of a call and its result
        call = ToolCall(id=f"c{n}", name="t", arguments="{}")
        steps += [
            Message(role="assistant", tool_calls=(call,)),
            Message(role="tool", tool_call_id=f"c{n}", content="y" * 300),
        ]
    t = transcript(*turn(0), *steps)
    kept, omitted, cost = t.window(1200)
    assert roles(kept) == snapshot(
        [
            "user:the tas",
            "assistant:",
            "tool:yyyyyyy",
            "assistant:",
            "tool:yyyyyyy",
            "assistant:",
            "tool:yyyyyyy",
        ]
    )
    assert (omitted, cost) == (10, sum(message_chars(m) for m in kept))
    assert cost <= 1200


def test_the_window_keeps_its_start_while_the_rest_fits() -> None:
    """Dropping a quarter more than needed keeps the request's prefix (and a provider's
    prompt cache) the same for a few steps instead of moving it every step."""
    t = transcript(*turn(0), *turn(1), *turn(2), *turn(3))
    limit = sum(message_chars(m) for m in t.prompt()) - 10
    kept, omitted, _ = t.window(limit)
    assert omitted == 5  # 10 characters too many, yet a quarter of the budget went
    for m in turn(4)[:2]:
        t._project(m)  # the next turn starts
    again, omitted_again, _ = t.window(limit)
    assert omitted_again == omitted and again[: len(kept)] == kept


def test_a_result_filled_in_later_updates_the_running_total() -> None:
    t = transcript(*turn(0)[:2])  # the call has no result yet
    before = t.window(10**6)[2]
    t._project(Message(role="tool", tool_call_id="c0_0", content="z" * 1000))
    after = t.window(10**6)[2]
    assert after - before == 1000 - len("Error: no result was recorded")


def test_rejected_answers_are_not_part_of_the_window() -> None:
    t = transcript(
        Message(role="user", content="q"),
        Message(role="assistant", content="not json", status="error"),
        Message(role="event", content="why"),
        Message(role="assistant", content="{}"),
    )
    assert roles(t.prompt()) == ["user:q", "assistant:{}"]


def test_the_estimate_follows_what_the_provider_counts() -> None:
    assert calibrated(4000, 1000, 4.0) == 4.0
    assert calibrated(3000, 1000, 4.0) == 3.0
    assert calibrated(100, 1000, 4.0) == 1.0  # bounded: a provider's odd count cannot zero it
    assert calibrated(4000, 0, 2.5) == 2.5  # nothing reported: keep what we had
    window = ContextWindow.of(8192, None)
    assert (window.reserve, window.limit(1000, 4.0)) == (2048, (8192 - 2048) * 4 - 1000)
    assert ContextWindow.of(200_000, 64_000).reserve == 64_000
    assert ContextWindow.of(1000, 900).reserve == 500
