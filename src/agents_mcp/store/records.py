"""The plain records the store reads and writes, and their row codecs (both databases)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

from agents_mcp.errors import InvalidRequest
from agents_mcp.messages import Message, MessageStatus, ReasoningPayload, Role, ToolCall, Usage

ThreadStatus = Literal[
    "completed", "needs_approval", "running", "failed", "cancelled", "budget_exceeded"
]
ApprovalStatus = Literal["pending", "approved", "denied", "cancelled"]
ApprovalKind = Literal["call", "authorization"]
THREAD_STATUSES: tuple[ThreadStatus, ...] = (
    "completed",
    "needs_approval",
    "running",
    "failed",
    "cancelled",
    "budget_exceeded",
)


class Row(Protocol):
    """A database row: ``sqlite3.Row`` and ``asyncpg.Record`` both read by column name."""

    def __getitem__(self, key: str) -> Any: ...


def new_thread_id() -> str:
    """An unguessable thread id: 144 random bits."""
    return "th_" + secrets.token_urlsafe(18)


def now() -> str:
    """UTC timestamp with milliseconds, sortable as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Claim:
    """One run's hold on a thread: taken in the write that makes the thread ``running``,
    checked by every write the run makes, dropped in the write that ends the run."""

    token: str
    """Unique to the run."""
    runner: str
    """The process (lease) running it."""

    @classmethod
    def new(cls, runner: str) -> Claim:
        return cls("cl_" + secrets.token_urlsafe(12), runner)


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
    """The process (lease id) running the thread, while it is ``running``."""
    claim: str | None = None
    """The run holding the thread, while it is ``running``."""
    stop_requested: bool = False
    """``cancel_run`` asked the run to stop (from any process)."""
    revision: int = 0
    """Counts every change to the thread's messages."""
    output_schema: dict[str, Any] | None = None
    """The JSON Schema the latest turn's final answer must meet (set with each turn)."""
    caller_chain: tuple[tuple[str, str], ...] = ()
    """``(instance, agent)`` links of the agent that asked the latest turn (another
    agents-mcp's delegation), so the turn resumed after an approval or a restart keeps
    the guards against loops and depth."""


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
    kind: ApprovalKind = "call"
    """``authorization``: not a call to decide but a sign-in the owner must give (to
    ``server``, at ``url``) before the call ``origin_call_id`` (None: listing the
    server's tools) can run; it is approved when the sign-in lands."""
    url: str | None = None
    """For an ``authorization``: where the owner signs in (the authorization server's
    page, as discovered from the downstream server)."""

    @property
    def tool_name(self) -> str:
        """The name the model used: ``<server>__<tool>``."""
        return f"{self.server}__{self.tool}"

    @property
    def is_sign_in(self) -> bool:
        """A sign-in the owner must give, rather than a call to decide."""
        return self.kind == "authorization"


def digest(arguments: str) -> str:
    """A digest of the exact argument text, stored to prove it was not changed."""
    return "sha256:" + hashlib.sha256(arguments.encode()).hexdigest()


def thread_row(row: Row) -> Thread:
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
        claim=row["claim"],
        stop_requested=bool(row["stop_requested"]),
        revision=row["revision"],
        output_schema=json.loads(row["output_schema"]) if row["output_schema"] else None,
        caller_chain=_chain(row["caller_chain"]),
    )


def _chain(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    return tuple((str(instance), str(agent)) for instance, agent in json.loads(text))


def chain_text(chain: tuple[tuple[str, str], ...]) -> str | None:
    """How ``Thread.caller_chain`` is stored."""
    return json.dumps([list(link) for link in chain]) if chain else None


def message_row(row: Row) -> StoredMessage:
    raw = row["tool_calls"]
    calls = tuple(ToolCall(**c) for c in json.loads(raw)) if raw else ()
    usage = (
        None
        if row["input_tokens"] is None
        else Usage(
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cache_read_tokens=row["cache_read_tokens"] or 0,
            cache_write_tokens=row["cache_write_tokens"] or 0,
            reasoning_tokens=row["reasoning_tokens"] or 0,
            cost_nanos=row["cost_nanos"],
            model=row["model"],
        )
    )
    payload = row["reasoning_payload"]
    return StoredMessage(
        index=row["idx"],
        message=Message(
            role=cast(Role, row["role"]),
            content=row["content"],
            tool_calls=calls,
            tool_call_id=row["tool_call_id"],
            reasoning=row["reasoning"],
            reasoning_payload=_payload(json.loads(payload)) if payload else None,
            usage=usage,
            status=cast(MessageStatus, row["status"]),
        ),
    )


def _payload(raw: dict[str, Any]) -> ReasoningPayload:
    return ReasoningPayload(provider=raw["provider"], data=raw["data"])


def message_values(thread_id: str, index: int, m: Message, stamp: str) -> tuple[Any, ...]:
    """A message as the values of an ``INSERT INTO messages`` (see ``MESSAGE_COLUMNS``)."""
    calls = (
        json.dumps([{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls])
        if m.tool_calls
        else None
    )
    return (
        thread_id,
        index,
        m.role,
        m.content,
        calls,
        m.tool_call_id,
        m.reasoning,
        None
        if m.reasoning_payload is None
        else json.dumps(
            {"provider": m.reasoning_payload.provider, "data": m.reasoning_payload.data}
        ),
        None if m.usage is None else m.usage.input_tokens,
        None if m.usage is None else m.usage.output_tokens,
        None if m.usage is None else m.usage.cache_read_tokens,
        None if m.usage is None else m.usage.cache_write_tokens,
        m.status,
        stamp,
        None if m.usage is None else m.usage.reasoning_tokens,
        None if m.usage is None else m.usage.cost_nanos,
        None if m.usage is None else m.usage.model,
    )


MESSAGE_COLUMNS = (
    "thread_id, idx, role, content, tool_calls, tool_call_id, reasoning, reasoning_payload,"
    " input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, status, created_at,"
    " reasoning_tokens, cost_nanos, model"
)
MESSAGE_MARKS = ", ".join("?" * len(MESSAGE_COLUMNS.split(",")))
"""The placeholders of an ``INSERT INTO messages ({MESSAGE_COLUMNS})``."""


def approval_row(row: Row) -> Approval:
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
        kind=row["kind"] or "call",
        url=row["url"],
    )


APPROVAL_COLUMNS = (
    "thread_id, call_id, server, tool, arguments, digest, status, reason, reason_hint,"
    " requested_at, decided_at, origin_call_id, remote_server, remote_thread_id,"
    " remote_call_id, via, kind, url"
)


def approval_values(a: Approval) -> tuple[Any, ...]:
    return (
        a.thread_id,
        a.call_id,
        a.server,
        a.tool,
        a.arguments,
        a.digest,
        a.status,
        a.reason,
        a.reason_hint,
        a.requested_at,
        a.decided_at,
        a.origin_call_id,
        a.remote_server,
        a.remote_thread_id,
        a.remote_call_id,
        json.dumps(list(a.via)) if a.via else None,
        None if a.kind == "call" else a.kind,
        a.url,
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


def marks(values: Sequence[object]) -> str:
    """``?, ?, ?`` for an ``IN (…)`` list of ``values``."""
    return ", ".join("?" * len(values))


@dataclass(frozen=True)
class Decision:
    """What recording a decision did: ``recorded`` (other calls still wait, or the run
    that holds the thread picks it up), ``unchanged`` (the same decision was recorded
    before) or ``resumed`` (it was the last one: the thread is now claimed by the claim
    passed in, and the caller starts the run)."""

    outcome: Literal["recorded", "unchanged", "resumed"]
    approval: Approval


@dataclass(frozen=True)
class Settled:
    """What settling a thread whose run ended abnormally did."""

    status: ThreadStatus
    """The top-level thread's new status (``running``: resumed under the claim given)."""
    remote: tuple[Approval, ...] = ()
    """Approvals relayed from other agents-mcp servers that this cancelled: their
    threads must be cancelled there too."""


def schema_text(schema: Mapping[str, Any] | None) -> str | None:
    """An output schema as a column stores it."""
    return None if schema is None else json.dumps(schema)
