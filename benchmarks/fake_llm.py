"""A fast fake OpenAI-compatible Chat Completions server (standard library only).

``python -m benchmarks.fake_llm [--port N]`` serves ``POST /v1/chat/completions`` on
127.0.0.1 over raw asyncio (HTTP/1.1 keep-alive, JSON or SSE streaming with tool-call
deltas and usage) and prints ``PORT <n>`` on stdout once it listens. It runs in its own
process so its CPU is measured apart from the drivers'. It stops when stdin closes.

It is stateless and scripted by the conversation itself: the last user message carries
a directive such as ``bench K=5 L=0``:

* ``K``: tool-call rounds before the final answer (default 0);
* ``L``: latency in ms added to every request of that conversation (default 0);
* ``P``: tool calls per round, answered in parallel (default 1).

While fewer than ``K`` rounds have results after the last user message, it answers with
``P`` calls of the first offered tool whose name ends in ``echo`` (arguments
``{"text": "ping-<round>-<i>"}``); then with ``done after <n> tool results``, where ``n``
counts the tool results that contain ``ping``. Drivers check that reply, so a conversation
that skipped a call is reported as an error, not timed.

``GET /stats`` returns ``{"requests": n, "connections": n, "bytes_in": n}`` (``/stats`` calls
included), so a client that opens a connection per request shows up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any

_DIRECTIVE = re.compile(r"\b([KLP])=(\d+)")
_CREATED = 1_700_000_000
_USAGE = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict)
        )  # content parts
    return ""


def plan(body: dict[str, Any]) -> tuple[float, str | None, list[tuple[str, str, str]]]:
    """(latency in s, final text or None, tool calls as (id, name, arguments))."""
    messages = body.get("messages") or []
    last_user = -1
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            last_user = i
            break
    settings = {"K": 0, "L": 0, "P": 1}
    if last_user >= 0:
        for key, value in _DIRECTIVE.findall(_text(messages[last_user].get("content"))):
            settings[key] = int(value)
    turn = messages[last_user + 1 :]
    results = [m for m in turn if m.get("role") == "tool"]
    per_round = max(1, settings["P"])
    rounds = len(results) // per_round
    latency = settings["L"] / 1000.0
    tool = next(
        (
            t["function"]["name"]
            for t in body.get("tools") or []
            if t.get("function", {}).get("name", "").endswith("echo")
        ),
        None,
    )
    if rounds < settings["K"] and tool is not None:
        calls = [
            (f"call_{rounds}_{i}", tool, json.dumps({"text": f"ping-{rounds}-{i}"}))
            for i in range(per_round)
        ]
        return latency, None, calls
    pings = sum(1 for m in results if "ping" in _text(m.get("content")))
    return latency, f"done after {pings} tool results", []


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def render(body: dict[str, Any]) -> tuple[float, bytes, bytes]:
    """(latency in s, content type, response body) for one request body."""
    latency, final, calls = plan(body)
    model = str(body.get("model", "fake"))
    finish = "tool_calls" if calls else "stop"
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": final}
        if calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in calls
            ]
        obj = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": _CREATED,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": _USAGE,
        }
        return latency, b"application/json", json.dumps(obj, separators=(",", ":")).encode()
    parts = [_chunk(model, {"role": "assistant", "content": ""})]
    if final is not None:
        third = max(1, len(final) // 3)
        parts += [
            _chunk(model, {"content": final[i : i + third]}) for i in range(0, len(final), third)
        ]
    for index, (cid, name, args) in enumerate(calls):
        half = len(args) // 2
        head = {"index": index, "id": cid, "type": "function"}
        parts.append(
            _chunk(model, {"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
        )
        for piece in (args[:half], args[half:]):
            parts.append(
                _chunk(model, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            )
    parts.append(_chunk(model, {}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "choices": [],
            "usage": _USAGE,
        }
        parts.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return latency, b"text/event-stream", b"".join(parts)


class _Stats:
    requests = 0
    bytes_in = 0
    connections = 0


class _HTTP(asyncio.Protocol):
    """A minimal HTTP/1.1 server connection: keep-alive, Content-Length or chunked bodies."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # clients do not pipeline; hold further input while answering

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _Stats.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        method, path = head[0].split(" ")[:2]
        headers = {}
        for line in head[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            pos = start
            while True:
                eol = self.buf.find(b"\r\n", pos)
                if eol < 0:
                    return
                size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
                if len(self.buf) < eol + 2 + size + 2:
                    return
                body += self.buf[eol + 2 : eol + 2 + size]
                pos = eol + 2 + size + 2
                if size == 0:
                    break
            consumed = pos
        else:
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < start + length:
                return
            body = self.buf[start : start + length]
            consumed = start + length
        raw = bytes(body)
        del self.buf[:consumed]
        self.busy = True
        close = headers.get("connection", "").lower() == "close"
        self._handle(method, path, raw, close)

    def _handle(self, method: str, path: str, raw: bytes, close: bool) -> None:
        _Stats.requests += 1
        _Stats.bytes_in += len(raw)
        if method == "GET" and path.endswith("/stats"):
            stats = {
                "requests": _Stats.requests,
                "connections": _Stats.connections,
                "bytes_in": _Stats.bytes_in,
            }
            self._send(200, b"application/json", json.dumps(stats).encode(), close)
            return
        if method != "POST" or not path.endswith("/chat/completions"):
            self._send(404, b"application/json", b'{"error":{"message":"not found"}}', close)
            return
        try:
            latency, ctype, payload = render(json.loads(raw))
        except Exception as exc:
            err = json.dumps({"error": {"message": f"fake: {exc!r}", "type": "server_error"}})
            self._send(500, b"application/json", err.encode(), close)
            return
        if latency > 0:
            asyncio.get_running_loop().call_later(latency, self._send, 200, ctype, payload, close)
        else:
            self._send(200, ctype, payload, close)

    def _send(self, status: int, ctype: bytes, payload: bytes, close: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        reason = {200: b"OK", 404: b"Not Found", 500: b"Internal Server Error"}[status]
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
            b"cache-control: no-cache\r\nconnection: %s\r\n\r\n"
            % (status, reason, ctype, len(payload), b"close" if close else b"keep-alive")
        )
        transport.write(head + payload)
        if close:
            transport.close()
            return
        self.busy = False
        if self.buf:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HTTP, "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    stdin_closed = loop.create_future()

    class _Watch(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            if not stdin_closed.done():
                stdin_closed.set_result(None)

    await loop.connect_read_pipe(_Watch, sys.stdin)
    async with server:
        await stdin_closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
