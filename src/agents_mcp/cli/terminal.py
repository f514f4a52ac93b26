"""Terminal output for the CLI: streamed replies, status lines, a spinner, and line input.

Replies go to stdout; everything else (status, questions, the spinner) goes to stderr, so
``agents-mcp chat a "…" > reply.txt`` captures only the answer. The spinner is drawn only
when stderr is a terminal. Never used by ``serve``: over stdio, stdout is the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TextIO

import anyio

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_CLEAR = "\r\033[K"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Console:
    """Where the CLI writes. Keeps stdout's partial line and the spinner from colliding."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.live = _is_tty(self.err)
        self.color = _is_tty(self.out) and "NO_COLOR" not in os.environ
        self._mid_line = False  # stdout holds an unfinished line of streamed text
        self._label: str | None = None  # what the spinner says; None: hidden
        self._drawn = False

    # -- stdout -----------------------------------------------------------------------

    def text(self, fragment: str) -> None:
        """A fragment of streamed reply text, written as it comes."""
        if not fragment:
            return
        self._hide()
        self._label = None  # text is progress enough; the next status brings it back
        self.out.write(fragment)
        self.out.flush()
        self._mid_line = not fragment.endswith("\n")

    def end_text(self) -> None:
        """Finish the streamed text's last line."""
        if self._mid_line:
            self.out.write("\n")
            self.out.flush()
            self._mid_line = False

    def line(self, text: str = "") -> None:
        """A whole line on stdout (tables, transcripts)."""
        self._hide()
        self.end_text()
        self.out.write(text + "\n")
        self.out.flush()

    # -- stderr -----------------------------------------------------------------------

    def status(self, text: str) -> None:
        """A line of progress or information on stderr."""
        self._hide()
        self.end_text()
        self.err.write(text + "\n")
        self.err.flush()

    def ask(self, prompt: str) -> None:
        """A question on stderr; the answer is typed after it on the same line."""
        self._hide()
        self.end_text()
        self.err.write(prompt)
        self.err.flush()

    def mark(self, ok: bool | None) -> str:
        """✓, ✗ or · (coloured on a terminal)."""
        sign = {True: "✓", False: "✗", None: "·"}[ok]
        if not self.color:
            return sign
        code = {True: "32", False: "31", None: "2"}[ok]
        return f"\033[{code}m{sign}\033[0m"

    # -- spinner ----------------------------------------------------------------------

    def working(self, label: str | None) -> None:
        """Set what the spinner says (None hides it until the next label)."""
        if label is None:
            self._hide()
        self._label = label

    @asynccontextmanager
    async def spinner(self, label: str | None = None) -> AsyncIterator[None]:
        """Animate ``working()``'s label on stderr while the block runs (terminals only)."""
        self._label = label
        if not self.live:
            yield
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._spin)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                self._hide()
                self._label = None

    async def _spin(self) -> None:
        frame = 0
        while True:
            if self._label is not None:
                self.err.write(f"{_CLEAR}{_FRAMES[frame % len(_FRAMES)]} {self._label}")
                self.err.flush()
                self._drawn = True
                frame += 1
            await anyio.sleep(0.1)  # animation speed, not a wait for an event

    def _hide(self) -> None:
        if self._drawn:
            self.err.write(_CLEAR)
            self.err.flush()
            self._drawn = False

    def log_handler(self) -> logging.Handler:
        """A logging handler that writes through this console (so it clears the spinner)."""
        return _ConsoleHandler(self)


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.status(self.format(record))
        except Exception:  # logging must never break the command
            self.handleError(record)


class LineReader:
    """Lines from stdin without blocking the event loop, and without blocking exit.

    A daemon thread reads one line per request (anyio's worker threads are not daemons:
    one stuck in ``input()`` would keep the process alive after Ctrl-C). A read that was
    abandoned is handed to the next request, so no typed line is lost.
    """

    def __init__(self) -> None:
        self.interactive = _is_tty(sys.stdin)
        self._pending: asyncio.Future[str | None] | None = None
        if self.interactive:
            with contextlib.suppress(ImportError):  # Windows has none
                import readline  # noqa: F401  (line editing and history for input())

    async def readline(self) -> str | None:
        """The next line without its newline, or None at end of input (Ctrl-D)."""
        if self._pending is None:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[str | None] = loop.create_future()

            def read() -> None:
                try:
                    line: str | None = input()
                except EOFError:
                    line = None
                except BaseException:  # e.g. KeyboardInterrupt in this thread
                    line = None
                with contextlib.suppress(RuntimeError):  # the loop is gone: we have ended
                    loop.call_soon_threadsafe(_settle, future, line)

            threading.Thread(target=read, name="agents-mcp stdin", daemon=True).start()
            self._pending = future
        line = await asyncio.shield(self._pending)
        self._pending = None
        return line


def _settle(future: asyncio.Future[str | None], line: str | None) -> None:
    if not future.done():
        future.set_result(line)
