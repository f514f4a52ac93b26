"""``python tests/launch.py SOCKET SCRIPT ARGS…``: ``python SCRIPT ARGS…``, forked from the
preloader listening on SOCKET (``tests/preloader.py``) instead of a new interpreter.

For the test programs that other programs start: the downstream servers agents-mcp
starts over stdio, the servers of the kill matrix, the conformance suite's driver. This
process loads nothing but the standard library's basics; it hands its stdin and stdout
(and stderr), environment and working directory to the forked process, passes on
SIGTERM, SIGINT and SIGHUP, and ends as that process ended (its exit code, or killed by
the same signal). Killed itself (SIGKILL, which cannot be passed on), it takes the
program with it: the program watches this process and kills itself with SIGKILL when it
is gone. Its own stdin and stdout are closed at once, so whoever reads the
program's output sees its end when the program ends.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import sys


def main() -> None:
    path, script, *args = sys.argv[1:]
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.connect(path)
    request = {
        "argv": [script, *args],
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "watch": os.getpid(),  # the program dies with this process, SIGKILL included
    }
    fds = array.array("i", [0, 1, 2])
    control.sendmsg(
        [json.dumps(request).encode() + b"\n"],
        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())],
    )
    nothing = os.open(os.devnull, os.O_RDWR)
    os.dup2(nothing, 0)
    os.dup2(nothing, 1)
    os.close(nothing)
    replies = control.makefile("rb")
    pid = int(json.loads(replies.readline())["pid"])
    for passed in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(passed, lambda signum, frame: os.kill(pid, signum))
    code = int(json.loads(replies.readline())["code"])
    if code < 0:  # killed: so is this process, by the same signal
        if -code not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    main()
