"""A stdio MCP server speaking raw JSON-RPC, for the edges of the stdio transport.

Every line it receives is appended to the file named by ``PIPE_SERVER_LOG``. Its tools:
``echo`` (answers ``text``), ``garbage`` (writes a line that is not JSON first), ``flood``
(``count`` log notifications first), ``big`` (``size`` characters, written in one line),
``silent`` (never answers), ``ask`` (sends ``ping`` and ``roots/list`` to the client and
answers with the replies), ``changed`` (says its tool list changed), ``orphan`` (starts a process that inherits its
stdout, then exits without answering), ``mismatched`` (a structured result that does not
match its output schema). ``tools/list`` comes
in pages of three. With ``PIPE_SERVER_STUBBORN=1`` it ignores the end of its
stdin and SIGTERM is what stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def result(request_id: object, text: str) -> None:
    content = [{"type": "text", "text": text}]
    send({"jsonrpc": "2.0", "id": request_id, "result": {"content": content, "isError": False}})


TOOLS = [
    {"name": name, "inputSchema": {"type": "object"}}
    for name in ("echo", "garbage", "flood", "big", "silent", "ask", "changed")
] + [
    {
        "name": "mismatched",
        "inputSchema": {"type": "object"},
        "outputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}},
    }
]


def ask(request_id: object) -> None:
    send({"jsonrpc": "2.0", "id": "s-1", "method": "ping"})
    send({"jsonrpc": "2.0", "id": "s-2", "method": "roots/list"})
    replies = {}
    while len(replies) < 2:
        reply = json.loads(sys.stdin.readline())
        replies[reply["id"]] = {k: v for k, v in reply.items() if k != "jsonrpc"}
    result(request_id, json.dumps(replies, sort_keys=True))


def answer(message: dict[str, Any]) -> None:
    method, request_id = message.get("method"), message.get("id")
    if method == "initialize":
        send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "result": {
                    "protocolVersion": message["params"]["protocolVersion"],
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "pipe", "version": "0"},
                },
            }
        )
    elif method == "tools/list":
        start = int((message.get("params") or {}).get("cursor") or 0)
        page: dict[str, Any] = {"tools": TOOLS[start : start + 3]}
        if start + 3 < len(TOOLS):
            page["nextCursor"] = str(start + 3)
        send({"jsonrpc": "2.0", "id": request_id, "result": page})
    elif method == "tools/call":
        name, args = message["params"]["name"], message["params"].get("arguments") or {}
        if name == "echo":
            result(request_id, args["text"])
        elif name == "garbage":
            sys.stdout.write("this is not JSON-RPC\n")
            result(request_id, "after garbage")
        elif name == "flood":
            for i in range(args["count"]):
                params = {"level": "info", "data": f"line {i}"}
                send({"jsonrpc": "2.0", "method": "notifications/message", "params": params})
            result(request_id, f"after {args['count']} notifications")
        elif name == "big":
            result(request_id, "x" * args["size"])
        elif name == "ask":
            ask(request_id)
        elif name == "mismatched":  # structured content against its own output schema
            content = [{"type": "text", "text": "n is not a number"}]
            answer = {"content": content, "structuredContent": {"n": "x"}, "isError": False}
            send({"jsonrpc": "2.0", "id": request_id, "result": answer})
        elif name == "orphan":  # leave a process holding our stdout, then die unanswered
            helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            log = open(os.environ["PIPE_SERVER_LOG"], "a")  # noqa: SIM115
            log.write(json.dumps({"orphan": helper.pid}) + "\n")
            log.close()
            os._exit(1)
        elif name == "changed":
            send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
            result(request_id, "changed")
        elif name != "silent":
            error = {"code": -32602, "message": f"Unknown tool: {name}"}
            send({"jsonrpc": "2.0", "id": request_id, "error": error})


def main() -> None:
    log = open(os.environ["PIPE_SERVER_LOG"], "a")  # noqa: SIM115
    log.write(json.dumps({"pid": os.getpid()}) + "\n")
    log.flush()
    if os.environ.get("PIPE_SERVER_STUBBORN"):
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    for line in sys.stdin:
        log.write(line)
        log.flush()
        answer(json.loads(line))
    if os.environ.get("PIPE_SERVER_STUBBORN"):
        threading.Event().wait()  # stdin closed: stay until a signal


if __name__ == "__main__":
    main()
