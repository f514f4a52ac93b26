"""One owner's daily budget on two replicas of one PostgreSQL database, under load.

50 concurrent conversations, round-robin over two agents-mcp processes, each wanting
four model requests of $0.002: $0.40 in all against a budget of $0.10. Every request is
admitted by the store before it is sent, so the replicas together overshoot the budget
by at most one request per conversation, every conversation ends completed or
budget_exceeded, and what the budget counted is exactly what the threads stored.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse, ToolCall, Usage
from agents_mcp.testing.chat_server import FakeChatServer
from tests.postgres import fresh_database
from tests.processes import agents_mcp_http_process, free_port, http_downstream, write_config

pytestmark = pytest.mark.anyio

CONVERSATIONS = 50
REQUEST = 2_000_000  # nanodollars: 1000 tokens in at $1, 100 out at $10 per million
LIMIT = 100_000_000  # $0.10: fifty requests' worth, a quarter of what is asked for


@dataclass
class Model:
    """Three notes, then done; each answer after 20 ms, 1000 tokens in and 100 out."""

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        await anyio.sleep(0.02)  # the model's own latency: requests overlap
        usage = Usage(input_tokens=1000, output_tokens=100)
        written = sum(1 for m in request.messages if m.role == "tool")
        if written < 3:
            args = json.dumps({"title": f"n{written}", "body": "b"})
            call = ToolCall(id=f"w{written}", name="notes__write_note", arguments=args)
            return LLMResponse(content=None, tool_calls=(call,), usage=usage)
        return LLMResponse(content="done", usage=usage)


async def test_two_replicas_hold_one_owners_daily_budget(tmp_path: Path, pg_cluster: str) -> None:
    db = await fresh_database(pg_cluster)
    results: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        base_url = await stack.enter_async_context(FakeChatServer(Model()).serve())
        notes = stack.enter_context(http_downstream("notes"))
        config = write_config(
            tmp_path / "agents.json",
            {
                "mcpServers": {"notes": {"url": notes}},
                "models": {
                    "main": {
                        "base_url": base_url,
                        "model": "m",
                        "price": {"input": 1.0, "output": 10.0},
                    }
                },
                "agents": {
                    "scribe": {
                        "description": "Writes notes",
                        "model": "main",
                        "servers": ["notes"],
                        "require_approval": "never",
                    }
                },
                "server": {"db": db, "budgets": {"owner": {"daily_cost": LIMIT / 1e9}}},
            },
        )
        urls = []
        for _ in range(2):
            port = free_port()
            await stack.enter_async_context(
                agents_mcp_http_process(config, port=port, env={"HOME": str(tmp_path)})
            )
            urls.append(f"http://127.0.0.1:{port}/mcp")
        clients = [Client(StreamableHttpTransport(u), timeout=120) for u in urls]
        for c in clients:
            await stack.enter_async_context(c)

        async def conversation(i: int) -> None:
            with anyio.fail_after(120):
                result = await clients[i % 2].call_tool(
                    "chat_with_agent",
                    {"agent": "scribe", "message": f"c{i}", "wait_seconds": 110},
                    raise_on_error=False,
                )
            assert result.structured_content is not None, result.content
            results.append(result.structured_content)

        async with anyio.create_task_group() as tg:
            for i in range(CONVERSATIONS):
                tg.start_soon(conversation, i)
    conn = await asyncpg.connect(db)
    try:
        day = datetime.now(UTC).date().isoformat()
        budget = await conn.fetchrow(
            "SELECT * FROM budget_days WHERE scope='owner:local' AND day=$1", day
        )
        stored = await conn.fetchrow(
            "SELECT COUNT(*) AS n, SUM(cost_nanos) AS cost FROM messages WHERE role='assistant'"
        )
        per_thread = await conn.fetch(
            "SELECT thread_id, COUNT(*) AS n FROM messages WHERE role='assistant'"
            " GROUP BY thread_id"
        )
    finally:
        await conn.close()
    assert budget is not None and stored is not None
    statuses = [r["status"] for r in results]
    assert len(results) == CONVERSATIONS
    assert set(statuses) <= {"completed", "budget_exceeded"} and "budget_exceeded" in statuses
    spent = int(budget["spent_nanos"])
    assert (budget["reserved_nanos"], budget["reserved_tokens"]) == (0, 0)  # all settled
    # What the budget counted is what the threads stored, request for request.
    assert (int(budget["requests"]), spent) == (stored["n"], int(stored["cost"]))
    assert spent == stored["n"] * REQUEST
    # The budget held: at most one request over it per conversation.
    assert spent >= LIMIT - CONVERSATIONS * REQUEST
    assert spent <= LIMIT + CONVERSATIONS * REQUEST
    stopped = [r for r in results if r["status"] == "budget_exceeded"]
    assert all("daily budget of owner 'local' is used up" in r["error"]["message"] for r in stopped)
    assert sum(r["n"] for r in per_thread) == stored["n"]
    overshoot = (spent - LIMIT) / REQUEST
    print(f"spent {spent / 1e9:.3f} of {LIMIT / 1e9:.3f}: {overshoot:+.0f} requests")
