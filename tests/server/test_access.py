"""Owners and agent access over real HTTP: another owner's thread ids are unknown ids, and
an agent closed to a caller is unknown, unlisted and unusable, in both protocol eras."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError
from inline_snapshot import snapshot
from mcp import MCPError
from mcp_types import ToolAnnotations

from agents_mcp.config import Config
from agents_mcp.server.app import create_server
from agents_mcp.store import new_thread_id
from agents_mcp.testing import Call, ScriptedLLM
from tests.conftest import call, make_config
from tests.processes import agents_mcp_in_process

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]
TOKENS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}


def recorder(calls: list[str]) -> FastMCP:
    """A downstream server that records every call it executes."""
    mcp = FastMCP("rec")

    @mcp.tool
    def write(text: str) -> str:
        """Change something."""
        calls.append(f"write {text}")
        return f"wrote {text}"

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
    def read() -> str:
        """Look at something."""
        calls.append("read")
        return "nothing new"

    return mcp


def config(tmp_path: Path, secret_access: list[str]) -> Config:
    agent = {"model": "main", "servers": ["rec"], "require_approval": "read_only"}
    return make_config(
        tmp_path,
        servers={"rec": {"url": "http://127.0.0.1:9/mcp"}},
        agents={
            "helper": {"description": "Open to everyone", **agent},
            "secret": {"description": "Only some", "access": secret_access, **agent},
        },
        server={
            "tokens": {
                "alice": {"token": TOKENS["alice"]},
                "bob": {"token": TOKENS["bob"]},
                "carol": {"token": TOKENS["carol"], "roles": ["research"]},
            }
        },
    )


@asynccontextmanager
async def serving(
    tmp_path: Path, llm: ScriptedLLM, calls: list[str], secret_access: list[str]
) -> AsyncIterator[str]:
    cfg = config(tmp_path, secret_access)
    async with agents_mcp_in_process(
        cfg, tmp_path / "threads.db", llms={"main": llm}, transports={"rec": recorder(calls)}
    ) as url:
        yield url


def client(url: str, owner: str, mode: str = "auto") -> Client[Any]:
    return Client(StreamableHttpTransport(url, auth=TOKENS[owner]), mode=mode)


async def error_of(c: Client[Any], tool: str, **args: Any) -> str:
    with anyio.fail_after(30), pytest.raises(ToolError) as info:
        await c.call_tool(tool, args)
    return str(info.value)


async def read_error(c: Client[Any], thread_id: str) -> str:
    """The transcript's error: the protocol's resource-not-found, as for an unknown URI."""
    uri = f"agents-mcp://threads/{thread_id}"
    with anyio.fail_after(30), pytest.raises(MCPError) as info:
        await c.read_resource(uri)
    error = info.value.error
    assert (error.code, error.data) == (-32602, {"uri": uri})
    return f"{error.code}: {error.message}"


async def attempts(c: Client[Any], thread_id: str, call_id: str) -> dict[str, str]:
    """Every tool (and the transcript) aimed at ``thread_id``: the error each gives."""
    return {
        "chat": await error_of(
            c, "chat_with_agent", agent="helper", message="hi", thread_id=thread_id
        ),
        "get": await error_of(c, "get_thread", thread_id=thread_id, include_messages=True),
        "approve": await error_of(
            c, "approve_call", thread_id=thread_id, call_id=call_id, approve=True
        ),
        "deny": await error_of(
            c, "approve_call", thread_id=thread_id, call_id=call_id, approve=False
        ),
        "cancel": await error_of(c, "cancel_run", thread_id=thread_id),
        "read": await read_error(c, thread_id),
    }


async def test_another_owners_thread_ids_are_unknown_ids_and_run_nothing(tmp_path: Path) -> None:
    calls: list[str] = []
    llm = ScriptedLLM(Call("rec__write", {"text": "x"}, id="c1"), "Written.")
    async with serving(tmp_path, llm, calls, ["alice"]) as url:
        async with client(url, "alice") as alice:
            paused = await call(alice, "chat_with_agent", agent="helper", message="write x")
        tid = paused["thread_id"]
        unknown = new_thread_id()
        seen: dict[str, dict[str, dict[str, str]]] = {}
        for mode in MODES:
            async with client(url, "bob", mode) as bob:
                theirs = await attempts(bob, tid, "c1")
                missing = await attempts(bob, unknown, "c1")
                listed = await call(bob, "list_threads")
                waiting = await call(bob, "list_threads", status="needs_approval")
            seen[mode] = {"theirs": theirs, "missing": missing}
            assert listed["threads"] == waiting["threads"] == []
        assert calls == []  # nothing bob did ran anything
        async with client(url, "alice", "legacy") as alice:
            still = await call(alice, "get_thread", thread_id=tid)
            done = await call(alice, "approve_call", thread_id=tid, call_id="c1", approve=True)
    for mode in MODES:
        same = {k: v.replace(unknown, tid) for k, v in seen[mode]["missing"].items()}
        assert seen[mode]["theirs"] == same
    assert {k: v.replace(tid, "<id>") for k, v in seen["auto"]["theirs"].items()} == snapshot(
        {
            "chat": "thread '<id>' not found",
            "get": "thread '<id>' not found",
            "approve": "thread '<id>' not found",
            "deny": "thread '<id>' not found",
            "cancel": "thread '<id>' not found",
            "read": "-32602: Resource not found: 'agents-mcp://threads/<id>'",
        }
    )
    assert paused["status"] == still["status"] == "needs_approval"
    assert [p["call_id"] for p in still["pending_approvals"]] == ["c1"]
    assert (done["status"], calls) == ("completed", ["write x"])


def chat_tool(tools: list[Any]) -> tuple[list[str], str, list[str]]:
    """What a caller is told about agents: chat's enum and description, list's enum."""
    by_name = {t.name: t for t in tools}
    chat = by_name["chat_with_agent"]
    listing = by_name["list_threads"].input_schema["properties"]["agent"]
    # Optional: the names are in the string branch (an enum beside anyOf refuses null).
    (text,) = [b for b in listing["anyOf"] if b.get("type") == "string"]
    agents = re.findall(r"^- (\w+):", chat.description or "", re.M)
    return (
        chat.input_schema["properties"]["agent"].get("enum", []),
        ",".join(agents),
        text.get("enum", []),
    )


@pytest.mark.parametrize("mode", MODES)
async def test_an_agent_closed_to_a_caller_is_unknown_and_unlisted(
    tmp_path: Path, mode: str
) -> None:
    calls: list[str] = []
    llm = ScriptedLLM("Hello from secret.", "Hello again.")
    async with serving(tmp_path, llm, calls, ["alice", "role:research"]) as url:
        views: dict[str, Any] = {}
        for owner in ("alice", "bob", "carol"):
            async with client(url, owner, mode) as c:
                views[owner] = chat_tool(await c.list_tools())
        async with client(url, "bob", mode) as bob:
            refused = await error_of(bob, "chat_with_agent", agent="secret", message="hi")
            nobody = await error_of(bob, "chat_with_agent", agent="nobody", message="hi")
            filtered = await error_of(bob, "list_threads", agent="secret")
        async with client(url, "carol", mode) as carol:  # allowed by her role
            by_role = await call(carol, "chat_with_agent", agent="secret", message="hi")
        async with client(url, "alice", mode) as alice:  # allowed by name
            by_name = await call(alice, "chat_with_agent", agent="secret", message="hi")
    assert views == snapshot(
        {
            "alice": (["helper", "secret"], "helper,secret", ["helper", "secret"]),
            "bob": (["helper"], "helper", ["helper"]),
            "carol": (["helper", "secret"], "helper,secret", ["helper", "secret"]),
        }
    )
    assert refused == snapshot("unknown agent 'secret'; valid agents: helper")
    assert nobody == refused.replace("'secret'", "'nobody'")
    assert filtered == refused
    assert (by_role["status"], by_name["status"]) == ("completed", "completed")
    llm.assert_complete()


async def test_threads_of_an_agent_the_owner_lost_access_to_are_not_found(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    llm = ScriptedLLM("A secret answer.", Call("rec__write", {"text": "y"}, id="w1"))
    async with serving(tmp_path, llm, calls, ["alice", "bob"]) as url, client(url, "bob") as bob:
        done = await call(bob, "chat_with_agent", agent="secret", message="hi")
        paused = await call(bob, "chat_with_agent", agent="secret", message="write y")
        before = await call(bob, "list_threads")
    # The operator takes bob off the list; the same database, a new server.
    async with serving(tmp_path, llm, calls, ["alice"]) as url, client(url, "bob") as bob:
        for tid in (done["thread_id"], paused["thread_id"]):
            gone = await attempts(bob, tid, "w1")
            read = gone.pop("read")
            assert set(gone.values()) == {f"thread {tid!r} not found"}
            assert read == f"-32602: Resource not found: 'agents-mcp://threads/{tid}'"
        after = await call(bob, "list_threads")
        waiting = await call(bob, "list_threads", status="needs_approval")
    assert len(before["threads"]) == 2
    assert after["threads"] == waiting["threads"] == []
    assert calls == []


async def test_a_page_skipping_closed_threads_is_filled_from_the_next(tmp_path: Path) -> None:
    llm = ScriptedLLM(*[f"answer {i}" for i in range(5)])
    async with serving(tmp_path, llm, [], ["alice", "bob"]) as url, client(url, "bob") as bob:
        for i, agent in enumerate(["helper", "secret", "secret", "helper", "helper"]):
            await call(bob, "chat_with_agent", agent=agent, message=f"m{i}")
    async with serving(tmp_path, llm, [], ["alice"]) as url, client(url, "bob") as bob:
        first = await call(bob, "list_threads", limit=2)
        second = await call(bob, "list_threads", limit=2, cursor=first["next_cursor"])
    titles = [[t["title"] for t in page["threads"]] for page in (first, second)]
    assert titles == [["m4", "m3"], ["m0"]]
    assert second["next_cursor"] is None


async def test_the_local_owner_may_use_every_agent(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["alice"])
    mcp = create_server(
        cfg,
        db_path=tmp_path / "threads.db",
        llms={"main": ScriptedLLM("local answer")},
        transports={"rec": recorder([])},
    )
    async with Client(mcp) as local:  # in memory, like stdio: no token, the `local` owner
        view = chat_tool(await local.list_tools())
        answer = await call(local, "chat_with_agent", agent="secret", message="hi")
    assert view == (["helper", "secret"], "helper,secret", ["helper", "secret"])
    assert answer["reply"] == "local answer"


def test_the_listed_schemas_stay_valid_json() -> None:
    from agents_mcp.server.catalog import with_agents

    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"agent": {"type": "string", "enum": ["a", "b"]}},
    }
    assert json.loads(json.dumps(with_agents(schema, []))) == {
        "type": "object",
        "properties": {"agent": {"type": "string"}},
    }
    assert with_agents(schema, ["b"])["properties"]["agent"]["enum"] == ["b"]
    assert schema["properties"]["agent"]["enum"] == ["a", "b"]  # the tool's own is untouched
