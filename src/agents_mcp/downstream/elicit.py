"""Questions a downstream server asks during a tool call (``elicitation/create``).

Every downstream ``fastmcp.Client`` gets :meth:`Questions.answer` as its
``elicitation_handler``, which declares the elicitation capability (form and URL modes).
A question reaches it in either protocol era: in the handshake era as a request from the
server (``ctx.elicit``), in the 2026-07-28 era embedded in an input-required result,
which fastmcp's client answers through the same handler and then calls the tool again.
The answer goes back as a proper ``ElicitResult``, never as an error.

Who asked, when one client is shared by many runs? What fastmcp's handler gets is
``(message, response_type, params, context)``; ``context`` is the SDK's
``ClientRequestContext``: the session, the id of the *server's* request (the
input-request key in the 2026-07-28 era) and that request's ``_meta``. None of it names
the ``tools/call`` the question belongs to: the protocol has no such field (an
``elicitation/create`` carries message, schema or URL, and ``_meta``; the SDK's
``related_request_id`` only routes the message onto the right HTTP stream, and the SDK's
client does not report which stream a message came on), and a server does not echo
our request's ``_meta``. So a per-call id in ``_meta`` would not come back. What does
tell:

* **2026-07-28**: fastmcp's client runs the input-required rounds in a task copied from
  the caller's context, so the call's own :data:`_CURRENT` (a context variable set around
  the call) is there when the handler runs. Exact, however many calls share the client.
* **Handshake era**: the handler runs in the session's own task, whose context is the
  connection's (connecting runs with no call current, see :meth:`Questions.outside_calls`).
  The question is routed by elimination: to the one handler of all calls in flight on
  that server when they share one (one call, or one run's parallel calls); otherwise it
  cannot be told whose it is, and the server's own handler answers it.

A call's handler is its run's: the run keeps the question with its thread until a
person answers (``threads.questions``). While a handler waits, the call's time limit
(``timeout``, see :meth:`Questions.during`) stands still: it bounds the server, not the
person. When the call ends first (its server gave up, the run stopped), the handler is
cancelled. A question no call can be told for goes to the server's handler,
:func:`nobody_to_ask`: it logs the question and answers ``cancel`` (no choice was made).
Not ``decline``: that says a person refused, and another agents-mcp with
``approval_prompt = "auto"`` takes it as a denied call, where ``cancel`` makes it return
its pending approvals, which we relay.

Sampling (``sampling/createMessage``) and roots (``roots/list``) keep fastmcp's default:
its client passes no callback, so it declares neither capability and the SDK's session
answers either request with the error "Sampling not supported" / "List roots not
supported" (an input-required round asking for them fails the call the same way).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

if TYPE_CHECKING:  # loaded by the client that asks: not by commands that never connect
    import mcp_types as mt

log = logging.getLogger("agents_mcp.downstream")


@dataclass(frozen=True, kw_only=True)
class Elicitation:
    """A question from a downstream server, in form mode (a schema) or URL mode (a link)."""

    server: str
    tool: str | None
    """The tool whose call it came during; None when that cannot be told (see above)."""
    message: str
    requested_schema: Mapping[str, Any] | None = None
    url: str | None = None
    call_id: str | None = None
    """The caller's id of the call it came during (``during``'s ``call_id``); None when
    that cannot be told."""


@dataclass(frozen=True)
class ElicitAnswer:
    """What the person answered: ``content`` (matching the schema) goes with ``accept``."""

    action: Literal["accept", "decline", "cancel"]
    content: Mapping[str, Any] | None = None


ElicitHandler = Callable[[Elicitation], Awaitable[ElicitAnswer]]
"""Answers a server's question for the run that made the call."""


async def nobody_to_ask(question: Elicitation) -> ElicitAnswer:
    """The server's handler: nobody can be asked, so the question is dismissed."""
    during = f" during {question.tool}" if question.tool else ""
    log.info(
        "%s asked%s: %r; nobody to ask, answered cancel", question.server, during, question.message
    )
    return ElicitAnswer("cancel")


@dataclass(eq=False)
class _Asking:
    """A handler at work on a question, and the calls it may belong to."""

    scope: anyio.CancelScope
    calls: set[Call]


@dataclass(eq=False)
class Call:
    """One ``tools/call`` in flight: whose questions it gets, and its time limit."""

    questions: Questions
    tool: str
    handler: ElicitHandler
    call_id: str | None
    limit: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    asking: set[_Asking] = field(default_factory=set[_Asking])
    _paused: int = 0
    _left: float = 0.0

    @property
    def timed_out(self) -> bool:
        """The call ran out of its time limit (and was cancelled)."""
        return self.limit.cancelled_caught

    def pause(self) -> None:
        if not self._paused:
            self._left = max(0.0, self.limit.deadline - anyio.current_time())
            self.limit.deadline = math.inf
        self._paused += 1

    def resume(self) -> None:
        self._paused -= 1
        if not self._paused:
            self.limit.deadline = anyio.current_time() + self._left

    def ended(self) -> None:
        for asking in list(self.asking):
            asking.calls.discard(self)
            if not asking.calls:  # none of the calls it may belong to goes on
                asking.scope.cancel()


_CURRENT: ContextVar[Call | None] = ContextVar("agents_mcp_downstream_call", default=None)


class Questions:
    """One server's calls in flight, and who answers the questions asked during them."""

    def __init__(self, server: str, fallback: ElicitHandler = nobody_to_ask) -> None:
        self.server = server
        self.fallback = fallback
        self._calls: list[Call] = []

    @contextlib.contextmanager
    def during(
        self,
        tool: str,
        handler: ElicitHandler | None,
        *,
        call_id: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Call]:
        """Around one ``tools/call``: its questions go to ``handler`` (None: the server's),
        and it is cancelled after ``timeout`` seconds (None: never), not counting the
        time a handler waits for an answer (see ``Call.timed_out``)."""
        call = Call(self, tool, handler or self.fallback, call_id)
        if timeout is not None:
            call.limit.deadline = anyio.current_time() + timeout
        self._calls.append(call)
        token = _CURRENT.set(call)
        try:
            with call.limit:
                yield call
        finally:
            _CURRENT.reset(token)
            self._calls.remove(call)
            call.ended()

    @staticmethod
    @contextlib.contextmanager
    def outside_calls() -> Iterator[None]:
        """Around connecting: the client's own tasks, started here, belong to no call."""
        token = _CURRENT.set(None)
        try:
            yield
        finally:
            _CURRENT.reset(token)

    def _route(self) -> tuple[list[Call], ElicitHandler]:
        """The calls a question may belong to, and who answers it."""
        current = _CURRENT.get()
        if current is not None and current.questions is self:
            return [current], current.handler
        handlers = {call.handler for call in self._calls}
        if len(handlers) == 1:
            return list(self._calls), handlers.pop()
        if self._calls:
            log.warning(
                "%s asked a question during one of %d calls; whose cannot be told",
                self.server,
                len(self._calls),
            )
        return [], self.fallback

    async def answer(
        self, message: str, response_type: Any, params: mt.ElicitRequestParams, context: Any
    ) -> mt.ElicitResult:
        """fastmcp's ``elicitation_handler``: route the question, answer with its answer."""
        calls, handler = self._route()
        tools = {call.tool for call in calls}
        question = Elicitation(
            server=self.server,
            tool=tools.pop() if len(tools) == 1 else None,
            message=message,
            requested_schema=getattr(params, "requested_schema", None),
            url=getattr(params, "url", None),
            call_id=calls[0].call_id if len(calls) == 1 else None,
        )
        got = ElicitAnswer("cancel")  # also when the call ends before the answer
        try:
            with self._asking(calls):
                got = await handler(question)
        except Exception:
            log.exception("%s: answering a question failed; answered cancel", self.server)
        import mcp_types as mt

        content = None if got.content is None else dict(got.content)
        return mt.ElicitResult(action=got.action, content=content)

    @staticmethod
    @contextlib.contextmanager
    def _asking(calls: list[Call]) -> Iterator[None]:
        """While a handler works: the calls' time limits stand still, and the handler is
        cancelled once none of them goes on."""
        if not calls:
            yield
            return
        with anyio.CancelScope() as scope:
            asking = _Asking(scope, set(calls))
            for call in calls:
                call.asking.add(asking)
                call.pause()
            try:
                yield
            finally:
                for call in calls:
                    call.asking.discard(asking)
                    call.resume()
