"""Usage and cost, exactly: per request, thread, agent and owner, delegations rolled up;
per-call budgets that stop a run at the right request, and keep what a paused run spent.

The models are scripted with known token counts; prices are set in the config, so every
cost below is computed by hand. The server, its downstream server and its store are real.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from agents_mcp.messages import Usage
from agents_mcp.server.app import create_server
from agents_mcp.store import open_store
from agents_mcp.testing import Call, ScriptedLLM
from tests.cli.runner import agents_mcp
from tests.conftest import call, make_config
from tests.downstream_server import make_server

pytestmark = pytest.mark.anyio

ORCHESTRATOR = Usage(
    input_tokens=1000, output_tokens=200, cache_read_tokens=400, reasoning_tokens=50
)
RESEARCHER = Usage(input_tokens=500, output_tokens=100)
PRICES = {
    "orchestrator": {"input": 2.0, "output": 8.0, "cached_input": 0.5},
    "researcher": {"input": 1.0, "output": 4.0},
}
# orchestrator: (1000 - 400) * 2 + 400 * 0.5 + 200 * 8 = 3000 per million = $0.003 a request
# researcher:   500 * 1 + 100 * 4                       =  900 per million = $0.0009 a request


def usd(text: str) -> Decimal:
    return Decimal(text)


def config(tmp_path: Path, server: dict[str, Any] | None = None, **agents: dict[str, Any]) -> Any:
    def agent(name: str, **extra: Any) -> dict[str, Any]:
        return {
            "description": f"The {name} agent",
            "model": name,
            "servers": ["notes"],
            "require_approval": "read_only",
            **extra,
        }

    return make_config(
        tmp_path,
        agents={
            "orchestrator": agent(
                "orchestrator", agents=["researcher"], **agents.get("orchestrator", {})
            ),
            "researcher": agent("researcher", **agents.get("researcher", {})),
        },
        models={
            name: {"base_url": "http://127.0.0.1:9/v1", "model": f"{name}-model", "price": price}
            for name, price in PRICES.items()
        },
        server=server,
    )


@asynccontextmanager
async def server(
    tmp_path: Path, scripts: dict[str, ScriptedLLM], **agents: dict[str, Any]
) -> AsyncIterator[Client[Any]]:
    mcp = create_server(
        config(tmp_path, **agents),
        db_path=tmp_path / "t.db",
        llms=scripts,
        transports={"notes": make_server("notes")},
    )
    async with Client(mcp, mode="legacy") as client:
        yield client


async def test_usage_and_cost_per_thread_agent_and_owner(tmp_path: Path) -> None:
    orchestrator = ScriptedLLM(
        Call("agent__researcher", {"message": "look it up"}), "It is 42.", usage=ORCHESTRATOR
    )
    researcher = ScriptedLLM(Call("notes__echo", {"text": "42"}), "found 42", usage=RESEARCHER)
    scripts = {"orchestrator": orchestrator, "researcher": researcher}
    async with server(tmp_path, scripts) as client:
        done = await call(client, "chat_with_agent", agent="orchestrator", message="what is it?")
        tid = done["thread_id"]
        got = await call(client, "get_thread", thread_id=tid)
        listed = await call(client, "list_threads")
        raw = await client.call_tool("get_thread", {"thread_id": tid})
    assert done["status"] == "completed"
    assert done["usage"] == {
        "input_tokens": 2000,
        "output_tokens": 400,
        "llm_requests": 2,
        "tool_calls": 1,
        "cache_read_tokens": 800,
        "reasoning_tokens": 100,
        "cost_usd": 0.006,
        "delegated": {
            "input_tokens": 1000,
            "output_tokens": 200,
            "cache_read_tokens": 0,
            "reasoning_tokens": 0,
            "llm_requests": 2,
            "cost_usd": 0.0018,
        },
    }
    whole = {
        "input_tokens": 3000,
        "output_tokens": 600,
        "cache_read_tokens": 800,
        "reasoning_tokens": 100,
        "llm_requests": 4,
        "cost_usd": 0.0078,
        "delegated": done["usage"]["delegated"],
    }
    assert got["thread_usage"] == whole
    assert [t["usage"] for t in listed["threads"]] == [whole]
    assert raw.meta is not None and raw.meta["agents-mcp/usage"]["cost_usd"] == 0.006

    store = await open_store(tmp_path / "t.db")
    try:
        by_agent = await store.usage_report("agent")
        by_owner = await store.usage_report("owner")
        by_model = await store.usage_report("model")
    finally:
        await store.close()
    assert [(r.key, r.own.requests, r.delegated.requests) for r in by_agent] == [
        ("orchestrator", 2, 2)
    ]
    assert [(r.key, r.own.usage.cost_nanos, r.delegated.usage.cost_nanos) for r in by_owner] == [
        ("local", 6_000_000, 1_800_000)
    ]
    assert sorted((r.key, r.own.requests + r.delegated.requests) for r in by_model) == [
        ("orchestrator-model", 2),
        ("researcher-model", 2),
    ]
    # Every request's usage is stored with the answer it produced.
    db = sqlite3.connect(tmp_path / "t.db")
    rows = db.execute(
        "SELECT model, input_tokens, output_tokens, cache_read_tokens, reasoning_tokens,"
        " cost_nanos FROM messages WHERE role='assistant' ORDER BY created_at, idx"
    ).fetchall()
    db.close()
    assert sorted(rows) == sorted(
        [("orchestrator-model", 1000, 200, 400, 50, 3_000_000)] * 2
        + [("researcher-model", 500, 100, 0, 0, 900_000)] * 2
    )


async def test_the_usage_command_agrees_with_the_store(tmp_path: Path) -> None:
    orchestrator = ScriptedLLM(
        Call("agent__researcher", {"message": "look"}), "done", "again", usage=ORCHESTRATOR
    )
    researcher = ScriptedLLM(Call("notes__echo", {"text": "x"}), "found", usage=RESEARCHER)
    scripts = {"orchestrator": orchestrator, "researcher": researcher}
    async with server(tmp_path, scripts) as client:
        await call(client, "chat_with_agent", agent="orchestrator", message="one")
        await call(client, "chat_with_agent", agent="orchestrator", message="two")
    db = str(tmp_path / "t.db")
    ran = await agents_mcp("usage", "--json", "--db", db, tmp_path=tmp_path)
    by_day = await agents_mcp("usage", "--by", "day", "--db", db, "--days", "1", tmp_path=tmp_path)
    text = await agents_mcp("usage", "--db", db, tmp_path=tmp_path)
    assert (ran.code, ran.err, by_day.code, text.code) == (0, "", 0, 0)
    report = json.loads(ran.out)
    with sqlite3.connect(db) as conn:
        own, delegated = (
            conn.execute(
                "SELECT COUNT(*), SUM(m.input_tokens), SUM(m.output_tokens), SUM(m.cost_nanos)"
                " FROM messages m JOIN threads t ON t.id = m.thread_id"
                f" WHERE m.role = 'assistant' AND t.parent_id IS {kind}"
            ).fetchone()
            for kind in ("NULL", "NOT NULL")
        )
    row = report["rows"][0]
    assert report["by"] == "agent" and len(report["rows"]) == 1
    assert (row["agent"], row["requests"], row["input_tokens"], row["output_tokens"]) == (
        "orchestrator",
        own[0] + delegated[0],
        own[1] + delegated[1],
        own[2] + delegated[2],
    )
    assert usd(repr(row["cost_usd"])) == Decimal(own[3] + delegated[3]) / 10**9 == usd("0.0108")
    assert row["delegated"]["requests"] == delegated[0] == 2
    assert usd(repr(row["delegated"]["cost_usd"])) == Decimal(delegated[3]) / 10**9
    assert report["total"]["requests"] == 5
    day = json.loads(
        (await agents_mcp("usage", "--by", "day", "--json", "--db", db, tmp_path=tmp_path)).out
    )
    assert [r["requests"] for r in day["rows"]] == [5]
    assert "orchestrator" in text.out and "$0.0108" in text.out


async def test_a_call_budget_stops_the_run_at_the_right_request(tmp_path: Path) -> None:
    """1100 tokens a request against max_tokens 2500: three requests go (0, 1100 and 2200
    spent before them), the fourth is refused; a caller can lower it, never raise it."""
    usage = Usage(input_tokens=1000, output_tokens=100)

    def calls() -> ScriptedLLM:
        return ScriptedLLM(*[Call("notes__echo", {"text": str(i)}) for i in range(6)], usage=usage)

    budget = {"budget": {"max_tokens": 2500}}
    runs = {}
    for name, args in {
        "agent's": {},
        "lowered": {"max_tokens": 1500},
        "not raised": {"max_tokens": 100_000},
    }.items():
        model = calls()
        async with server(tmp_path / name, {"orchestrator": model}, orchestrator=budget) as client:
            runs[name] = (
                await call(client, "chat_with_agent", agent="orchestrator", message="go", **args),
                len(model.requests),
            )
    assert {k: (r["status"], n) for k, (r, n) in runs.items()} == {
        "agent's": ("budget_exceeded", 3),
        "lowered": ("budget_exceeded", 2),
        "not raised": ("budget_exceeded", 3),
    }
    assert runs["agent's"][0]["error"] == {
        "type": "budget_exceeded",
        "message": "this call's budget is used up: 3300 tokens of max_tokens 2500 (in and"
        " out, delegated agents included); send a message to continue with a new call's budget",
    }
    assert runs["agent's"][0]["usage"]["llm_requests"] == 3


async def test_a_call_budget_in_dollars_counts_the_delegations(tmp_path: Path) -> None:
    """max_cost $0.004: the orchestrator's first request ($0.003), then the researcher's
    two ($0.0009 each: $0.0039 spent before the second) go; the orchestrator's next is
    refused ($0.0048 spent)."""
    orchestrator = ScriptedLLM(
        Call("agent__researcher", {"message": "look"}), "never asked", usage=ORCHESTRATOR
    )
    researcher = ScriptedLLM(Call("notes__echo", {"text": "x"}), "found", usage=RESEARCHER)
    scripts = {"orchestrator": orchestrator, "researcher": researcher}
    budget = {"budget": {"max_cost": 0.004}}
    async with server(tmp_path, scripts, orchestrator=budget) as client:
        done = await call(client, "chat_with_agent", agent="orchestrator", message="go")
    assert (len(orchestrator.requests), len(researcher.requests)) == (1, 2)
    assert done["status"] == "budget_exceeded"
    assert "$0.0048 of max_cost $0.004" in done["error"]["message"]


async def test_a_resumed_run_keeps_what_its_call_spent(tmp_path: Path) -> None:
    """A call limited to 2000 tokens (by its caller, under the agent's 2500) pauses for
    an approval after one request (1100 tokens); the server restarts; once approved, one
    more request goes (1100 < 2000) and the next is refused (2200). Forgetting either
    what was spent or the caller's limit would let a third request through."""
    usage = Usage(input_tokens=1000, output_tokens=100)
    budget = {"budget": {"max_tokens": 2500}}
    first = ScriptedLLM(
        Call("notes__write_note", {"title": "t", "body": "b"}, id="w1"), usage=usage
    )
    async with server(tmp_path, {"orchestrator": first}, orchestrator=budget) as client:
        paused = await call(
            client, "chat_with_agent", agent="orchestrator", message="go", max_tokens=2000
        )
    second = ScriptedLLM(*[Call("notes__echo", {"text": str(i)}) for i in range(4)], usage=usage)
    async with server(tmp_path, {"orchestrator": second}, orchestrator=budget) as client:
        done = await call(
            client, "approve_call", thread_id=paused["thread_id"], call_id="w1", approve=True
        )
    assert paused["status"] == "needs_approval"
    assert (done["status"], len(second.requests)) == ("budget_exceeded", 1)
    assert "2200 tokens of max_tokens 2000" in done["error"]["message"]


async def test_an_owner_budget_ends_runs_until_the_day_is_over(tmp_path: Path) -> None:
    usage = Usage(input_tokens=1000, output_tokens=100)  # $0.0028 at the orchestrator's price
    model = ScriptedLLM("one", "two", "three", usage=usage)
    cfg = config(tmp_path, server={"budgets": {"owner": {"daily_cost": 0.004}}})
    mcp = create_server(cfg, db_path=tmp_path / "t.db", llms={"orchestrator": model})
    async with Client(mcp, mode="legacy") as client:
        results = [
            await call(client, "chat_with_agent", agent="orchestrator", message=str(i))
            for i in range(3)
        ]
    assert [r["status"] for r in results] == ["completed", "completed", "budget_exceeded"]
    message = results[2]["error"]["message"]
    assert message.startswith(
        "the daily budget of owner 'local' is used up ($0.0056 spent of daily_cost $0.004 on "
    )
    assert message.endswith("T00:00:00Z")
    assert len(model.requests) == 2


def test_prices_count_exactly() -> None:
    from agents_mcp.config import Price
    from agents_mcp.engine.usage import cost_nanos, dollars

    price = Price(input=2.5, output=10.0, cached_input=1.25, cache_write=3.75)
    usage = Usage(
        input_tokens=1_234, output_tokens=567, cache_read_tokens=200, cache_write_tokens=34
    )
    # (1234 - 200 - 34) * 2.5 + 200 * 1.25 + 34 * 3.75 + 567 * 10 = 8547.5 per million
    assert cost_nanos(price, usage) == 8_547_500
    assert cost_nanos(None, usage) is None
    assert dollars(8_547_500) == "$0.0085475"
    assert dollars(50_000_000_000) == "$50.00"


async def test_an_agent_budget_counts_its_delegations_and_every_owner(tmp_path: Path) -> None:
    """The orchestrator may spend 4000 tokens a day, its delegations included: its first
    call goes whole (1200 + 600 + 600 + 1200 tokens); the second makes one request (3600
    spent before it), then nothing more goes, neither the researcher it delegates to nor
    its own next request."""
    orchestrator = ScriptedLLM(
        Call("agent__researcher", {"message": "look"}), "done",
        Call("agent__researcher", {"message": "again"}), "never",
        usage=ORCHESTRATOR,
    )  # fmt: skip
    researcher = ScriptedLLM(Call("notes__echo", {"text": "x"}), "found", "never", usage=RESEARCHER)
    scripts = {"orchestrator": orchestrator, "researcher": researcher}
    budgets = {"orchestrator": {"budget": {"daily_tokens": 4000}}}
    async with server(tmp_path, scripts, **budgets) as client:
        first = await call(client, "chat_with_agent", agent="orchestrator", message="one")
        second = await call(client, "chat_with_agent", agent="orchestrator", message="two")
    assert (first["status"], second["status"]) == ("completed", "budget_exceeded")
    assert "the daily budget of agent 'orchestrator' is used up" in second["error"]["message"]
    assert "of daily_tokens 4000" in second["error"]["message"]
    assert (len(orchestrator.requests), len(researcher.requests)) == (3, 2)
