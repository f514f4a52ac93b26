"""A downstream server's questions (elicitation) during a tool call, in both protocol
eras, over stdio and streamable HTTP: they reach the handler of the call that caused
them, and the tool gets the answer."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import mcp_types as mt
import pytest

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream.elicit import ElicitAnswer, Elicitation, Questions
from agents_mcp.downstream.servers import DownstreamServer
from tests.conftest import stdio_downstream
from tests.processes import http_downstream

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]


@contextmanager
def reached(how: str, protocol: str) -> Iterator[DownstreamServerConfig]:
    """The test server (with ``--extra``) as a subprocess over stdio or HTTP."""
    era: Any = protocol
    if how == "stdio":
        yield DownstreamServerConfig(**stdio_downstream("--extra"), protocol=era)
    else:
        with http_downstream("notes", extra=True) as url:
            yield DownstreamServerConfig(url=url, protocol=era)


class Asked:
    """A handler that records the questions it gets and answers ``action``."""

    def __init__(self, action: Any = "decline", content: dict[str, Any] | None = None) -> None:
        self.answer = ElicitAnswer(action, content)
        self.questions: list[Elicitation] = []

    async def __call__(self, question: Elicitation) -> ElicitAnswer:
        self.questions.append(question)
        return self.answer


@pytest.mark.parametrize("protocol", ERAS)
@pytest.mark.parametrize("how", ["stdio", "http"])
async def test_a_question_reaches_the_handler_of_the_call_and_the_tool_gets_the_answer(
    how: str, protocol: str
) -> None:
    asked = Asked("decline")
    with reached(how, protocol) as config:
        server = DownstreamServer("notes", config)
        try:
            with anyio.fail_after(60):
                out = await server.call("ask", {"question": "Which colour?"}, on_elicit=asked)
                accepted = await server.call(
                    "ask", {"question": "Again?"}, on_elicit=Asked("accept", {"value": "blue"})
                )
        finally:
            await server.aclose()
    assert (out.ok, out.text) == (True, "asked 'Which colour?': decline None")
    assert (accepted.ok, accepted.text) == (True, "asked 'Again?': accept blue")
    (question,) = asked.questions
    assert (question.server, question.tool, question.message) == ("notes", "ask", "Which colour?")
    assert question.requested_schema is not None
    assert question.requested_schema["properties"]["value"]["type"] == "string"
    assert question.url is None


async def test_calls_of_different_runs_each_get_their_own_questions_in_the_2026_era() -> None:
    """One client, many runs: in the 2026-07-28 era a question is tied to its call."""
    handlers = {f"q{i}": Asked("accept", {"value": f"answer {i}"}) for i in range(5)}
    outs: dict[str, str] = {}
    with reached("stdio", "2026-07-28") as config:
        server = DownstreamServer("notes", config)

        async def one(question: str) -> None:
            got = await server.call("ask", {"question": question}, on_elicit=handlers[question])
            outs[question] = got.text

        try:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for question in handlers:
                        tg.start_soon(one, question)
        finally:
            await server.aclose()
    assert outs == {q: f"asked {q!r}: accept answer {q[1:]}" for q in handlers}
    assert {q: [x.message for x in h.questions] for q, h in handlers.items()} == {
        q: [q] for q in handlers
    }


async def test_a_question_whose_call_cannot_be_told_goes_to_the_server_s_handler() -> None:
    """The handshake era names no call: with calls of two runs in flight, neither is asked."""
    fallback, first, second = Asked("cancel"), Asked(), Asked()
    questions = Questions("notes", fallback)
    params = mt.ElicitRequestFormParams(message="Sure?", requested_schema={"type": "object"})

    async def from_the_session() -> mt.ElicitResult:
        # The session's own task: a context of its own, not a call's.
        task = asyncio.create_task(
            questions.answer("Sure?", None, params, None), context=contextvars.Context()
        )
        return await task

    with questions.during("write", first):
        alone = await from_the_session()
        with questions.during("read", second):
            ambiguous = await from_the_session()
    assert (alone.action, ambiguous.action) == ("decline", "cancel")
    assert [q.tool for q in first.questions] == ["write"]
    assert second.questions == []
    assert [q.tool for q in fallback.questions] == [None]


@pytest.mark.parametrize("protocol", ERAS)
async def test_the_call_s_time_limit_stands_still_while_its_handler_waits(protocol: str) -> None:
    """``timeout`` bounds the server: a person answering after it passed still counts."""

    async def slow_person(question: Elicitation) -> ElicitAnswer:
        await anyio.sleep(1.5)  # the person thinks for longer than the call may take
        return ElicitAnswer("accept", {"value": "late"})

    with reached("stdio", protocol) as config:
        server = DownstreamServer("notes", config.model_copy(update={"timeout": 0.5}))
        try:
            with anyio.fail_after(60):
                await server.tools()  # started (the first call waits for it in 2026-07-28)
                asked = await server.call("ask", {"question": "Well?"}, on_elicit=slow_person)
                slept = await server.call("sleep", {"seconds": 30})
        finally:
            await server.aclose()
    assert (asked.ok, asked.text) == (True, "asked 'Well?': accept late")
    assert (slept.ok, slept.text.split(";")[0]) == (
        False,
        "Error: sleep did not finish within 0.5 s (the timeout of server 'notes')",
    )


async def test_a_handler_still_waiting_when_its_call_ends_is_cancelled() -> None:
    """Handshake era: the handler runs in the session's task, not the call's; when the
    call ends (here: its caller gives up), the server withdraws its question and the
    handler is cancelled; the client carries on."""
    asked, ended = anyio.Event(), anyio.Event()

    async def person(question: Elicitation) -> ElicitAnswer:
        asked.set()
        try:
            await anyio.sleep_forever()
        finally:
            ended.set()
        raise AssertionError("unreachable")

    with reached("stdio", "legacy") as config:
        server = DownstreamServer("notes", config)
        try:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(lambda: server.call("ask", {"question": "?"}, on_elicit=person))
                    await asked.wait()
                    tg.cancel_scope.cancel()
                await ended.wait()
                after = await server.call("echo", {"text": "still here"})
        finally:
            await server.aclose()
    assert (after.ok, after.text) == (True, "notes echo: still here")


async def test_a_question_carries_the_id_of_the_call_it_came_during() -> None:
    got = Asked("accept", {"value": "x"})
    with reached("stdio", "2026-07-28") as config:
        server = DownstreamServer("notes", config)
        try:
            with anyio.fail_after(60):
                await server.call("ask", {"question": "?"}, on_elicit=got, call_id="c7")
        finally:
            await server.aclose()
    assert [(q.tool, q.call_id) for q in got.questions] == [("ask", "c7")]


async def test_a_handler_is_cancelled_when_no_call_it_may_belong_to_goes_on() -> None:
    """Even when the server never withdraws its question: once the calls it may belong
    to have all ended, the handler is cancelled and the server gets ``cancel``."""
    asked, ended = anyio.Event(), anyio.Event()

    async def person(question: Elicitation) -> ElicitAnswer:
        asked.set()
        try:
            await anyio.sleep_forever()
        finally:
            ended.set()
        raise AssertionError("unreachable")

    questions = Questions("notes")
    params = mt.ElicitRequestFormParams(message="Sure?", requested_schema={"type": "object"})
    with anyio.fail_after(10):
        with questions.during("write", person, call_id="a"):
            with questions.during("write", person, call_id="b"):
                # The session's own task, as in the handshake era: it names neither call.
                task = asyncio.create_task(
                    questions.answer("Sure?", None, params, None), context=contextvars.Context()
                )
                await asked.wait()
            assert not ended.is_set()  # call "a" may still be the one that asked
        answered = await task
    assert ended.is_set() and answered.action == "cancel"
