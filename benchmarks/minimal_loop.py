"""The floor: a minimal hand-written agent loop (httpx2 + one ``fastmcp.Client``).

No persistence, no approvals, no progress, no retries: send a Chat Completions request,
run the tool calls it asks for on the downstream server, repeat until a final answer. It
speaks the same wire format as agents-mcp and reaches the same downstream ``echo`` server
over stdio, so what agents-mcp costs above it is what agents-mcp adds.

It does the same LLM work as agents-mcp by default: agents-mcp's ``stream = "auto"`` asks
for the whole answer when nobody shows the text as it is written (an MCP caller's request),
so the floor asks for whole answers too; ``stream=True`` reads SSE
(``stream_options.include_usage``) as agents-mcp does for a terminal chat.
"""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx2
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from mcp_types import TextContent

ECHO_SERVER = str(Path(__file__).with_name("echo_server.py"))


def echo_transport() -> StdioTransport:
    return StdioTransport(sys.executable, [ECHO_SERVER], keep_alive=False)


class MinimalLoop:
    """One model endpoint and one downstream server; ``chat()`` runs a conversation."""

    def __init__(
        self, base_url: str, *, model: str = "fake", api_key: str = "x", stream: bool = False
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.stream = stream
        self._http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx2.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0),
        )
        self._mcp: Client[Any] = Client(echo_transport(), mode="legacy", timeout=60)
        self._stack = AsyncExitStack()
        self._tools: list[dict[str, Any]] | None = None
        self._lock = anyio.Lock()

    async def _connected(self) -> list[dict[str, Any]]:
        # Lazy, like agents-mcp: the downstream server starts on the first conversation.
        async with self._lock:
            if self._tools is None:
                await self._stack.enter_async_context(self._mcp)
                self._tools = [
                    {
                        "type": "function",
                        "function": {
                            "name": t.name,
                            "description": t.description or t.name,
                            "parameters": t.input_schema,
                        },
                    }
                    for t in await self._mcp.list_tools()
                ]
            return self._tools

    async def aclose(self) -> None:
        await self._stack.aclose()
        await self._http.aclose()

    async def chat(
        self, message: str, history: list[dict[str, Any]] | None = None, max_steps: int = 50
    ) -> str:
        tools = await self._connected()
        messages = [*(history or []), {"role": "user", "content": message}]
        for _ in range(max_steps):
            content, calls = await self._complete(messages, tools)
            if not calls:
                return content
            messages.append({"role": "assistant", "content": content or None, "tool_calls": calls})
            for call in calls:
                fn = call["function"]
                result = await self._mcp.call_tool_mcp(fn["name"], json.loads(fn["arguments"]))
                text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
        raise RuntimeError("too many steps")

    async def _complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> tuple[str, list[dict[str, Any]]]:
        if not self.stream:
            return await self._whole(messages, tools)
        body = {
            "model": self.model,
            "messages": messages,
            "tools": tools,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        url = f"{self.base_url}/chat/completions"
        async with self._http.stream("POST", url, json=body) as response:
            response.raise_for_status()
            # Read to the end (no break at [DONE]): a response left unread closes its
            # connection instead of returning it to the pool.
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue
                for choice in json.loads(data).get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        text.append(delta["content"])
                    for frag in delta.get("tool_calls") or []:
                        call = calls.setdefault(
                            frag["index"],
                            {
                                "id": "",
                                "type": "function",
                                "function": {"name": "", "arguments": ""},
                            },
                        )
                        call["id"] = call["id"] or frag.get("id") or ""
                        fn = frag.get("function") or {}
                        call["function"]["name"] += fn.get("name") or ""
                        call["function"]["arguments"] += fn.get("arguments") or ""
        return "".join(text), [calls[i] for i in sorted(calls)]

    async def _whole(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> tuple[str, list[dict[str, Any]]]:
        body = {"model": self.model, "messages": messages, "tools": tools}
        response = await self._http.post(f"{self.base_url}/chat/completions", json=body)
        response.raise_for_status()
        message = response.json()["choices"][0]["message"]
        calls = [
            {"id": c["id"], "type": "function", "function": dict(c["function"])}
            for c in message.get("tool_calls") or []
        ]
        return message.get("content") or "", calls
