"""The server's own stdio (``agents_mcp.server.stdio``): real ``agents-mcp serve`` processes over
pipes (what Python and most clients give a server) and sockets (what Node's
``child_process``, so Claude Code and the TypeScript SDK, gives it)."""

from __future__ import annotations

import inspect
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StdioTransport

from tests.cli.runner import INITIALIZE, helper_config, scratch_env
from tests.processes import ROOT, write_config

ON_THE_LOOP = "stdio: stdin and stdout on the event loop"
THROUGH_THREADS = "stdio: through the SDK's reader and writer threads"
WAIT = 30.0


def test_fastmcp_still_serves_stdio_the_way_we_copy() -> None:
    """``stdio.serve`` repeats ``FastMCP.run_stdio_async`` with its own streams, through two
    private attributes. Should fastmcp serve stdio another way, this fails first."""
    source = inspect.getsource(FastMCP.run_stdio_async)
    steps = [
        'set_transport("stdio")',
        "temporary_log_level(log_level)",
        "self._lifespan_manager()",
        "stdio_server()",
        "as (read_stream, write_stream)",
        "self._mcp_server.run(",
        "read_stream,",
        "write_stream,",
        "self._mcp_server.create_initialization_options()",
        "reset_transport(token)",
    ]
    at = 0
    for step in steps:  # each after the one before
        at = source.find(step, at)
        assert at != -1, f"FastMCP.run_stdio_async no longer has {step!r} where we copy it"
    assert source.count("await ") == 1  # nothing else is awaited on the way


def _argv(tmp_path: Path) -> list[str]:
    cfg = write_config(tmp_path / "agents.json", helper_config("http://127.0.0.1:9/v1"))
    return [sys.executable, "-m", "agents_mcp", "serve", "--debug", "--config", str(cfg),
            "--db", str(tmp_path / "threads.db")]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_pipes_are_served_on_the_event_loop_in_both_eras(tmp_path: Path, mode: str) -> None:
    argv = _argv(tmp_path)
    log = tmp_path / "serve.log"
    transport = StdioTransport(
        argv[0], argv[1:], env=scratch_env(tmp_path), cwd=str(ROOT), keep_alive=False,
        log_file=log,
    )  # fmt: skip
    async with Client(transport, mode=mode) as client:
        names = {tool.name for tool in await client.list_tools()}
        listed = await client.call_tool("list_threads", {})
    assert {"chat_with_agent", "list_threads", "approve_call"} <= names
    assert listed.structured_content is not None
    assert listed.structured_content["threads"] == []
    assert ON_THE_LOOP in log.read_text()


class Served:
    """``agents-mcp serve`` with the given stdin/stdout/stderr; raw JSON-RPC lines."""

    def __init__(self, argv: list[str], env: dict[str, str], stdin: Any, stdout: Any,
                 stderr: Any, send: IO[bytes] | socket.socket,
                 receive: IO[bytes] | socket.socket) -> None:  # fmt: skip
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                     env=env, cwd=ROOT)  # fmt: skip
        self._send, self._receive = send, receive
        self._buffer = b""
        self.seen: list[str] = []
        """Every line read so far."""

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        if isinstance(self._send, socket.socket):
            self._send.sendall(data)
        else:
            self._send.write(data)
            self._send.flush()

    def close_input(self) -> None:
        if isinstance(self._send, socket.socket):
            self._send.shutdown(socket.SHUT_WR)
        else:
            self._send.close()

    def lines(self) -> Iterator[str]:
        """Lines of the server's output until it ends (bounded by :data:`WAIT`)."""
        fd = self._receive.fileno()
        deadline = time.monotonic() + WAIT
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                self.seen.append(line.decode())
                yield line.decode()
            left = deadline - time.monotonic()
            assert left > 0, "no answer in time"
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                self._buffer += chunk

    def answer(self, id: int) -> dict[str, Any]:
        for line in self.lines():
            if line.startswith("{"):
                message: dict[str, Any] = json.loads(line)
                if message.get("id") == id:
                    return message
        raise AssertionError(f"the output ended without an answer to {id}")

    def wait(self) -> int:
        return self.proc.wait(timeout=WAIT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def _tools_list(id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/list"}


def _handshake(served: Served) -> None:
    served.send(INITIALIZE)
    assert served.answer(1)["result"]["serverInfo"]["name"] == "agents-mcp"
    served.send(INITIALIZED)
    served.send(_tools_list(2))
    assert "tools" in served.answer(2)["result"]


@contextmanager
def over_pipes(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    err = tmp_path / "serve.err"
    with err.open("wb") as errlog:
        served = Served(_argv(tmp_path), scratch_env(tmp_path), subprocess.PIPE,
                        subprocess.PIPE, errlog, send=None, receive=None)  # type: ignore[arg-type]  # fmt: skip
        assert served.proc.stdin is not None and served.proc.stdout is not None
        served._send, served._receive = served.proc.stdin, served.proc.stdout
        try:
            yield served, err
        finally:
            served.stop()


def test_the_wire_is_kept_from_children_and_stray_output(tmp_path: Path) -> None:
    """While serving, fd 0 reads the null device and fd 1 writes to stderr, as with the
    SDK's own claim of them; the protocol's input and output are private copies."""
    with over_pipes(tmp_path) as (served, _):
        _handshake(served)
        fds = Path(f"/proc/{served.proc.pid}/fd")
        assert os.readlink(fds / "0") == os.devnull
        assert os.readlink(fds / "1") == os.readlink(fds / "2")


def test_ctrl_c_ends_serving_over_pipes_with_130(tmp_path: Path) -> None:
    with over_pipes(tmp_path) as (served, err):
        _handshake(served)
        served.proc.send_signal(signal.SIGINT)
        assert served.wait() == 130
        assert list(served.lines()) == []  # nothing after the last answer, then the end
    text = err.read_text()
    assert ON_THE_LOOP in text
    assert text.splitlines()[-1] == "agents-mcp: stopped (Ctrl-C)"


def test_closing_stdin_ends_serving_with_whole_answers_only(tmp_path: Path) -> None:
    """A client that leaves with requests in flight: the server exits 0, and what it
    wrote before is whole JSON-RPC lines (requests still running when stdin ends are
    cancelled and may be answered with an error, as the SDK's session does)."""
    with over_pipes(tmp_path) as (served, _):
        served.send(INITIALIZE)
        served.send(INITIALIZED)
        for id in range(2, 52):
            served.send(_tools_list(id))
        served.close_input()
        answers = [json.loads(line) for line in served.lines()]
        assert served.wait() == 0
    ids = [answer["id"] for answer in answers]
    assert ids[0] == 1 and len(ids) > 1
    assert set(ids) <= set(range(1, 52))
    assert all("tools" in a.get("result", {}) or "error" in a for a in answers[1:])


def _over_sockets(tmp_path: Path, *, stderr_too: bool) -> tuple[Served, list[socket.socket]]:
    ours_in, theirs_in = socket.socketpair()
    ours_out, theirs_out = socket.socketpair()
    ours_err, theirs_err = socket.socketpair()
    stderr = theirs_out if stderr_too else theirs_err
    served = Served(_argv(tmp_path), scratch_env(tmp_path), theirs_in, theirs_out, stderr,
                    send=ours_in, receive=ours_out)  # fmt: skip
    for theirs in (theirs_in, theirs_out, theirs_err):
        theirs.close()
    return served, [ours_in, ours_out, ours_err]


def _read_all(sock: socket.socket) -> str:
    sock.settimeout(WAIT)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("stderr_too", [False, True], ids=["own-sockets", "stdout-is-stderr"])
def test_sockets_as_node_gives_them(tmp_path: Path, stderr_too: bool) -> None:
    """Separate sockets are served on the event loop; a socket that is stdout and stderr
    at once cannot be made non-blocking for one of them, so the SDK's threads serve it."""
    served, (ours_in, ours_out, ours_err) = _over_sockets(tmp_path, stderr_too=stderr_too)
    try:
        _handshake(served)
        served.close_input()
        list(served.lines())
        assert served.wait() == 0
        err = "\n".join(served.seen) if stderr_too else _read_all(ours_err)
    finally:
        served.stop()
        for sock in (ours_in, ours_out, ours_err):
            sock.close()
    assert (THROUGH_THREADS if stderr_too else ON_THE_LOOP) in err


@pytest.mark.anyio
async def test_the_typescript_sdks_stdio_client_is_served_on_the_event_loop(
    tmp_path: Path,
) -> None:
    """Node starts a server with sockets for its stdio: the official SDK's client, end to
    end, and the server reads and writes them on its event loop."""
    from tests.server.test_results import sdk_missing

    if missing := sdk_missing():
        pytest.fail(f"this test needs {', '.join(missing)}; .ci/run installs them")
    script = ROOT / "tests" / "browser" / "sdk_stdio.mjs"
    with anyio.fail_after(60):
        done = await anyio.run_process(
            ["node", str(script), *_argv(tmp_path)], env=scratch_env(tmp_path), check=False
        )
    err = done.stderr.decode()
    assert done.returncode == 0, err
    out = json.loads(done.stdout)
    assert {"chat_with_agent", "list_threads", "approve_call"} <= set(out["tools"])
    assert out["listed"]["threads"] == []
    assert ON_THE_LOOP in err


def test_a_socket_that_is_stdin_and_stdout_at_once(tmp_path: Path) -> None:
    """socat's default and inetd give one socket for both: writing never reads it."""
    ours, theirs = socket.socketpair()
    ours_err, theirs_err = socket.socketpair()
    served = Served(_argv(tmp_path), scratch_env(tmp_path), theirs, theirs, theirs_err,
                    send=ours, receive=ours)  # fmt: skip
    theirs.close()
    theirs_err.close()
    try:
        _handshake(served)
        served.close_input()
        assert list(served.lines()) == []
        assert served.wait() == 0
        err = _read_all(ours_err)
    finally:
        served.stop()
        ours.close()
        ours_err.close()
    assert ON_THE_LOOP in err


def test_a_client_that_half_closes_the_stdout_socket_still_gets_answers(tmp_path: Path) -> None:
    served, (ours_in, ours_out, ours_err) = _over_sockets(tmp_path, stderr_too=False)
    try:
        ours_out.shutdown(socket.SHUT_WR)  # "I will not write on this one"
        _handshake(served)
        served.close_input()
        assert served.wait() == 0
        assert ON_THE_LOOP in _read_all(ours_err)
    finally:
        served.stop()
        for sock in (ours_in, ours_out, ours_err):
            sock.close()


def _stderr_until(proc: subprocess.Popen[bytes], text: str) -> str:
    """Read the server's stderr (a pipe) until ``text`` appears (bounded)."""
    assert proc.stderr is not None
    fd, seen, deadline = proc.stderr.fileno(), b"", time.monotonic() + WAIT
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"no {text!r} on stderr"
        chunk = os.read(fd, 65536)
        assert chunk, f"stderr ended without {text!r}"
        seen += chunk
    return seen.decode()


def _served_with_stderr_pipe(tmp_path: Path) -> Served:
    served = Served(_argv(tmp_path), scratch_env(tmp_path), subprocess.PIPE, subprocess.PIPE,
                    subprocess.PIPE, send=None, receive=None)  # type: ignore[arg-type]  # fmt: skip
    assert served.proc.stdin is not None and served.proc.stdout is not None
    served._send, served._receive = served.proc.stdin, served.proc.stdout
    return served


def test_at_exit_every_answer_is_written_whole_to_a_client_slow_to_read(tmp_path: Path) -> None:
    """The client leaves (stdin closed) while most of an answer still waits to go out,
    and reads it only later: the server waits for it, says so, and writes it whole."""
    import fcntl

    served = _served_with_stderr_pipe(tmp_path)
    try:
        _handshake(served)
        assert served.proc.stdout is not None
        out = served.proc.stdout.fileno()
        fcntl.fcntl(out, 1031, 4096)  # F_SETPIPE_SZ: a pipe of one page
        served.send(_tools_list(3))  # an answer of some 20 kB
        assert select.select([out], [], [], WAIT)[0]
        data = os.read(out, 1024)  # it is being written: the rest waits in the server
        served.close_input()
        _stderr_until(served.proc, "waiting for the client to read the last answers")
        data += served.proc.stdout.read()
        assert served.wait() == 0
    finally:
        served.stop()
    assert len(data) > 8192 and data.endswith(b"\n") and data.count(b"\n") == 1
    assert "tools" in json.loads(data)["result"]


def test_a_client_that_closes_stdout_ends_serving_cleanly(tmp_path: Path) -> None:
    served = _served_with_stderr_pipe(tmp_path)
    try:
        _handshake(served)
        assert served.proc.stdout is not None
        served.proc.stdout.close()  # gone, although stdin stays open
        served.send(_tools_list(3))  # its answer finds nobody: the server stops
        err = _stderr_until(served.proc, "stdio: stdin and stdout on the event loop")
        assert served.wait() == 0
        assert served.proc.stderr is not None
        err += served.proc.stderr.read().decode()
    finally:
        served.stop()
    assert "Traceback" not in err


def test_ctrl_c_in_the_middle_of_a_line_drops_that_line(tmp_path: Path) -> None:
    with over_pipes(tmp_path) as (served, err):
        _handshake(served)
        assert isinstance(served._send, io.BufferedWriter)
        served._send.write(b'{"jsonrpc": "2.0", "id": 7, "meth')
        served._send.flush()
        served.proc.send_signal(signal.SIGINT)
        assert served.wait() == 130
        assert list(served.lines()) == []
    text = err.read_text()
    assert "Invalid JSON" not in text  # half a request is not parsed as a whole one
    assert text.splitlines()[-1] == "agents-mcp: stopped (Ctrl-C)"
