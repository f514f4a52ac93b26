"""A downstream server's question, asked on the terminal (``agents-mcp chat``).

One line per field of the server's form; ``!decline`` refuses, ``!cancel`` answers
nothing (the tool is told so), an empty line leaves an optional field out. The answer is
checked against the server's schema before it is recorded, the way ``answer_question``
records it (``Threads.answer_question``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agents_mcp.cli.terminal import Console, LineReader
from agents_mcp.errors import InvalidRequest
from agents_mcp.store import Action, Question
from agents_mcp.threads.questions import check_answer

Answer = tuple[Action, dict[str, Any] | None]


async def ask_question(console: Console, reader: LineReader, q: Question) -> Answer | None:
    """The person's answer to ``q``, or None when input ends."""
    who = f"{q.server}__{q.tool}" if q.tool else q.server
    via = f" (asked by {' › '.join(q.via)})" if len(q.via) > 1 else ""
    console.status(f"? {who}{via} asks: {q.message}")
    console.status("  (type !decline to refuse, !cancel to answer nothing)")
    schema = q.requested_schema or {}
    while True:
        content: dict[str, Any] = {}
        required = set(schema.get("required") or ())
        for name, spec in (schema.get("properties") or {}).items():
            got = await _field(console, reader, name, spec or {}, name in required)
            if got is _END:
                return None
            if isinstance(got, str) and got in ("!decline", "!cancel"):
                return ("decline" if got == "!decline" else "cancel"), None
            if got is not _LEFT_OUT:
                content[name] = got
        try:
            check_answer(q, "accept", content)
        except InvalidRequest as exc:
            console.status(f"  {exc}; try again")
            continue
        return "accept", content


_END = object()
_LEFT_OUT = object()


async def _field(
    console: Console, reader: LineReader, name: str, spec: Mapping[str, Any], required: bool
) -> Any:
    kind = str(spec.get("type", "string"))
    choices = spec.get("enum")
    shown = f"{spec.get('title') or name} ({kind}"
    if choices:
        shown += ": " + " | ".join(str(c) for c in choices)
    elif kind == "boolean":
        shown += ": y | n"
    shown += ", required): " if required else "): "
    while True:
        console.ask(f"  {shown}")
        line = await reader.readline()
        if line is None:
            console.status("")
            return _END
        if not reader.interactive:
            console.status(line)  # echo piped answers so the log reads well
        text = line.strip()
        if text in ("!decline", "!cancel"):
            return text
        if not text and not required:
            return _LEFT_OUT
        value = _parsed(kind, text)
        if value is not _LEFT_OUT:
            return value
        console.status(f"  please answer a {kind}")


def _parsed(kind: str, text: str) -> Any:
    if kind == "boolean":
        return {"y": True, "yes": True, "true": True, "n": False, "no": False, "false": False}.get(
            text.lower(), _LEFT_OUT
        )
    if kind in ("number", "integer"):
        try:
            number = json.loads(text)
        except json.JSONDecodeError:
            return _LEFT_OUT
        return number if isinstance(number, int | float) else _LEFT_OUT
    return text
