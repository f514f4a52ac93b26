"""Terminal output for the CLI: streamed replies, status lines, a spinner, and line input.

Replies go to stdout; everything else (status, questions, the spinner) goes to stderr, so
``agents-mcp chat a "…" > reply.txt`` captures only the answer. The spinner is drawn only
when stderr is a terminal, and colours only on a terminal without ``NO_COLOR`` (rich
decides). Output that is not a terminal is never wrapped, so scripts see whole lines.
Never used by ``serve`` except for log lines: over stdio, stdout is the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TextIO

from rich.console import Console as RichConsole
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

MARKS = {True: ("✓", "green"), False: ("✗", "red"), None: ("·", "dim")}


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _rich(stream: TextIO) -> RichConsole:
    tty = _is_tty(stream)
    return RichConsole(
        file=stream,
        width=None if tty else 1_000_000,  # not a terminal: never wrap
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=not tty,
    )


class Console:
    """Where the CLI writes. Keeps stdout's partial line and the spinner from colliding."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.rich_out = _rich(self.out)
        self.rich_err = _rich(self.err)
        self.live = _is_tty(self.err)
        self._mid_line = False  # stdout holds an unfinished line of streamed text
        self._spinner = Spinner("dots", "")
        self._display: Live | None = None  # the spinner while it is shown
        self._active = False  # inside spinner(): a label brings it back

    # -- stdout -----------------------------------------------------------------------

    def text(self, fragment: str) -> None:
        """A fragment of streamed reply text, written as it comes."""
        if not fragment:
            return
        self._hide()  # text is progress enough; the next label brings the spinner back
        self.out.write(fragment)
        self.out.flush()
        self._mid_line = not fragment.endswith("\n")

    def end_text(self) -> None:
        """Finish the streamed text's last line."""
        if self._mid_line:
            self.out.write("\n")
            self.out.flush()
            self._mid_line = False

    def line(self, text: str | Text = "") -> None:
        """A whole line on stdout (transcripts, reports); plain text goes out verbatim."""
        self._hide()
        self.end_text()
        if isinstance(text, Text):
            self.rich_out.print(text)
        else:
            self.out.write(text + "\n")
            self.out.flush()

    # -- stderr -----------------------------------------------------------------------

    def status(self, text: str | Text) -> None:
        """A line of progress or information on stderr."""
        self.end_text()
        if self._display is not None or isinstance(text, Text):
            self.rich_err.print(text)  # above the spinner, when one is shown
        else:
            self.err.write(text + "\n")
            self.err.flush()

    def ask(self, prompt: str) -> None:
        """A question on stderr; the answer is typed after it on the same line."""
        self._hide()
        self.end_text()
        self.err.write(prompt)
        self.err.flush()

    def mark(self, ok: bool | None) -> Text:
        """✓, ✗ or · (coloured on a terminal)."""
        sign, style = MARKS[ok]
        return Text(sign, style=style)

    # -- spinner ----------------------------------------------------------------------

    def working(self, label: str | None) -> None:
        """Set what the spinner says (None hides it until the next label)."""
        if label is None or not self._active:
            self._hide()
            return
        self._spinner.update(text=label)
        if self._display is None:
            self._display = Live(
                self._spinner,
                console=self.rich_err,
                transient=True,
                refresh_per_second=10,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._display.start()

    @asynccontextmanager
    async def spinner(self, label: str | None = None) -> AsyncIterator[None]:
        """Show ``working()``'s label on stderr while the block runs (terminals only)."""
        self._active = self.live
        self.working(label)
        try:
            yield
        finally:
            self._active = False
            self._hide()

    def _hide(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None


_shared: Console | None = None


def one_line(text: str, limit: int = 90) -> str:
    """``text`` on one line (runs of whitespace as one space), cut to ``limit`` with "…"."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def console() -> Console:
    """The process's console (log lines go through it, so they clear the spinner)."""
    global _shared
    if _shared is None:
        _shared = Console()
    return _shared


class _ConsoleHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            console().status(Text(self.format(record)))
        except Exception:  # logging must never break the command
            self.handleError(record)


def log_handler() -> logging.Handler:
    """A logging handler that writes to stderr through the shared console."""
    return _ConsoleHandler()


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
