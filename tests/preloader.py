"""Test programs started from an interpreter that has already loaded the libraries: a
fork per program, instead of a new interpreter.

Starting one of the programs the tests start (an ``agents-mcp`` command, a downstream
server, a server the kill matrix kills, the conformance suite's driver) costs about a
second of CPU before it does anything, nearly all of it loading fastmcp, the MCP SDK and
their pydantic models, and the tests start several hundred. ``python tests/preloader.py
SOCKET`` loads those libraries and ``agents_mcp.cli.commands`` (what
``agents_mcp.cli.main`` loads first) once, then for each request on its Unix socket forks
a process that runs the request's program with its arguments, environment, working
directory, stdin, stdout and stderr (passed as file descriptors): ``agents-mcp`` runs
``agents_mcp.cli.main``, a script runs as ``python SCRIPT`` runs it. The rest of the
package loads in that process as the program loads it, so a module a command forgot to
import still fails the way it would. The process is a real one: its own pid,
descriptors and environment; its exit code is its program's.

Each test process has its own preloader (`start`, on first use). `preloaded`
runs a command for a test; a program that another program starts is given as
``python tests/launch.py SOCKET SCRIPT ARGS…`` (`launched`). What it does not do is
start an interpreter: the tests of that (``python -m agents_mcp``, which modules a
command loads, Ctrl-C while loading, ``serve``) start new ones.

Protocol, one connection per program: the client sends one JSON line ``{"argv", "env",
"cwd"}`` (and ``"watch"``: a pid the program dies with) with the three descriptors
(``SCM_RIGHTS``); the preloader answers ``{"pid": …}``
once forked, then ``{"code": …}`` once the process exited (negative: killed by that
signal).
"""

from __future__ import annotations

import array
import atexit
import contextlib
import gc
import json
import os
import runpy
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc


def _preload() -> None:
    gc.disable()  # as agents_mcp.cli.main loads: see agents_mcp.cli.collector
    # fastmcp reads these when it loads, here, once for every program forked later: the
    # values agents-mcp's commands give them before they load it (agents_mcp.cli.app),
    # not whatever the first test's environment held.
    os.environ.update(
        FASTMCP_LOG_ENABLED="false",
        FASTMCP_SHOW_SERVER_BANNER="false",
        FASTMCP_CHECK_FOR_UPDATES="off",
    )
    import aiosqlite  # noqa: F401
    import fastmcp.client
    import fastmcp.server  # noqa: F401
    import httpx2  # noqa: F401
    import mcp_types  # noqa: F401

    import agents_mcp.cli.commands  # noqa: F401
    from agents_mcp.cli import collector

    collector.loaded()


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The request line and its three descriptors."""
    fds = array.array("i")
    data = b""
    while not data.endswith(b"\n"):
        msg, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(3 * fds.itemsize))
        if not msg:
            raise EOFError("the client left before its request was complete")
        data += msg
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return json.loads(data), list(fds)


def _child(request: dict[str, Any], fds: list[int], waiting: selectors.BaseSelector) -> None:
    """In the forked process: become the command, run it, exit with its code."""
    for key in list(waiting.get_map().values()):  # the preloader's, not the command's
        if key.data is not None:  # another command's: its pidfd and connection
            key.data[1].close()
            os.close(key.fd)
        else:
            key.fileobj.close()  # type: ignore[union-attr]
    waiting.close()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    if request.get("watch"):
        _die_with(int(request["watch"]))
    program, *args = request["argv"]
    sys.argv = [program, *args]
    if program == "agents-mcp":  # as ``python -m agents_mcp`` in that directory
        sys.path[0] = request["cwd"]
        from agents_mcp.cli import main

        code = main(args)
    else:
        sys.path[0] = os.path.dirname(os.path.abspath(program))
        runpy.run_path(program, run_name="__main__")
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    raise SystemExit(code)  # never back into the preloader's loop


def _die_with(pid: int) -> None:
    """SIGKILL this process once process ``pid`` is gone (at once if it already is)."""
    try:
        watched = os.pidfd_open(pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
        raise

    def watch() -> None:
        select.select([watched], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="dies with its launcher", daemon=True).start()


def _tell(conn: socket.socket, reply: dict[str, int]) -> None:
    with contextlib.suppress(OSError):  # a client gone (a launcher killed) hears nothing
        conn.sendall(json.dumps(reply).encode() + b"\n")


def serve(path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)  # start() waits for this line
    waiting = selectors.DefaultSelector()
    waiting.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in waiting.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                try:
                    request, fds = _receive(conn)
                except (OSError, EOFError, ValueError):  # a client that went away
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    conn.close()
                    _child(request, fds, waiting)
                for fd in fds:
                    os.close(fd)
                _tell(conn, {"pid": pid})
                waiting.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, conn))
            else:
                pid, conn = key.data
                waiting.unregister(key.fileobj)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                _tell(conn, {"code": code})
                conn.close()


if __name__ == "__main__":
    _preload()
    serve(sys.argv[1])


# The client side, in the test's process.

STARTING = 120
"""Seconds a preloader may take to load and say it is ready (about 1 s here)."""
LAUNCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch.py")
_started: list[tuple[subprocess.Popen[bytes], str]] = []


def start() -> str:
    """This test process's preloader, started on first use (and stopped when the test
    process ends); its socket, in a directory only this user can enter (whoever can
    connect can have it run a program)."""
    if not _started or _started[-1][0].poll() is not None:  # not yet, or it died: again
        where = tempfile.mkdtemp(prefix="agents-mcp-preloader-")
        path = os.path.join(where, "socket")
        proc = subprocess.Popen([sys.executable, __file__, path], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], STARTING)
        if not ready or proc.stdout.readline() != b"ready\n":
            proc.kill()
            raise RuntimeError(f"the preloader did not start (exit code {proc.wait()})")
        atexit.register(_stop, proc, where)
        _started.append((proc, path))
    return _started[-1][1]


def launched(script: str, *args: str) -> list[str]:
    """The command line that runs ``python SCRIPT ARGS`` forked from the preloader."""
    return [sys.executable, LAUNCH, start(), script, *args]


def _stop(proc: subprocess.Popen[bytes], where: str) -> None:
    proc.kill()
    proc.wait()
    shutil.rmtree(where, ignore_errors=True)


async def preloaded(
    args: list[str], env: dict[str, str], cwd: Path, input: str | None
) -> tuple[int, str, str]:
    """``agents-mcp ARGS`` in a process forked from the preloader: exit code, stdout and
    stderr. Cancelled (a test's bound), the process is killed."""
    stdin = os.pipe() if input is not None else (os.open(os.devnull, os.O_RDONLY), -1)
    out, err = os.pipe(), os.pipe()
    argv = ["agents-mcp", *args]
    request = json.dumps({"argv": argv, "env": env, "cwd": str(cwd)}).encode() + b"\n"
    try:
        control = await anyio.connect_unix(start())
        await control.send_fds(request, [stdin[0], out[1], err[1]])
    finally:
        for fd in (stdin[0], out[1], err[1]):
            os.close(fd)
    read: dict[str, bytes] = {}
    pid = 0
    try:
        async with control, anyio.create_task_group() as tg:
            tg.start_soon(_drain, out[0], read, "out")
            tg.start_soon(_drain, err[0], read, "err")
            if stdin[1] != -1:
                tg.start_soon(_feed, stdin[1], (input or "").encode())
            replies = _replies(control)
            pid = (await anext(replies))["pid"]
            code = (await anext(replies))["code"]
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            if pid:
                os.kill(pid, signal.SIGKILL)
        raise
    return int(code), read["out"].decode(), read["err"].decode()


async def _replies(control: anyio.abc.SocketStream) -> AsyncIterator[dict[str, Any]]:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            buffer += await control.receive()
        line, buffer = buffer.split(b"\n", 1)
        yield json.loads(line)


async def _drain(fd: int, into: dict[str, bytes], name: str) -> None:
    """Read ``fd`` to its end (every process holding it closed it)."""
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    try:
        while True:
            await anyio.wait_readable(fd)
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    into[name] = b"".join(chunks)


async def _feed(fd: int, data: bytes) -> None:
    os.set_blocking(fd, False)
    try:
        while data:
            await anyio.wait_writable(fd)
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:  # the command did not read it all
                break
    finally:
        os.close(fd)
