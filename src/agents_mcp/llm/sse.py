"""Server-sent events, as every provider streams them (the WHATWG ``text/event-stream`` format).

An event is a block of ``field: value`` lines ended by a blank line. ``data`` lines are
joined with ``\\n``; ``event`` names the event (Anthropic and the Responses API send it,
Chat Completions does not); ``id`` and ``retry`` are read and ignored (requests are never
resumed); lines starting with ``:`` are comments (keep-alives). A last event not followed
by a blank line is still delivered: the body ended, which is all a blank line would say.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event: its ``event`` name (``"message"`` when none was sent) and its ``data``."""

    event: str
    data: str


async def read_events(response: httpx2.Response) -> AsyncIterator[ServerSentEvent]:
    """The events of a streamed response body, as they arrive.

    Read the iterator to its end: an unread body makes httpx2 drop the pooled connection,
    and every request would pay a new (TLS) handshake.
    """
    event = ""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line[0] == ":":
            continue
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield ServerSentEvent(event or "message", "\n".join(data))
