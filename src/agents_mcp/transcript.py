"""A running thread's transcript, held in memory by the run that owns the thread.

The store stays the truth: every change goes to the database first, then here. Holding it saves
re-reading and re-decoding the whole thread at every step, and keeps the model's view
(``prompt``) up to date incrementally: tool results sit right after the answer that asked
for them, in call order, whatever order they finish in; reasoning text is never included,
the provider's reasoning payload is (each adapter sends it back only to its own provider).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import replace

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
        self._reset(history)

    def _reset(self, history: list[StoredMessage]) -> None:
        self.messages = history
        self.call_ids: set[str] = set()
        self._prompt: list[Message] = []
        self._slots: dict[str, int] = {}
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
        if m.role != "tool":
            self._prompt.append(
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
                self._prompt.append(Message(role="tool", tool_call_id=call.id, content=NO_RESULT))
        elif m.status in ("complete", "error") and m.tool_call_id in self._slots:
            content = _fit(m.content or "", self.budget)
            self._prompt[self._slots[m.tool_call_id]] = Message(
                role="tool", tool_call_id=m.tool_call_id, content=content
            )


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
