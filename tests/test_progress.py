"""Progress messages: what a person reads while a run streams its reply."""

from __future__ import annotations

from agents_mcp.loop import RunEvent
from agents_mcp.progress import Messages


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
