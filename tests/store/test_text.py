"""Any text round-trips through the store on both databases: U+0000 (which PostgreSQL's
``text`` refuses), the escape PostgreSQL's codec uses, and both together."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agents_mcp.messages import Message, ToolCall
from agents_mcp.store import Approval, Claim, SQLStore, digest, now, open_store
from agents_mcp.store.postgres import ESCAPE, escape_text, restore_text

pytestmark = pytest.mark.anyio

ODD = [
    "a\x00b",
    "\x00",
    ESCAPE,
    ESCAPE + "0",
    ESCAPE + ESCAPE + "\x00" + ESCAPE,
    f"{ESCAPE}\x00{ESCAPE}0",
    "plain",
    "",
]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SQLStore]:
    s = await open_store(db_url)
    try:
        yield s
    finally:
        await s.close()


def test_the_postgresql_codec_round_trips_and_leaves_other_text_alone() -> None:
    for text in ODD:
        stored = escape_text(text)
        assert "\x00" not in stored and restore_text(stored) == text, repr(text)
    assert escape_text("plain ü") == "plain ü"
    assert restore_text(ESCAPE + "x") == ESCAPE + "x"  # not one of ours: as it was


@pytest.mark.parametrize("odd", ODD[:6])
async def test_every_column_of_text_holds_any_text(store: SQLStore, odd: str) -> None:
    owner, run = f"owner{odd}", Claim.new(store.runner)
    thread = await store.create_thread(
        agent="a", owner=owner, first_message=f"hi {odd}", claim=run, personality=odd,
        caller_chain=((odd, "a"),),
    )  # fmt: skip
    call = ToolCall(id=f"c{odd}", name=f"s__t{odd}", arguments=f'{{"x": "{odd!r}"}}')
    asked = Approval(
        thread_id=thread.id, call_id=call.id, server=f"s{odd}", tool=f"t{odd}",
        arguments=call.arguments, digest=digest(call.arguments), status="pending",
        reason=None, requested_at=now(), decided_at=None, reason_hint=odd, via=(odd,),
    )  # fmt: skip
    reply = Message(role="assistant", content=odd, reasoning=odd, tool_calls=(call,))
    await store.append(thread.id, run, reply, approvals=[asked])
    assert await store.pause(thread.id, run)
    again = Claim.new(store.runner)
    decided = await store.decide(
        thread.id, thread.id, call.id, approve=True, reason=odd, claim=again, grant_tool=odd
    )
    assert decided.outcome == "resumed"
    await store.append(thread.id, again, Message(role="tool", tool_call_id=call.id, content=odd))
    await store.fail(thread.id, again, ("run_error", f"failed: {odd}"))

    found = await store.get_thread(thread.id, owner)
    assert (found.owner, found.personality, found.title) == (owner, odd, " ".join(
        f"hi {odd}".split()
    ))  # fmt: skip
    assert (found.error_message, found.caller_chain) == (f"failed: {odd}", ((odd, "a"),))
    messages = [m.message for m in await store.messages(thread.id)]
    assert [m.content for m in messages] == [f"hi {odd}", odd, odd]
    assert messages[1].reasoning == odd and messages[1].tool_calls == (call,)
    (approval,) = await store.approvals(thread.id)
    assert (approval.server, approval.tool, approval.reason, approval.via) == (
        f"s{odd}", f"t{odd}", odd, (odd,)
    )  # fmt: skip
    assert approval.digest == digest(approval.arguments)
    assert (await store.decisions(thread.id))[1] == {odd}
    listed, _ = await store.list_threads(owner=owner)
    assert [t.id for t in listed] == [thread.id]
