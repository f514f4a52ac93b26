"""``agents_mcp.lines``: line framing and the back-pressured backlog both stdio ends share."""

from __future__ import annotations

import anyio
import pytest

from agents_mcp.lines import HIGH_WATER, Backlog, Splitter

pytestmark = pytest.mark.anyio


class Source:
    """A reading source that records being paused and resumed."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def pause_reading(self) -> None:
        self.events.append("pause")

    def resume_reading(self) -> None:
        self.events.append("resume")


async def test_reading_pauses_at_high_water_and_resumes_below_half() -> None:
    source = Source()
    backlog: Backlog[int] = Backlog()
    backlog.source = source
    for i in range(HIGH_WATER):
        backlog.put(i)
    assert source.events == ["pause"]
    for i in range(HIGH_WATER // 2):
        assert await backlog.take() == i
    assert source.events == ["pause"]  # half still waits
    assert await backlog.take() == HIGH_WATER // 2
    assert source.events == ["pause", "resume"]


async def test_after_the_end_what_waits_is_taken_then_the_stream_ends() -> None:
    backlog: Backlog[str] = Backlog()  # no source known yet: pausing is skipped
    for i in range(HIGH_WATER + 1):
        backlog.put(str(i))
    backlog.end()
    backlog.put("late")
    taken = [await backlog.take() for _ in range(HIGH_WATER + 1)]
    assert taken == [str(i) for i in range(HIGH_WATER + 1)]
    with pytest.raises(anyio.EndOfStream):
        await backlog.take()


def test_a_line_split_across_reads_is_joined_once() -> None:
    split = Splitter()
    assert split.feed(b'{"a"') == []
    assert split.feed(b": 1}\n\n{") == [b'{"a": 1}', b""]
    assert split.feed(b'"b": 2') == []
    assert split.rest() == b'{"b": 2'
    assert split.rest() == b""
