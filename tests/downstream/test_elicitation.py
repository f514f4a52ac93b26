"""A downstream server's questions (elicitation) during a tool call, in both protocol
eras, over stdio and streamable HTTP: they reach the handler of the call that caused
them, and the tool gets the answer."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as mt
import pytest
from fastmcp import Client

from agents_mcp.config import DownstreamServerConfig
from agents_mcp.downstream import DownstreamServer, ElicitAnswer, Elicitation
from agents_mcp.downstream.elicit import Questions
from agents_mcp.server.app import create_server
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import DOWNSTREAM, call, make_config
from tests.processes import http_downstream

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]


@contextmanager
def reached(how: str, protocol: str) -> Iterator[DownstreamServerConfig]:
    """The test server (with ``--extra``) as a subprocess over stdio or HTTP."""
    era: Any = protocol
    if how == "stdio":
        yield DownstreamServerConfig(
            command=sys.executable, args=[DOWNSTREAM, "--extra"], protocol=era
        )
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


async def test_the_model_sees_the_tool_s_result_after_nobody_was_asked(tmp_path: Path) -> None:
    """Until questions are relayed to a person, they are dismissed with ``cancel``."""
    llm = ScriptedLLM(Call("notes__ask", {"question": "Delete it?"}), "done")
    config = make_config(
        tmp_path,
        servers={"notes": {"command": sys.executable, "args": [DOWNSTREAM, "--extra"]}},
        agents={
            "helper": {
                "description": "d",
                "model": "main",
                "servers": ["notes"],
                "require_approval": "never",
            }
        },
    )
    mcp = create_server(config, db_path=tmp_path / "t.db", llms={"main": llm})
    async with Client(mcp) as client:
        payload = await call(client, "chat_with_agent", agent="helper", message="go")
    assert payload["reply"] == "done"
    shown = [m.content for m in llm.requests[1].messages if m.role == "tool"]
    assert shown == ["asked 'Delete it?': cancel None"]
