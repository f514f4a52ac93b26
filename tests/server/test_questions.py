"""A downstream server's questions relayed to the person, as users meet them.

Real downstream FastMCP servers (subprocesses, over stdio and streamable HTTP, in both
protocol eras) whose tool asks during a call; agents-mcp in process, its model scripted;
real protocol clients: ``fastmcp.Client`` without elicitation (the question comes back
in the result and is answered with ``answer_question``) and with it (asked inline).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as mt
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from agents_mcp.server.app import create_server
from agents_mcp.store.states import STOPPED_ASKING
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config, stdio_downstream
from tests.processes import http_downstream
from tests.reading import structured, text_of

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]
ASK = Call("notes__ask", {"question": "Which colour?"}, id="c1")


@contextmanager
def notes(how: str, protocol: str, **more: Any) -> Iterator[dict[str, Any]]:
    """The test server (with ``--extra``) as a subprocess over stdio or HTTP."""
    if how == "stdio":
        yield stdio_downstream("--extra", protocol=protocol)
    else:
        with http_downstream("notes", extra=True) as url:
            yield {"url": url, "protocol": protocol, **more}


def helper(tmp_path: Path, server: dict[str, Any], **settings: Any) -> Any:
    agents = {
        "helper": {
            "description": "d",
            "model": "main",
            "servers": ["notes"],
            "require_approval": "never",
        }
    }
    return make_config(tmp_path, servers={"notes": server}, agents=agents, server=settings or None)


@asynccontextmanager
async def serving(
    tmp_path: Path, server: dict[str, Any], llm: ScriptedLLM, **client: Any
) -> AsyncIterator[Client[Any]]:
    config = helper(tmp_path, server, **client.pop("settings", {}))
    mcp = create_server(config, db_path=tmp_path / "t.db", llms={"main": llm})
    async with Client(mcp, **client) as connected:
        yield connected


def results(llm: ScriptedLLM, request: int = 1) -> list[str | None]:
    """The tool results the model was shown in its ``request``-th request."""
    return [m.content for m in llm.requests[request].messages if m.role == "tool"]


@pytest.mark.parametrize("protocol", ERAS)
@pytest.mark.parametrize("how", ["stdio", "http"])
async def test_a_client_without_elicitation_answers_with_the_tool(
    tmp_path: Path, how: str, protocol: str
) -> None:
    llm = ScriptedLLM(ASK, "done")
    with notes(how, protocol) as server:
        async with serving(tmp_path, server, llm) as client:
            with anyio.fail_after(60):
                first = await client.call_tool(
                    "chat_with_agent", {"agent": "helper", "message": "go"}
                )
                tid = structured(first)["thread_id"]
                listed = await call(client, "list_threads")
                shown = await call(client, "get_thread", thread_id=tid)
                (q,) = structured(first)["pending_questions"]
                done = await call(
                    client,
                    "answer_question",
                    thread_id=tid,
                    question_id=q["question_id"],
                    content={"value": "blue"},
                )
                with pytest.raises(ToolError, match="already answered"):
                    await call(
                        client,
                        "answer_question",
                        thread_id=tid,
                        question_id=q["question_id"],
                        content={"value": "red"},
                    )
    assert structured(first)["status"] == "running"
    assert (q["server"], q["tool"], q["call_id"], q["message"]) == (
        "notes",
        "ask",
        "c1",
        "Which colour?",
    )
    assert q["requested_schema"]["properties"]["value"]["type"] == "string"
    assert q["via"] == ["helper"]
    text = text_of(first.content[0])
    assert 'notes__ask asks: "Which colour?"' in text
    assert f"answer_question(thread_id={tid!r}, question_id=" in text
    assert "Next: answer_question" in text
    assert listed["threads"][0]["pending_questions"] == [q]
    assert shown["pending_questions"] == [q]
    assert (done["status"], done["reply"], "pending_questions" in done) == (
        "completed",
        "done",
        False,
    )
    assert results(llm) == ["asked 'Which colour?': accept blue"]


@pytest.mark.parametrize("protocol", ERAS)
@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_declines_and_cancels_reach_the_server_as_such(
    tmp_path: Path, action: str, protocol: str
) -> None:
    llm = ScriptedLLM(ASK, "done")
    with notes("stdio", protocol) as server:
        async with serving(tmp_path, server, llm) as client:
            with anyio.fail_after(60):
                first = await call(client, "chat_with_agent", agent="helper", message="go")
                (q,) = first["pending_questions"]
                done = await call(
                    client,
                    "answer_question",
                    thread_id=first["thread_id"],
                    question_id=q["question_id"],
                    action=action,
                )
    assert done["status"] == "completed"
    assert results(llm) == [f"asked 'Which colour?': {action} None"]


async def test_an_answer_that_does_not_fit_the_form_is_refused_and_the_question_stays(
    tmp_path: Path,
) -> None:
    llm = ScriptedLLM(ASK, "done")
    with notes("stdio", "legacy") as server:
        async with serving(tmp_path, server, llm) as client:
            with anyio.fail_after(60):
                first = await call(client, "chat_with_agent", agent="helper", message="go")
                tid, (q,) = first["thread_id"], first["pending_questions"]
                asked = {"thread_id": tid, "question_id": q["question_id"]}
                with pytest.raises(ToolError, match="value: 3 is not of type 'string'"):
                    await call(client, "answer_question", **asked, content={"value": 3})
                with pytest.raises(ToolError, match="content goes with action 'accept' only"):
                    await call(
                        client, "answer_question", **asked, action="decline", content={"a": 1}
                    )
                with pytest.raises(ToolError, match="question 'q_nope' not found"):
                    await call(client, "answer_question", thread_id=tid, question_id="q_nope")
                still = await call(client, "get_thread", thread_id=tid)
                done = await call(client, "answer_question", **asked, content={"value": "red"})
    assert still["pending_questions"] == [q]
    assert done["status"] == "completed"


@pytest.mark.parametrize("protocol", ERAS)
async def test_a_client_that_elicits_is_asked_inline_and_the_call_completes(
    tmp_path: Path, protocol: str
) -> None:
    """Handshake era, elicitation declared: one chat_with_agent call, the server's form."""
    seen: list[tuple[str, Any]] = []

    async def person(message: str, response_type: Any, params: Any, context: Any) -> Any:
        seen.append((message, params.requested_schema))
        return mt.ElicitResult(action="accept", content={"value": "green"})

    llm = ScriptedLLM(ASK, "done")
    with notes("stdio", protocol) as server:
        async with serving(
            tmp_path, server, llm, mode="legacy", elicitation_handler=person
        ) as client:
            with anyio.fail_after(60):
                done = await call(client, "chat_with_agent", agent="helper", message="go")
    assert done["status"] == "completed"
    ((message, schema),) = seen
    assert message == "notes__ask asks: Which colour?"
    assert schema["properties"]["value"]["type"] == "string"
    assert results(llm) == ["asked 'Which colour?': accept green"]


async def test_the_call_s_timeout_stands_still_while_the_person_thinks(tmp_path: Path) -> None:
    """The server's ``timeout`` bounds the server, not the person: an answer given after
    it passed still reaches the tool (handshake era over HTTP, where the SDK's own clock
    and a read timeout on the quiet stream would both have failed the call)."""
    llm = ScriptedLLM(ASK, "done")
    with notes("http", "legacy", timeout=1) as server:
        async with serving(tmp_path, server, llm) as client:
            with anyio.fail_after(60):
                first = await call(client, "chat_with_agent", agent="helper", message="go")
                (q,) = first["pending_questions"]
                await anyio.sleep(2.5)  # the person thinks for longer than the timeout
                done = await call(
                    client,
                    "answer_question",
                    thread_id=first["thread_id"],
                    question_id=q["question_id"],
                    content={"value": "slow"},
                )
    assert done["status"] == "completed"
    assert results(llm) == ["asked 'Which colour?': accept slow"]


async def test_a_question_nobody_answers_in_time_is_closed_and_a_late_answer_refused(
    tmp_path: Path,
) -> None:
    llm = ScriptedLLM(ASK, "done")
    with notes("stdio", "legacy") as server:
        async with serving(tmp_path, server, llm, settings={"question_timeout": 0.5}) as client:
            with anyio.fail_after(60):
                first = await call(client, "chat_with_agent", agent="helper", message="go")
                tid, (q,) = first["thread_id"], first["pending_questions"]
                done = first
                while done["status"] == "running":  # answers at once while a question waits
                    done = await call(client, "get_thread", thread_id=tid, wait_seconds=30)
                with pytest.raises(ToolError) as late:
                    await call(
                        client, "answer_question", thread_id=tid, question_id=q["question_id"]
                    )
    assert done["status"] == "completed"
    assert results(llm) == ["asked 'Which colour?': cancel None"]
    assert str(late.value) == (
        f"question {q['question_id']!r} can no longer be answered: nobody answered within"
        " question_timeout (0.5 s): its tool was told the question was cancelled. get_thread"
        " shows where the thread is now"
    )


@pytest.mark.parametrize("protocol", ERAS)
async def test_cancel_run_closes_the_question_and_the_call_did_not_complete(
    tmp_path: Path, protocol: str
) -> None:
    llm = ScriptedLLM(ASK, "done")
    with notes("stdio", protocol) as server:
        async with serving(tmp_path, server, llm) as client:
            with anyio.fail_after(60):
                first = await call(client, "chat_with_agent", agent="helper", message="go")
                tid, (q,) = first["thread_id"], first["pending_questions"]
                cancelled = await call(client, "cancel_run", thread_id=tid)
                page = await call(client, "get_thread", thread_id=tid, include_messages=True)
                with pytest.raises(ToolError, match="can no longer be answered: the run"):
                    await call(
                        client, "answer_question", thread_id=tid, question_id=q["question_id"]
                    )
    assert (cancelled["status"], "pending_questions" in cancelled) == ("cancelled", False)
    (result,) = [m["content"] for m in page["messages"] if m["role"] == "tool"]
    assert result == STOPPED_ASKING.format(message="'Which colour?'")


async def test_a_delegated_agent_s_question_is_answered_on_the_top_level_thread(
    tmp_path: Path,
) -> None:
    llm = ScriptedLLM(
        Call("agent__helper", {"message": "ask them"}, id="d1"), ASK, "asked", "all done"
    )
    agents = {
        "boss": {"description": "d", "model": "main", "agents": ["helper"]},
        "helper": {
            "description": "d",
            "model": "main",
            "servers": ["notes"],
            "require_approval": "never",
        },
    }
    with notes("stdio", "2026-07-28") as server:
        config = make_config(tmp_path, servers={"notes": server}, agents=agents)
        mcp = create_server(config, db_path=tmp_path / "t.db", llms={"main": llm})
        async with Client(mcp) as client:
            with anyio.fail_after(60):
                first = await call(client, "chat_with_agent", agent="boss", message="go")
                (q,) = first["pending_questions"]
                done = await call(
                    client,
                    "answer_question",
                    thread_id=first["thread_id"],
                    question_id=q["question_id"],
                    content={"value": "teal"},
                )
    assert q["via"] == ["boss", "helper"] and q["thread_id"] != first["thread_id"]
    assert (done["status"], done["reply"]) == ("completed", "all done")


async def test_the_view_shows_the_question_on_its_call_and_answers_it(tmp_path: Path) -> None:
    """What the thread view reads (watch_thread) and calls (answer_question)."""
    from tests.server.test_ui import APPS

    llm = ScriptedLLM(ASK, "done")
    with notes("stdio", "legacy") as server:
        async with serving(tmp_path, server, llm, extensions=[APPS]) as client:
            with anyio.fail_after(60):
                first = await call(client, "chat_with_agent", agent="helper", message="go")
                tid = first["thread_id"]
                view = await call(client, "watch_thread", thread_id=tid)
                (q,) = view["pending_questions"]
                await call(
                    client,
                    "answer_question",
                    thread_id=tid,
                    question_id=q["question_id"],
                    content={"value": "from the view"},
                    wait_seconds=0,
                )
                after = await call(
                    client, "watch_thread", thread_id=tid, since=view["version"], wait_seconds=30
                )
                while after["status"] == "running":
                    after = await call(
                        client,
                        "watch_thread",
                        thread_id=tid,
                        since=after["version"],
                        wait_seconds=30,
                    )
    (step,) = [s for s in view["tree"]["steps"] if s["calls"]]
    assert [(c["call_id"], c["state"]) for c in step["calls"]] == [("c1", "question")]
    assert after["status"] == "completed"
    assert results(llm) == ["asked 'Which colour?': accept from the view"]


async def test_the_tools_tell_the_model_how_a_question_is_answered(tmp_path: Path) -> None:
    """A model reading only tools/list learns that a running result may carry questions
    and which tool answers them."""
    with notes("stdio", "legacy") as server:
        async with serving(tmp_path, server, ScriptedLLM("done")) as client:
            with anyio.fail_after(60):
                tools = {t.name: t for t in await client.list_tools()}
    chat = tools["chat_with_agent"].description or ""
    assert "pending_questions" in chat and "answer_question" in chat
    assert "answer_question" in tools
