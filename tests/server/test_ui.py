"""The thread view over MCP, in memory, in both protocol eras: who is offered it, what
``watch_thread`` shows, how it follows a running thread, and ``approver = "person"``."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from inline_snapshot import snapshot
from mcp.client.extension import advertise

from agents_mcp.messages import LLMRequest
from agents_mcp.server.app import create_server
from agents_mcp.server.ui import THREAD_UI, UI_EXTENSION, UI_MIME, thread_html
from agents_mcp.server.ui.apps import ListingView
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config
from tests.downstream_server import make_server
from tests.reading import structured, text_of

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]
APPS = advertise(UI_EXTENSION, {"mimeTypes": [UI_MIME]})


@asynccontextmanager
async def connect(
    tmp_path: Path,
    llms: dict[str, ScriptedLLM],
    *,
    mode: str = "legacy",
    apps: bool = True,
    config: dict[str, Any] | None = None,
) -> AsyncIterator[Client[Any]]:
    cfg = make_config(tmp_path, **(config or {}))
    mcp = create_server(
        cfg, db_path=tmp_path / "t.db", llms=llms, transports={"notes": make_server("notes")}
    )
    async with Client(mcp, mode=mode, extensions=[APPS] if apps else None) as client:
        yield client


def helper(policy: str = "read_only", **agent: Any) -> dict[str, Any]:
    return {
        "agents": {
            "helper": {
                "description": "Writes notes",
                "model": "main",
                "servers": ["notes"],
                "require_approval": policy,
                **agent,
            }
        }
    }


def ui_of(tool: Any) -> Any:
    return (tool.meta or {}).get("ui")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("approver", ["model", "person"])
async def test_a_client_without_mcp_apps_sees_todays_tools(
    tmp_path: Path, mode: str, approver: str
) -> None:
    config = {**helper(), "server": {"approver": approver}}
    async with connect(tmp_path, {}, mode=mode, apps=False, config=config) as client:
        tools = {t.name: t for t in await client.list_tools()}
        resources = await client.list_resources()
    assert sorted(tools) == snapshot(
        [
            "answer_question",
            "approve_call",
            "cancel_run",
            "chat_with_agent",
            "delete_thread",
            "get_thread",
            "list_threads",
        ]
    )
    assert [ui_of(t) for t in tools.values()] == [None] * 7
    assert "approve_call" in (tools["chat_with_agent"].description or "")
    assert [str(r.uri) for r in resources] == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("approver", ["model", "person"])
async def test_a_client_with_mcp_apps_gets_the_view(
    tmp_path: Path, mode: str, approver: str
) -> None:
    config = {**helper(), "server": {"approver": approver}}
    async with connect(tmp_path, {}, mode=mode, config=config) as client:
        tools = {t.name: t for t in await client.list_tools()}
        resources = await client.list_resources()
        contents = await client.read_resource(THREAD_UI)
    shown = {name: ui_of(t) for name, t in tools.items()}
    app_only = {"visibility": ["app"]}
    assert shown == {
        "chat_with_agent": {"resourceUri": THREAD_UI},
        "approve_call": app_only if approver == "person" else None,
        "answer_question": app_only if approver == "person" else None,
        "get_thread": {"resourceUri": THREAD_UI},
        "cancel_run": None,
        "list_threads": None,
        "delete_thread": None,
        "watch_thread": {"resourceUri": THREAD_UI, **app_only},
    }
    person_text = "the person decides in the view shown with the result, then call get_thread"
    assert (person_text in (tools["chat_with_agent"].description or "")) == (approver == "person")
    assert [(str(r.uri), r.mime_type) for r in resources] == [(THREAD_UI, UI_MIME)]
    (page,) = contents
    assert (page.mime_type, text_of(page)) == (UI_MIME, thread_html())
    assert page.meta is not None and page.meta["ui"] == {"prefersBorder": True}


async def test_mcp_apps_for_other_content_types_is_not_enough(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, **helper())
    mcp = create_server(cfg, db_path=tmp_path / "t.db", llms={})
    other = advertise(UI_EXTENSION, {"mimeTypes": ["application/x-remote-dom"]})
    async with Client(mcp, extensions=[other]) as client:
        names = sorted(t.name for t in await client.list_tools())
    assert "watch_thread" not in names


def write_note(title: str = "milk", id: str = "w1") -> Call:
    return Call("notes__write_note", {"title": title, "body": "buy some"}, id=id)


@pytest.mark.parametrize("mode", MODES)
async def test_with_approver_person_the_model_is_told_the_person_decides(
    tmp_path: Path, mode: str
) -> None:
    config = {**helper(), "server": {"approver": "person"}}
    llm = ScriptedLLM(write_note(), write_note(id="w2"))
    async with connect(tmp_path, {"main": llm}, mode=mode, config=config) as client:
        with anyio.fail_after(10):
            shown = await client.call_tool("chat_with_agent", {"agent": "helper", "message": "a"})
    async with connect(tmp_path, {"main": llm}, mode=mode, apps=False, config=config) as client:
        with anyio.fail_after(10):
            plain = await client.call_tool("chat_with_agent", {"agent": "helper", "message": "b"})
    text = text_of(shown.content[0])
    tid = structured(shown)["thread_id"]
    assert text.split("\n")[2] == (
        "The person decides each call in the agents-mcp view shown with this result (Approve,"
        " Deny, Allow for this thread); approve_call is theirs, not yours. Tell them the agent"
        f" is waiting for their decision, then call get_thread(thread_id='{tid}',"
        " wait_seconds=30) for the outcome."
    )
    assert "Ask the user, then answer each with approve_call" in text_of(plain.content[0])


def scrub(payload: Any, *ids: str) -> Any:
    text = re.sub(r"x{20,}", lambda m: f"<{len(m[0])} x>", json.dumps(payload))
    for n, tid in enumerate(ids):
        text = text.replace(tid, f"<thread {n}>")
    out = json.loads(text)
    out["version"] = "<version>"
    return out


def team() -> dict[str, Any]:
    agent = {"model": "main", "servers": ["notes"], "require_approval": "read_only"}
    return {
        "agents": {
            "boss": {**agent, "description": "Delegates", "agents": ["scribe"]},
            "scribe": {**agent, "description": "Writes", "model": "scribe"},
        },
        "models": {
            "main": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
            "scribe": {"base_url": "http://127.0.0.1:9/v1", "model": "s"},
        },
    }


async def test_watch_thread_shows_the_steps_with_delegations_as_a_tree(tmp_path: Path) -> None:
    boss = ScriptedLLM(
        "first turn",
        [
            Call("notes__echo", {"text": "hi"}, id="e1"),
            Call("agent__scribe", {"message": "note it"}, id="d1"),
        ],
        "all done",
    )
    scribe = ScriptedLLM(Call("notes__echo", {"text": "x" * 700}, id="e2"), write_note(), "written")
    async with connect(tmp_path, {"main": boss, "scribe": scribe}, config=team()) as client:
        first = await call(client, "chat_with_agent", agent="boss", message="warm up")
        tid = first["thread_id"]
        paused = await call(client, "chat_with_agent", agent="boss", message="go", thread_id=tid)
        view = await call(client, "watch_thread", thread_id=tid)
        (child,) = view["tree"]["children"]
        await call(client, "approve_call", thread_id=tid, call_id="w1", approve=True)
        done = await call(client, "watch_thread", thread_id=tid)
    assert paused["status"] == "needs_approval"
    assert view["pending_approvals"] == paused["pending_approvals"]
    assert scrub(view["tree"] | {"version": ""}, tid, child["thread_id"]) == snapshot(
        {
            "thread_id": "<thread 0>",
            "agent": "boss",
            "status": "needs_approval",
            "title": "warm up",
            "parent_call_id": None,
            "earlier_messages": 2,
            "steps": [
                {"index": 2, "kind": "user", "text": "go", "text_chars": 2, "calls": []},
                {
                    "index": 3,
                    "kind": "model",
                    "text": None,
                    "text_chars": 0,
                    "calls": [
                        {
                            "call_id": "e1",
                            "name": "notes__echo",
                            "arguments": {"text": "hi"},
                            "state": "done",
                            "result_preview": "notes echo: hi",
                            "result_chars": 14,
                        },
                        {
                            "call_id": "d1",
                            "name": "agent__scribe",
                            "arguments": {"message": "note it"},
                            "state": "waiting",
                            "result_preview": None,
                            "result_chars": None,
                        },
                    ],
                },
            ],
            "children": [
                {
                    "thread_id": "<thread 1>",
                    "agent": "scribe",
                    "status": "needs_approval",
                    "title": "note it",
                    "parent_call_id": "d1",
                    "earlier_messages": 0,
                    "steps": [
                        {
                            "index": 0,
                            "kind": "user",
                            "text": "note it",
                            "text_chars": 7,
                            "calls": [],
                        },
                        {
                            "index": 1,
                            "kind": "model",
                            "text": None,
                            "text_chars": 0,
                            "calls": [
                                {
                                    "call_id": "e2",
                                    "name": "notes__echo",
                                    "arguments": {"text": "<700 x>"},
                                    "state": "done",
                                    "result_preview": "notes echo: <587 x>…",
                                    "result_chars": 712,
                                }
                            ],
                        },
                        {
                            "index": 3,
                            "kind": "model",
                            "text": None,
                            "text_chars": 0,
                            "calls": [
                                {
                                    "call_id": "w1",
                                    "name": "notes__write_note",
                                    "arguments": {"title": "milk", "body": "buy some"},
                                    "state": "approval",
                                    "result_preview": None,
                                    "result_chars": None,
                                }
                            ],
                        },
                    ],
                    "children": [],
                }
            ],
            "version": "<version>",
        }
    )
    assert done["status"] == "completed" and done["reply"] == "all done"
    assert done["version"] != view["version"]


def gated(gate: anyio.Event, asked: anyio.Event, answer: str = "finally") -> Any:
    async def respond(request: LLMRequest) -> str:
        asked.set()
        await gate.wait()
        return answer

    return respond


async def test_watch_thread_waits_for_a_running_thread_to_change(tmp_path: Path) -> None:
    gate, asked = anyio.Event(), anyio.Event()
    llm = ScriptedLLM(Call("notes__echo", {"text": "one"}, id="e1"), gated(gate, asked))
    async with connect(tmp_path, {"main": llm}, config=helper("never")) as client:
        started = await call(
            client, "chat_with_agent", agent="helper", message="go", wait_seconds=0
        )
        tid = started["thread_id"]
        with anyio.fail_after(10):
            await asked.wait()  # the echo ran; the model is asked again and takes its time
        seen = await call(client, "watch_thread", thread_id=tid)
        quiet = await call(
            client, "watch_thread", thread_id=tid, since=seen["version"], wait_seconds=0.3
        )
        changed: dict[str, Any] = {}

        async def watch() -> None:
            changed.update(
                await call(
                    client, "watch_thread", thread_id=tid, since=seen["version"], wait_seconds=60
                )
            )

        with anyio.fail_after(10):  # far less than the 60 s it may wait: it answered the change
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await anyio.wait_all_tasks_blocked()  # the watch is waiting on the run
                gate.set()
    calls = [c for s in seen["tree"]["steps"] for c in s["calls"]]
    assert (seen["status"], [(c["call_id"], c["state"]) for c in calls]) == (
        "running",
        [("e1", "done")],
    )
    assert quiet["version"] == seen["version"]
    assert (changed["status"], changed["reply"]) == ("completed", "finally")


async def test_a_view_that_stops_watching_never_stops_the_run(tmp_path: Path) -> None:
    gate, asked = anyio.Event(), anyio.Event()
    llm = ScriptedLLM(gated(gate, asked))
    config = helper("never", on_cancel="stop")
    async with connect(tmp_path, {"main": llm}, config=config) as client:
        started = await call(
            client, "chat_with_agent", agent="helper", message="go", wait_seconds=0
        )
        tid = started["thread_id"]
        seen = await call(client, "watch_thread", thread_id=tid)
        with anyio.fail_after(10):
            await asked.wait()
            with pytest.raises(Exception, match="timed out"):
                await client.call_tool(
                    "watch_thread",
                    {"thread_id": tid, "since": seen["version"], "wait_seconds": 60},
                    timeout=0.5,
                )
            await anyio.wait_all_tasks_blocked()  # the server has seen the cancellation
        gate.set()
        done = await call(client, "get_thread", thread_id=tid, wait_seconds=10)
    assert (done["status"], done["reply"]) == ("completed", "finally")


def test_a_listing_view_refuses_a_hook_it_would_never_run() -> None:
    """A ListingView lets every request but its listings straight through, so a hook for
    any other request is a mistake said at once, not a hook that silently never runs."""

    with pytest.raises(TypeError, match=r"lists \['tools/list'\] only, not \['on_call_tool'\]"):

        class Misplaced(ListingView):
            listings = frozenset({"tools/list"})

            async def on_call_tool(self, context: Any, call_next: Any) -> Any:
                return await call_next(context)

    class Fine(ListingView):
        listings = frozenset({"tools/list"})

        async def on_list_tools(self, context: Any, call_next: Any) -> Any:
            return await call_next(context)

    assert Fine.listings == {"tools/list"}
