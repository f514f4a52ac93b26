"""A downstream server's questions in our results.

A pending question (``threads.questions``) is shown in every result of its thread:
``pending_questions`` in ``structuredContent``, and in the text with the call that
answers it (``answer_question``). Asking it inline: ``asking``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from agents_mcp.store import Question


class PendingQuestion(BaseModel):
    question_id: str = Field(description="Pass this to answer_question")
    thread_id: str = Field(description="The thread whose run asked (a delegation's own)")
    server: str = Field(description="The downstream server that asks")
    tool: str | None = Field(description="Its tool that asks, when known")
    call_id: str | None = Field(description="The agent's call it asks during, when known")
    message: str = Field(description="The question, for the person")
    requested_schema: dict[str, Any] = Field(
        description="What to answer with action='accept': content is an object matching"
        " this JSON Schema (flat fields: strings, numbers, booleans, choices)"
    )
    asked_at: str
    via: list[str] = Field(
        default_factory=list[str],
        description="The agents the call comes through, from this thread's agent down",
    )


def pending_question(q: Question) -> PendingQuestion:
    return PendingQuestion(
        question_id=q.id,
        thread_id=q.thread_id,
        server=q.server,
        tool=q.tool,
        call_id=q.call_id,
        message=q.message,
        requested_schema=q.requested_schema or {"type": "object"},
        asked_at=q.asked_at,
        via=list(q.via),
    )


def fields(schema: Mapping[str, Any], limit: int = 300) -> str:
    """The fields a question asks for, on one line: ``colour (string: red|blue, required)``."""
    required = set(schema.get("required") or ())
    parts = []
    for name, spec in (schema.get("properties") or {}).items():
        kind = str(spec.get("type", "any")) if isinstance(spec, dict) else "any"
        choices = spec.get("enum") if isinstance(spec, dict) else None
        if choices:
            kind += ": " + "|".join(str(c) for c in choices)
        parts.append(f"{name} ({kind}{', required' if name in required else ''})")
    text = ", ".join(parts) or "nothing (an empty form: accept or decline)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def question_lines(
    thread_id: str, questions: list[PendingQuestion], *, person_decides: bool
) -> list[str]:
    """The questions in a result's text, and how to answer them."""
    lines = [f"A tool of the agent asks the user {len(questions)} question(s); its run waits:"]
    for q in questions:
        who = f"{q.server}__{q.tool}" if q.tool else q.server
        where = f"question_id: {q.question_id}"
        if q.thread_id != thread_id:
            where += f", asked by {' › '.join(q.via)}"
        lines.append(f"- {who} asks: {json.dumps(q.message, ensure_ascii=False)} ({where})")
        lines.append(f"  answer fields: {fields(q.requested_schema)}")
    if person_decides:
        lines.append(
            "The person answers in the agents-mcp view shown with this result; answering is"
            " theirs, not yours. Tell them a question waits, then call"
            f" get_thread(thread_id={thread_id!r}, wait_seconds=30) for the outcome."
        )
    else:
        lines.append(
            "Ask the user, then answer each with answer_question(thread_id="
            f"{thread_id!r}, question_id=…, content={{…}}); action='decline' if they refuse,"
            " action='cancel' if they would rather not answer."
        )
    return lines
