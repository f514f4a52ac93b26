"""Progress messages: what a person reads while a run streams its reply."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from fastmcp import Client

from agents_mcp.engine.agent import RunEvent
from agents_mcp.messages import LLMRequest
from agents_mcp.server.app import create_server
from agents_mcp.server.progress import MAX_INTERVAL, RATE, Messages, relayed, stretched, waiting
from agents_mcp.testing import ScriptedLLM
from tests.conftest import make_config
from tests.downstream_server import make_server

pytestmark = pytest.mark.anyio


def test_streamed_text_is_shown_every_200_characters_shortened() -> None:
    messages = Messages()
    assert messages(RunEvent("status", "thinking (turn 1/12)")) == "thinking (turn 1/12)"
    said = [messages(RunEvent("text", "word " * 10)) for _ in range(5)]  # 50 characters each
    assert said[:3] == [None, None, None]
    assert said[3] == "writing: …" + " ".join(["word"] * 24)  # the last 120 characters
    assert said[4] is None
    # A status starts the count again.
    assert messages(RunEvent("status", "calling fs__read")) == "calling fs__read"
    assert messages(RunEvent("text", "x" * 199)) is None
    assert messages(RunEvent("text", "\ny")) == "writing: …" + "x" * 118 + " y"


def test_many_waiting_requests_share_the_progress_rate() -> None:
    assert RATE == 100 and MAX_INTERVAL == 10
    assert stretched(1.0, 1) == stretched(1.0, 100) == 1.0  # up to RATE: each its interval
    assert stretched(1.0, 400) == 4.0  # 400 waiting: RATE messages a second between them
    assert stretched(1.0, 100_000) == MAX_INTERVAL  # never longer than that
    assert stretched(30.0, 100_000) == 30.0  # an interval set longer stays as set
    assert stretched(0.02, 1) == 0.02


async def test_a_request_counts_as_waiting_while_its_relay_is_open() -> None:
    async def send(progress: float, message: str) -> None:
        raise AssertionError("nothing to send within an hour")

    before = waiting()
    async with relayed(send, 3600) as one, relayed(send, 3600):
        assert waiting() == before + 2
        await one(RunEvent("status", "thinking (turn 1/12)"))
    assert waiting() == before
    async with relayed(send, 0):  # every message at once: no interval, nothing shared
        assert waiting() == before


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_waiting_call_gets_a_heartbeat_while_a_step_lasts(
    tmp_path: Path, mode: str
) -> None:
    sent: list[tuple[float, str]] = []
    arrived = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        nonlocal arrived
        sent.append((progress, message or ""))
        arrived.set()
        arrived = anyio.Event()

    def shown() -> list[str]:
        """The times waited that the heartbeats about a step showed so far."""
        return [m.rpartition(", ")[2] for _, m in sent if " · still working, " in m]

    async def slow(request: LLMRequest) -> str:
        # The model "thinks" until the caller has heard four heartbeats about it, and
        # the time they show has grown (shown to 0.1 s: a few intervals of 0.02 s).
        while len(shown()) < 4 or len(set(shown())) < 2:
            await arrived.wait()
        return "done at last"

    llm = ScriptedLLM(slow)
    config = make_config(tmp_path, server={"progress_interval": 0.02})
    mcp = create_server(
        config,
        db_path=tmp_path / "threads.db",
        llms={"main": llm},
        transports={"notes": make_server("notes")},
    )
    async with Client(mcp, mode=mode) as client:
        with anyio.fail_after(20):
            result = await client.call_tool(
                "chat_with_agent",
                {"agent": "helper", "message": "take your time"},
                progress_handler=on_progress,
            )
    assert result.structured_content["reply"] == "done at last"
    progress, messages = [p for p, _ in sent], [m for _, m in sent]
    assert progress == sorted(set(progress))  # the time waited: increasing
    # Before the run's first event reaches the relay (a loaded machine may take longer
    # than one interval to store the thread), a heartbeat has no step to repeat.
    first = next(i for i, m in enumerate(messages) if not m.startswith("still working, "))
    assert messages[first] == "thinking (turn 1/12)"
    beats = [m for m in messages[first:] if " · still working, " in m]
    assert len(beats) >= 4
    step, _, _ = beats[0].partition(" · ")
    assert step == "thinking (turn 1/12)"  # the current step
    waited = [float(m.rpartition(", ")[2].removesuffix(" s")) for m in beats]
    assert waited == sorted(waited) and waited[-1] > waited[0]  # the time waited, shown


async def test_wait_seconds_says_how_to_choose_it(tmp_path: Path) -> None:
    mcp = create_server(make_config(tmp_path), db_path=tmp_path / "t.db", llms={})
    async with Client(mcp) as client:
        tools = {t.name: t for t in await client.list_tools()}
    for name in ("chat_with_agent", "approve_call", "get_thread"):
        described = tools[name].input_schema["properties"]["wait_seconds"]["description"]
        assert "keep this under about 50 unless your client resets its timeout" in described
