"""Lines a stdio server prints on stdout that are not MCP messages.

Over stdio, stdout is the protocol: a server must write nothing else there. A program
that is not an MCP server (or not in this mode: it wanted other arguments) prints its
banner or usage there and never answers; that used to be told only as a handshake that
did not finish within ``init_timeout``. Now the first such line gives the handshake
:data:`GRACE` more seconds, not ``init_timeout``: a server that prints a banner and then
answers still works (as it does with other clients), and one that does not fails with
what it printed. After the handshake, such lines are logged and ignored.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import anyio
from pydantic import ValidationError

log = logging.getLogger("agents_mcp.downstream")

GRACE = 2.0
"""Seconds a server that printed something else on stdout has left to answer the handshake."""

SHOWN = 3
"""How many of its stray lines an error quotes."""

LINE_CHARS = 120


class NotMCP(Exception):
    """A stdio server printed something that is not an MCP message and did not answer."""

    FIX = (
        "is this command an MCP server over stdio, with the arguments it needs for that?"
        " (a server's own messages belong on stderr)"
    )

    def __init__(self, lines: list[str]) -> None:
        self.shown = ", ".join(repr(line) for line in lines)
        super().__init__(
            f"it printed {self.shown} on stdout, which is for MCP messages only, and did"
            f" not answer the handshake: {self.FIX}"
        )


def stray_line(exc: Exception) -> str:
    """The line the SDK could not read as a JSON-RPC message, from its parse error."""
    line: object = str(exc)
    if isinstance(exc, ValidationError):
        found = [e.get("input") for e in exc.errors(include_url=False)]
        line = next((i for i in found if isinstance(i, str)), line)
    text = " ".join(str(line).split())
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"


class StrayOutput:
    """What one connection to a stdio server printed outside the protocol."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.lines: list[str] = []
        self._handshake: anyio.CancelScope | None = None

    def seen(self, exc: Exception) -> None:
        """The SDK could not read a line of the server's stdout (its parse error)."""
        line = stray_line(exc)
        if len(self.lines) < SHOWN:
            self.lines.append(line)
        scope = self._handshake
        if scope is not None:  # the server has GRACE seconds left to answer
            scope.deadline = min(scope.deadline, anyio.current_time() + GRACE)
        else:
            log.warning(
                "%s: ignored a line on stdout that is not an MCP message: %r", self.server, line
            )

    @contextlib.contextmanager
    def during_handshake(self) -> Iterator[None]:
        """Around the handshake: a stray line shortens it to :data:`GRACE` seconds more,
        and a handshake that then fails or runs out fails with what the server printed."""
        with anyio.CancelScope() as scope:
            self._handshake = scope
            try:
                yield
            except Exception as exc:
                if self.lines:
                    raise NotMCP(self.lines) from exc
                raise
            finally:
                self._handshake = None
        if scope.cancelled_caught:
            raise NotMCP(self.lines)
        if self.lines:
            log.warning(
                "%s: printed %s on stdout before answering; MCP clients expect only MCP"
                " messages there",
                self.server,
                ", ".join(repr(line) for line in self.lines),
            )
