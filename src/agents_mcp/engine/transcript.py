"""A running thread's transcript, held in memory by the run that owns the thread.

The store stays the truth: every change goes to the database first, then here. Holding it saves
re-reading and re-decoding the whole thread at every step, and keeps the model's view
(``prompt``) up to date incrementally: tool results sit right after the answer that asked
for them, in call order, whatever order they finish in; reasoning text is never included,
the provider's reasoning payload is (each adapter sends it back only to its own provider).
An answer rejected for not meeting the turn's output schema (stored with status ``error``)
is not part of it.

It also keeps a running total of what the model's view costs (see :mod:`agents_mcp.engine.context`),
so :meth:`Transcript.window` finds the newest messages that fit a request without
measuring the whole thread again.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import replace

from agents_mcp.engine.context import (
    CHARS_PER_TOKEN,
    NOTICE_CHARS,
    REFILL,
    ContextWindow,
    calibrated,
    message_chars,
    notice,
)
from agents_mcp.messages import Message, MessageStatus
from agents_mcp.store import Approval, Claim, Store, StoredMessage

NO_RESULT = "Error: no result was recorded"


class Transcript:
    """The messages of one thread and the model's view of them."""

    def __init__(
        self,
        store: Store,
        thread_id: str,
        history: list[StoredMessage],
        budget: int,
        revision: int = 0,
    ) -> None:
        self.store = store
        self.thread_id = thread_id
        self.budget = budget
        self.revision = revision
        """The thread's revision this copy matches (it counts every message change)."""
        self.chars_per_token = CHARS_PER_TOKEN
        """The token estimate, calibrated by the usage the provider reported."""
        self._reset(history)

    def _reset(self, history: list[StoredMessage]) -> None:
        self.messages = history
        self.call_ids: set[str] = set()
        self._prompt: list[Message] = []
        self._slots: dict[str, int] = {}
        self._before = [0]
        """``_before[i]``: what ``_prompt[:i]`` costs, in characters."""
        self._starts: list[int] = []
        """Where a request may start: each user message and each answer (whose tool
        results follow it)."""
        self._last_user = -1
        self._cut = 0
        """Where the last window started; kept while the rest still fits."""
        for h in history:
            self._project(h.message)

    @classmethod
    async def load(cls, store: Store, thread_id: str, budget: int) -> Transcript:
        history, revision = await store.transcript(thread_id)
        return cls(store, thread_id, history, budget, revision)

    async def refresh(self) -> None:
        """Catch up with the store: read only the new messages when nothing but appends
        happened since this copy was made (by this process or another), else everything."""
        new, revision = await self.store.transcript(self.thread_id, since=len(self.messages))
        if revision == self.revision + len(new):
            for h in new:
                self.messages.append(h)
                self._project(h.message)
        else:
            history, revision = await self.store.transcript(self.thread_id)
            self._reset(history)
        self.revision = revision

    def prompt(self) -> list[Message]:
        """The conversation as the model sees it (a copy: requests keep what they sent)."""
        return list(self._prompt)

    def fit(self, window: ContextWindow | None, fixed: int) -> tuple[list[Message], int]:
        """The model's view for one request within ``window``, beside ``fixed`` characters
        of instructions and tools, and what the request carries in characters (0 without a
        window). What is left out is replaced by a :func:`~agents_mcp.engine.context.notice`."""
        if window is None:
            return self.prompt(), 0
        limit = window.limit(fixed, self.chars_per_token) - NOTICE_CHARS
        messages, omitted, cost = self.window(limit)
        if omitted:
            return [notice(omitted, window), *messages], fixed + cost + NOTICE_CHARS
        return messages, fixed + cost

    def window(self, limit: int) -> tuple[list[Message], int, int]:
        """The newest part of :meth:`prompt` that costs at most ``limit`` characters.

        Returns the messages, how many were left out and what the kept ones cost. Whole
        turns only: it starts at a user message or at an answer, so a tool call is never
        separated from its result. The caller's latest message always stays, and so does
        the newest answer with its results, even if they alone exceed ``limit``.
        """
        n = len(self._prompt)
        total = self._before[n]
        if total <= limit or not self._starts:
            self._cut = 0
            return list(self._prompt), 0, total
        last_user = self._last_user
        if not (self._cut and total - self._before[self._cut] <= limit):
            cut = self._start(total - int(limit * REFILL))
            if 0 <= last_user < cut and total - self._before[last_user] <= limit:
                cut = last_user  # the current turn fits, if not with room to spare
            self._cut = cut
        if self._cut <= last_user or last_user < 0:
            return self._prompt[self._cut :], self._cut, total - self._before[self._cut]
        # Even the current turn does not fit: keep its message, then what fits after it.
        user = self._prompt[self._last_user]
        head = self._before[self._last_user + 1] - self._before[self._last_user]
        start = max(self._start(total + head - limit), self._last_user + 1)
        kept = [user, *self._prompt[start:]]
        return kept, n - len(kept), head + total - self._before[start]

    def _start(self, need: int) -> int:
        """The first place a request may start from which at least ``need`` characters
        lie before it (the newest one if none has that many)."""
        at = bisect.bisect_left(self._starts, need, key=lambda i: self._before[i])
        return self._starts[min(at, len(self._starts) - 1)]

    def calibrate(self, sent_chars: int, input_tokens: int) -> None:
        """A request of ``sent_chars`` characters was ``input_tokens`` tokens."""
        self.chars_per_token = calibrated(sent_chars, input_tokens, self.chars_per_token)

    async def append(
        self,
        claim: Claim,
        *messages: Message,
        approvals: Sequence[Approval] = (),
        complete: bool = False,
    ) -> None:
        """Store messages (with the step's other writes, see :meth:`Store.append`)."""
        indexes = await self.store.append(
            self.thread_id, claim, *messages, approvals=approvals, complete=complete
        )
        self.revision += len(messages)
        for index, m in zip(indexes, messages, strict=True):
            stored = StoredMessage(index=index, message=m)
            if self.messages and self.messages[-1].index > index:  # concurrent appends
                bisect.insort(self.messages, stored, key=lambda h: h.index)
            else:
                self.messages.append(stored)
            self._project(m)

    async def finish_call(self, claim: Claim, call_id: str, content: str, *, ok: bool) -> None:
        """Record the result of a call whose row is ``started`` (or ``waiting``)."""
        at = self._row(call_id)
        stored = self.messages[at]
        await self.store.finish_call(self.thread_id, claim, stored.index, call_id, content, ok=ok)
        self.revision += 1
        status: MessageStatus = "complete" if ok else "error"
        done = replace(stored.message, content=content, status=status)
        self.messages[at] = replace(stored, message=done)
        self._project(done)

    async def hold_call(self, claim: Claim, call_id: str, asked: Sequence[Approval]) -> None:
        """The call waits on another agents-mcp's approvals (see :meth:`Store.hold_call`)."""
        at = self._row(call_id)
        stored = self.messages[at]
        await self.store.hold_call(self.thread_id, claim, stored.index, call_id, asked)
        self.revision += 1
        self.messages[at] = replace(stored, message=replace(stored.message, status="waiting"))

    async def restart_call(self, claim: Claim, call_id: str) -> None:
        """A call whose row waited for a sign-in runs now (see :meth:`Store.restart_call`)."""
        at = self._row(call_id)
        stored = self.messages[at]
        await self.store.restart_call(self.thread_id, claim, stored.index, call_id)
        self.revision += 1
        self.messages[at] = replace(stored, message=replace(stored.message, status="started"))

    def _row(self, call_id: str) -> int:
        """Where the unfinished row of ``call_id`` is (the run stored it before the call)."""
        return next(
            i
            for i in range(len(self.messages) - 1, -1, -1)
            if (m := self.messages[i].message).role == "tool"
            and m.tool_call_id == call_id
            and m.status in ("started", "waiting")
        )

    def _project(self, m: Message) -> None:
        if m.role == "event":  # for people reading the thread, not for the model
            return
        if m.role == "assistant" and m.status == "error":  # an answer rejected by the schema
            return
        if m.role != "tool":
            if m.role == "user":
                self._last_user = len(self._prompt)
            self._starts.append(len(self._prompt))
            self._add(
                Message(
                    role=m.role,
                    content=m.content,
                    tool_calls=m.tool_calls,
                    reasoning_payload=m.reasoning_payload,
                )
            )
            for call in m.tool_calls:
                self.call_ids.add(call.id)
                self._slots[call.id] = len(self._prompt)
                self._add(Message(role="tool", tool_call_id=call.id, content=NO_RESULT))
        elif m.status in ("complete", "error") and m.tool_call_id in self._slots:
            content = _fit(m.content or "", self.budget)
            at = self._slots[m.tool_call_id]
            old = self._prompt[at]
            self._prompt[at] = Message(role="tool", tool_call_id=m.tool_call_id, content=content)
            delta = message_chars(self._prompt[at]) - message_chars(old)
            for i in range(at + 1, len(self._before)):  # the answer's slots are near the end
                self._before[i] += delta

    def _add(self, m: Message) -> None:
        self._prompt.append(m)
        self._before.append(self._before[-1] + message_chars(m))


_STORED = re.compile(r"\n\[stored: first (\d+) of (\d+) characters; the rest was dropped\]\Z")


def stored(text: str, limit: int) -> str:
    """What the thread keeps of a tool result or reply: at most ``limit`` characters,
    and a note of how much was dropped (``[server] max_stored_result``)."""
    if len(text) <= limit:
        return text
    return (
        f"{text[:limit]}\n[stored: first {limit} of {len(text)} characters; the rest was dropped]"
    )


def _fit(text: str, budget: int) -> str:
    """What the model is shown of a stored result: at most ``budget`` characters.

    For a result the store cut (see :func:`stored`), the model is told the original
    length, as if the whole result had been kept.
    """
    cut = _STORED.search(text)
    kept, total = (text[: cut.start()], int(cut[2])) if cut else (text, len(text))
    if len(kept) <= budget:
        return text
    where = (
        f"the first {len(kept)} characters are kept in the thread transcript"
        if cut
        else "the full result is kept in the thread transcript"
    )
    return f"{kept[:budget]}\n[truncated: {budget} of {total} characters shown; {where}]"


def current_turn(history: Sequence[StoredMessage]) -> Sequence[StoredMessage]:
    """The messages since the caller's last message (inclusive), as the store's ``TURN``."""
    for i in range(len(history) - 1, -1, -1):
        if history[i].message.role == "user":
            return history[i:]
    return history
