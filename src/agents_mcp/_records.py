"""The plain records the store reads and writes, and their row codecs.

Kept apart from ``store`` so it reads as the database's operations; ``store`` re-exports
the public names.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

from agents_mcp.errors import InvalidRequest
from agents_mcp.messages import Message, MessageStatus, Role, ToolCall, Usage

ThreadStatus = Literal["completed", "needs_approval", "running", "failed", "cancelled"]
ApprovalStatus = Literal["pending", "approved", "denied"]
THREAD_STATUSES: tuple[ThreadStatus, ...] = (
    "completed",
    "needs_approval",
    "running",
    "failed",
    "cancelled",
)
INTERRUPTED = "interrupted: the server stopped before this step finished"


def new_thread_id() -> str:
    """An unguessable thread id: 144 random bits."""
    return "th_" + secrets.token_urlsafe(18)


def now() -> str:
    """UTC timestamp with milliseconds, sortable as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, kw_only=True)
class Thread:
    id: str
    agent: str
    owner: str
    title: str
    status: ThreadStatus
    error_type: str | None
    error_message: str | None
    created_at: str
    updated_at: str
    message_count: int
    personality: str | None = None
    parent_id: str | None = None
    parent_call_id: str | None = None
    runner: str | None = None
    """The process (lease id) that last ran the thread."""
    revision: int = 0
    """Counts every change to the thread's messages."""


@dataclass(frozen=True, kw_only=True)
class StoredMessage:
    """A message with its position in the thread."""

    index: int
    message: Message


@dataclass(frozen=True, kw_only=True)
class Approval:
    """A tool call that waits for (or got) a human decision. ``arguments`` is stored verbatim."""

    thread_id: str
    call_id: str
    server: str
    tool: str
    arguments: str
    digest: str
    status: ApprovalStatus
    reason: str | None
    requested_at: str
    decided_at: str | None
    reason_hint: str | None = None
    via: tuple[str, ...] = ()
    """The agents the call comes through, from the top-level thread's agent down."""
    origin_call_id: str | None = None
    """For a call relayed from another agents-mcp: our call that is waiting on it."""
    remote_server: str | None = None
    remote_thread_id: str | None = None
    remote_call_id: str | None = None


def digest(arguments: str) -> str:
    """A digest of the exact argument text, stored to prove it was not changed."""
    return "sha256:" + hashlib.sha256(arguments.encode()).hexdigest()


def thread_row(row: sqlite3.Row) -> Thread:
    return Thread(
        id=row["id"],
        agent=row["agent"],
        owner=row["owner"],
        title=row["title"],
        status=row["status"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        message_count=row["message_count"],
        personality=row["personality"],
        parent_id=row["parent_id"],
        parent_call_id=row["parent_call_id"],
        runner=row["runner"],
        revision=row["revision"],
    )


def message_row(row: sqlite3.Row) -> StoredMessage:
    raw = row["tool_calls"]
    calls = tuple(ToolCall(**c) for c in json.loads(raw)) if raw else ()
    usage = (
        None
        if row["input_tokens"] is None
        else Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"])
    )
    return StoredMessage(
        index=row["idx"],
        message=Message(
            role=cast(Role, row["role"]),
            content=row["content"],
            tool_calls=calls,
            tool_call_id=row["tool_call_id"],
            reasoning=row["reasoning"],
            usage=usage,
            status=cast(MessageStatus, row["status"]),
        ),
    )


def approval_row(row: sqlite3.Row) -> Approval:
    return Approval(
        thread_id=row["thread_id"],
        call_id=row["call_id"],
        server=row["server"],
        tool=row["tool"],
        arguments=row["arguments"],
        digest=row["digest"],
        status=row["status"],
        reason=row["reason"],
        reason_hint=row["reason_hint"],
        requested_at=row["requested_at"],
        decided_at=row["decided_at"],
        via=tuple(json.loads(row["via"])) if row["via"] else (),
        origin_call_id=row["origin_call_id"],
        remote_server=row["remote_server"],
        remote_thread_id=row["remote_thread_id"],
        remote_call_id=row["remote_call_id"],
    )


def encode_cursor(t: Thread) -> str:
    raw = json.dumps([t.updated_at, t.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, thread_id = json.loads(raw)
        if not isinstance(updated_at, str) or not isinstance(thread_id, str):
            raise ValueError
    except (ValueError, TypeError):
        raise InvalidRequest(
            f"invalid cursor {cursor!r}; pass the next_cursor of a previous list_threads result"
        ) from None
    return updated_at, thread_id
