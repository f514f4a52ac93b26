"""Runs a command on this process's stdin, stdout and stderr, and tells a test about it
over a Unix socket: the command's pid once it started, its exit code once it ended.

``python tests/exit_reporter.py SOCKET COMMAND...``: what an MCP client starts when a test
needs the exit code of a server the client drives (clients keep their process to
themselves). The command runs in a session of its own, under a watcher that reports on
it; the process the client started lasts as long as the command (clients tie their
connection to their process) but ignores SIGTERM, and keeps no copy of the client's
pipes. So a client that gives up on a slow server after its grace period (about 2 s)
and signals its process, or its process group, never reaches the command: how the
command ends is its own doing, however slowly it runs on a busy machine. Only the test
signals it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys


def main() -> None:
    path, *command = sys.argv[1:]
    done, watching = os.pipe()
    if os.fork():  # the client's process: here until the watcher is done
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.close(watching)
        _let_go_of_stdio()
        os.read(done, 1)  # end-of-file once the watcher has exited
        return
    os.close(done)
    os.setsid()
    with socket.socket(socket.AF_UNIX) as report:
        report.connect(path)
        child = subprocess.Popen(command)
        report.sendall(f"{child.pid}\n".encode())
        _let_go_of_stdio()
        code = child.wait()
        report.sendall(f"{code}\n".encode())


def _let_go_of_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)


if __name__ == "__main__":
    main()
