"""A stdio MCP server that answers ``initialize`` and then exits at once.

It stands for a real server that starts, then dies (a missing file, a bad token checked
late, a crash on first use): it speaks just enough of the protocol for the handshake to
succeed, so the failure shows up only when its tools are listed.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("method") == "initialize":
            answer = {
                "jsonrpc": "2.0",
                "id": message["id"],
                "result": {
                    "protocolVersion": message["params"]["protocolVersion"],
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "exiting", "version": "0"},
                },
            }
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
        elif message.get("method") == "notifications/initialized":
            print("exiting: configuration file missing", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
