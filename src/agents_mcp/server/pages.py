"""What is too big for one answer, and where to read it whole.

A thread may hold million-character tool results (``max_stored_result``) and tool calls
whose arguments are as long, while MCP clients refuse a message over about 1 MiB (the
Python SDK's limit on one SSE event). So nothing we answer holds more than :data:`PAGE`
characters of them (at most a few hundred kB on the wire, even if every character is
escaped), and what is cut names the resource that has it whole:

* ``agents-mcp://threads/<id>``: the newest page of the transcript, whole messages as
  Markdown; ``?before=<n>`` the page of the messages before message ``n``.
* ``agents-mcp://threads/<id>/messages/<n>``: message ``n`` whole, in parts of
  :data:`PAGE` characters when longer (``?part=2``, …).
* ``agents-mcp://threads/<id>/calls/<call_id>``: a tool call's arguments as stored,
  the exact text that runs when the call is approved, in parts likewise.

Every part but the last ends with a note naming the next one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from agents_mcp.errors import NotFound
from agents_mcp.messages import Message
from agents_mcp.store import StoredMessage, Thread

PAGE = 100_000
"""Characters of transcript in one resource read (a page, or a part of a message)."""
MIN_CUT = 500
"""The least of a message worth showing cut at the end of a page (else it starts the next)."""
MIN_ARGUMENTS = 200
"""The least of a call's arguments a result shows, however many calls wait."""


def thread_uri(thread_id: str, before: int | None = None) -> str:
    """The newest page of the transcript, or the page of the messages before ``before``."""
    uri = f"agents-mcp://threads/{thread_id}"
    return uri if before is None else f"{uri}?before={before}"


def message_uri(thread_id: str, index: int, part: int = 1) -> str:
    uri = f"agents-mcp://threads/{thread_id}/messages/{index}"
    return uri if part == 1 else f"{uri}?part={part}"


def call_uri(thread_id: str, call_id: str, part: int = 1) -> str:
    uri = f"agents-mcp://threads/{thread_id}/calls/{call_id}"
    return uri if part == 1 else f"{uri}?part={part}"


def part_count(chars: int, size: int = PAGE) -> int:
    return max(1, -(-chars // size))


def message_markdown(m: Message) -> str:
    """One message as the transcript shows it: every character, reasoning folded."""
    if m.role == "user":
        return f"## User\n\n{m.content or ''}"
    if m.role == "event":
        return f"*— {m.content} —*"
    if m.role == "tool":
        mark = "" if m.status == "complete" else f" ({m.status})"
        return f"### Tool result `{m.tool_call_id}`{mark}\n\n```\n{m.content or ''}\n```"
    out = ["## Assistant"]
    if m.reasoning:
        out += ["<details><summary>reasoning</summary>", "", m.reasoning, "", "</details>"]
    if m.content:
        out.append(m.content)
    out += [f"→ `{c.name}` `{c.arguments}` (call `{c.id}`)" for c in m.tool_calls]
    return "\n\n".join(out)


def page_markdown(
    thread: Thread, history: Sequence[StoredMessage], *, before: int | None, size: int = PAGE
) -> str:
    """The messages before ``before`` (the newest when None) that fit ``size`` characters,
    newest last, under a header with links to the earlier page and the newest.

    A message too long for the page is cut, with a note naming the resource that has it
    whole; it ends the page (or is all of it, when it fits no page on its own).
    """
    end = len(history) if before is None else max(0, min(before, len(history)))
    blocks: list[str] = []
    room, start = size, end
    while start > 0:
        h = history[start - 1]
        block = message_markdown(h.message)
        if len(block) > room:
            if blocks and room < MIN_CUT:
                break
            blocks.append(_cut_block(thread.id, h.index, block, max(room, MIN_CUT)))
            start -= 1
            break
        blocks.append(block)
        room -= len(block)
        start -= 1
    blocks.reverse()
    head = [
        f"# {thread.title}",
        "",
        f"thread `{thread.id}` · agent `{thread.agent}` · {thread.status}",
    ]
    if start < end:
        head.append(f"messages {start}–{end - 1} of {len(history)} (numbered from 0)")
    else:
        head.append(f"no messages before {end} ({len(history)} in all)")
    if start > 0:
        head.append(f"Earlier messages: {thread_uri(thread.id, before=start)}")
    if end < len(history):
        head.append(f"Newest messages: {thread_uri(thread.id)}")
    return "\n\n".join(["\n".join(head[:3]), "\n".join(head[3:]), *blocks]) + "\n"


def _cut_block(thread_id: str, index: int, block: str, shown: int) -> str:
    parts = part_count(len(block))
    where = message_uri(thread_id, index) + (f" ({parts} parts)" if parts > 1 else "")
    return (
        f"{block[:shown]}\n\n[cut: {shown} of {len(block)} characters of message {index}"
        f" shown; the whole message: {where}]"
    )


def message_part(thread_id: str, index: int, block: str, part: int) -> str:
    """Part ``part`` (from 1) of message ``index``, rendered as :func:`message_markdown`."""
    return _part(
        block,
        part,
        f"message {index} of thread {thread_id}",
        lambda p: message_uri(thread_id, index, p),
    )


def call_part(thread_id: str, call_id: str, arguments: str, part: int) -> str:
    """Part ``part`` (from 1) of a call's arguments as stored."""
    return _part(
        arguments,
        part,
        f"arguments of call {call_id} in thread {thread_id}",
        lambda p: call_uri(thread_id, call_id, p),
    )


def _part(text: str, part: int, what: str, uri: Callable[[int], str]) -> str:
    count = part_count(len(text))
    if not 1 <= part <= count:
        raise NotFound(f"{what} has {count} part(s), not {part}")
    chunk = text[(part - 1) * PAGE : part * PAGE]
    if count == 1:
        return chunk
    after = f"next: {uri(part + 1)}" if part < count else "the last part"
    return f"{chunk}\n\n[{what}: part {part} of {count} ({len(text)} characters); {after}]"


def parse_arguments(raw: str) -> Any:
    """A call's arguments as JSON, or the raw text when they are not JSON."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def fit_arguments(raw: str, limit: int) -> tuple[Any, bool]:
    """A call's arguments (parsed) within about ``limit`` characters of JSON, and whether
    they were cut: long strings are shortened in place (each says how much is left out),
    so the shape stays; failing that, the JSON text's beginning, as a string."""
    value = parse_arguments(raw)
    if len(raw) <= limit:
        return value, False
    cap = limit
    while cap >= 16:
        shrunk = _shrink(value, cap)
        if len(json.dumps(shrunk, ensure_ascii=False)) <= limit:
            return shrunk, True
        cap //= 2
    return f"{raw[:limit]}… [{len(raw) - limit} more characters]", True


def _shrink(value: Any, cap: int) -> Any:
    if isinstance(value, str) and len(value) > cap:
        return f"{value[:cap]}… [{len(value) - cap} more characters]"
    if isinstance(value, list):
        return [_shrink(v, cap) for v in value]
    if isinstance(value, dict):
        return {k: _shrink(v, cap) for k, v in value.items()}
    return value


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis last when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
