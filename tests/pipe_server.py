"""A stdio MCP server speaking raw JSON-RPC, for the edges of the stdio transport.

Every line it receives is appended to the file named by ``PIPE_SERVER_LOG``. Its tools:
``echo`` (answers ``text``), ``garbage`` (writes a line that is not JSON first), ``flood``
(``count`` log notifications first), ``big`` (``size`` characters, written in one line),
``silent`` (never answers). With ``PIPE_SERVER_STUBBORN=1`` it ignores the end of its
stdin and SIGTERM is what stops it.
"""

from __future__ import annotations

import json
import os
import signal
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
    for name in ("echo", "garbage", "flood", "big", "silent")
]


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
        send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": TOOLS}})
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
