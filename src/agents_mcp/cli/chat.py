"""``agents-mcp chat`` and ``agents-mcp approve``: talk to an agent from the terminal.

Same loop, same database and same owner (``local``) as the MCP server over stdio, so a
thread started here can be continued from Claude Desktop and the other way round.
Approvals are asked on the terminal and recorded exactly as ``approve_call`` records them.
With ``--json`` nothing streams and nothing is asked: each turn's result is printed as one
JSON object, the same object ``chat_with_agent`` returns as ``structuredContent``; calls
that need approval stay pending, and ``next`` and ``commands`` say how to decide them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agents_mcp.cli.asking import ask_question
from agents_mcp.cli.invocation import Invocation
from agents_mcp.cli.signing import sign_in_lines, wait_for_sign_in
from agents_mcp.cli.terminal import Console, LineReader
from agents_mcp.config import Config
from agents_mcp.engine.agent import Progress, RunEvent, ShowsText
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.errors import ConfigError, Conflict, InvalidRequest, NotFound
from agents_mcp.server.results import agent_result
from agents_mcp.store import LOCAL_OWNER, Approval, Question, Thread
from agents_mcp.threads.checks import find_call
from agents_mcp.threads.service import Scope, Threads

WAIT = 3600.0
"""A terminal waits for the answer; there is no client deadline to beat."""

_QUESTION = "  approve? [y]es, [n]o (or: n <reason>), [a]lways for this tool in this thread: "


class ChatSession:
    """One terminal conversation with one agent, turn after turn."""

    def __init__(
        self,
        threads: Threads,
        console: Console,
        reader: LineReader,
        invocation: Invocation,
        *,
        agent: str,
        thread_id: str | None = None,
        personality: str | None = None,
        as_json: bool = False,
    ) -> None:
        self.threads = threads
        self.console = console
        self.reader = reader
        self.invocation = invocation
        self.agent = agent
        self.thread_id = thread_id
        self.personality = personality
        self.as_json = as_json
        self.known = False  # the thread exists (found, or created by this session)
        self.waiting: TurnSummary | None = None  # the thread waits for these decisions
        self._streamed = False
        # JSON output carries the reply whole: only a person reading along needs a stream.
        self.listener: Progress = self.progress if as_json else ShowsText(self.progress)

    async def progress(self, event: RunEvent) -> None:
        if event.kind == "text":
            if not self.as_json:  # the result carries the reply whole
                self._streamed = True
                self.console.text(event.text)
            return
        # Delegated agents' events come prefixed with their chain: "helper › calling x".
        what = event.text.rsplit(" › ", 1)[-1]
        if what.startswith("calling "):
            self.console.status(f"→ {event.text}")
            self.console.working(event.text)
        elif what == "waiting for approval":  # our own prompt follows
            self.console.working(None)
        else:  # "thinking (turn 1/12)" and the like: the spinner says it
            self.console.end_text()
            self.console.working(event.text)

    async def resume_pending(self, message: str | None = None) -> bool:
        """Settle what ``--thread`` left undecided; False when it is still waiting. With
        ``message`` to send next, a thread that still waits refuses it (``Conflict``)."""
        if self.thread_id is None:
            return True
        async with self.console.spinner("loading the thread"):
            summary = await self.threads.get(owner=LOCAL_OWNER, thread_id=self.thread_id)
        if summary.thread.agent != self.agent:
            raise InvalidRequest(self._other_agent(summary.thread.agent))
        self.known = True  # this agent's: the hint to continue it holds
        if summary.thread.status != "needs_approval" and not summary.questions:
            return True
        self._streamed = False
        async with self.console.spinner():
            summary = await self._decide(summary)
        if message is not None and summary.thread.status == "needs_approval":
            self.console.end_text()
            raise not_sent(self.invocation, summary)
        return self._report(summary)

    def _other_agent(self, owner: str) -> str:
        """Why ``--thread`` does not go with this agent, and what works instead."""
        mine = f"thread {self.thread_id!r} belongs to agent {owner!r}, not {self.agent!r}"
        if owner in self.threads.agents:
            again = self.invocation.command("chat", owner, "--thread", str(self.thread_id))
            return f"{mine}; run `{again}`"
        return (
            f"{mine}, and {owner!r} is not an agent of this config; use the config that"
            f" defines it, or start a new thread with `{self.invocation.command('chat', self.agent, 'MESSAGE')}`"
        )

    async def turn(self, message: str) -> bool:
        """Send ``message`` and see the turn through; False when it did not complete.
        A thread left waiting for decisions refuses it (``Conflict``)."""
        if self.waiting is not None:
            raise not_sent(self.invocation, self.waiting)
        self._streamed = False
        async with self.console.spinner("sending"):
            summary = await self.threads.chat(
                owner=LOCAL_OWNER,
                agent=self.agent,
                message=message,
                thread_id=self.thread_id,
                personality=self.personality,
                wait=WAIT,
                progress=self.listener,
            )
            self.thread_id = summary.thread.id
            self.known = True
            summary = await self._decide(summary)
        return self._report(summary)

    async def decide(self, call_id: str, approve: bool, scope: Scope, reason: str | None) -> bool:
        """Record one decision (``agents-mcp approve``) and see the run through."""
        assert self.thread_id is not None
        self._streamed = False
        async with self.console.spinner("resuming"):
            summary = await self.threads.approve(
                owner=LOCAL_OWNER,
                thread_id=self.thread_id,
                call_id=call_id,
                approve=approve,
                reason=reason,
                scope=scope,
                wait=WAIT,
                progress=self.listener,
            )
        return self._report(summary)

    async def _decide(self, summary: TurnSummary) -> TurnSummary:
        """Ask about each pending call and question until the run no longer waits for
        the person (or input ends). With ``--json`` nothing is asked: they stay pending."""
        while not self.as_json and (
            summary.questions or (summary.thread.status == "needs_approval" and summary.pending)
        ):
            if summary.questions:
                answered = await self._answer(summary, summary.questions[0])
                if answered is None:  # input ended
                    return summary
                summary = answered
                continue
            approval = summary.pending[0]
            self.console.working(None)
            if approval.is_sign_in:  # wait for the sign-in, in the browser
                if (signed := await wait_for_sign_in(self, summary, approval)) is None:
                    return summary
                summary = signed
                continue
            answer = await self._ask(approval)
            if answer is None:
                return summary
            approve, scope, reason = answer
            self.console.working("resuming")
            summary = await self.threads.approve(
                owner=LOCAL_OWNER,
                thread_id=summary.thread.id,
                call_id=approval.call_id,
                approve=approve,
                reason=reason,
                scope=scope,
                wait=WAIT,
                progress=self.listener,
            )
        return summary

    async def _answer(self, summary: TurnSummary, question: Question) -> TurnSummary | None:
        """Ask a server's question on the terminal and record the answer (None: input
        ended, nothing recorded)."""
        self.console.working(None)
        got = await ask_question(self.console, self.reader, question)
        if got is None:
            return None
        self.console.working("resuming")
        return await self.threads.answer_question(
            owner=LOCAL_OWNER,
            thread_id=summary.thread.id,
            question_id=question.id,
            action=got[0],
            content=got[1],
            wait=WAIT,
            progress=self.listener,
        )

    async def _ask(self, approval: Approval) -> tuple[bool, Scope, str | None] | None:
        via = f" (asked by {' › '.join(approval.via)})" if len(approval.via) > 1 else ""
        self.console.status(
            f"? {approval.server}__{approval.tool}{via} needs your approval to run with:"
        )
        for shown in _pretty(approval.arguments).splitlines():
            self.console.status(f"    {shown}")
        while True:
            self.console.ask(_QUESTION)
            line = await self.reader.readline()
            if line is None:
                self.console.status("")
                return None
            if not self.reader.interactive:
                self.console.status(line)  # echo piped answers so the log reads well
            word, _, rest = line.strip().partition(" ")
            match word.lower():
                case "y" | "yes":
                    return True, "once", None
                case "a" | "always":
                    return True, "thread", None
                case "n" | "no":
                    return False, "once", rest.strip() or None
                case _:
                    self.console.status("  please answer y, n or a")

    def _report(self, summary: TurnSummary) -> bool:
        """Finish the turn's output; True when it completed."""
        self.console.end_text()
        thread = summary.thread
        waits = thread.status == "needs_approval" and summary.pending
        self.waiting = summary if waits else None
        if self.as_json:
            self.console.line(json.dumps(self._as_json(summary), indent=2, ensure_ascii=False))
        elif thread.status == "completed" and not self._streamed and summary.reply:
            self.console.line(summary.reply)  # the answer was ready before we listened
        if thread.status == "completed":
            return True
        if thread.status == "needs_approval":
            self.console.status("agents-mcp: the run waits for approval:")
            for line in waiting_lines(self.invocation, thread.id, summary.pending):
                self.console.status(line)
        elif summary.questions:
            self.console.status("agents-mcp: the run waits for your answer; answer it with")
            self.console.status(
                f"  `{self.invocation.command('chat', thread.agent, '--thread', thread.id)}`"
            )
        elif thread.status == "running":
            self.console.status(
                f"agents-mcp: still running after {WAIT:.0f} s;"
                f" see `{self.invocation.command('show', thread.id)}`"
            )
        else:
            why = f" ({thread.error_type})" if thread.error_type else ""
            detail = f": {thread.error_message}" if thread.error_message else ""
            ended = "stopped" if thread.status == "budget_exceeded" else thread.status
            self.console.status(f"agents-mcp: the run {ended}{why}{detail}")
        return False

    def _as_json(self, summary: TurnSummary) -> dict[str, Any]:
        """The result object; a waiting one also says how to decide its calls here."""
        data: dict[str, Any] = agent_result(summary).model_dump(mode="json")
        if summary.thread.status == "needs_approval" and summary.pending:
            tid = summary.thread.id
            data["next"] = (
                "Not asked (--json): each call waits for a decision. Run its command from"
                " commands (add --deny REASON to refuse), or"
                f" `{self.invocation.command('cancel', tid)}` to drop them."
            )
            data["commands"] = [
                self.invocation.command("approve", tid, a.call_id) for a in summary.pending
            ]
        return data


def not_sent(invocation: Invocation, summary: TurnSummary) -> Conflict:
    """The refusal of a new message to a thread that still waits for approval."""
    tid = summary.thread.id
    calls = ", ".join(f"{a.call_id} ({a.server}__{a.tool})" for a in summary.pending)
    one = summary.pending[0].call_id if len(summary.pending) == 1 else "CALL_ID"
    approve = invocation.command("approve", tid, one)
    return Conflict(
        f"your message was not sent: thread {tid} waits for a decision on {calls};"
        f" decide with `{approve}` (or --deny REASON), or drop the waiting calls with"
        f" `{invocation.command('cancel', tid)}`, then send the message again"
    )


def waiting_lines(invocation: Invocation, thread_id: str, pending: Sequence[Approval]) -> list[str]:
    """Each waiting call and the command that decides it."""
    lines: list[str] = []
    for a in pending:
        if a.is_sign_in:
            lines += sign_in_lines(invocation, thread_id, a)
            continue
        via = f" (asked by {' › '.join(a.via)})" if len(a.via) > 1 else ""
        lines.append(f"  {a.server}__{a.tool} {compact(a.arguments)}{via}")
        lines.append(
            f"    `{invocation.command('approve', thread_id, a.call_id)}` (or --deny REASON)"
        )
    return lines


def compact(arguments: str, limit: int = 200) -> str:
    """The arguments on one line, shortened."""
    try:
        text = json.dumps(json.loads(arguments or "{}"), ensure_ascii=False)
    except json.JSONDecodeError:
        text = arguments
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pretty(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except json.JSONDecodeError:
        return arguments


async def chat(
    invocation: Invocation,
    *,
    agent: str,
    message: str | None,
    thread_id: str | None,
    last: bool,
    personality: str | None,
    as_json: bool,
    console: Console,
) -> int:
    """Run the ``chat`` command; returns the exit code."""
    from agents_mcp.threads.runtime import open_threads

    config = invocation.load()
    reader = LineReader()
    async with open_threads(
        config, db_path=invocation.db, recover=False, warn_unresolved=False
    ) as threads:
        threads.agent(agent)  # unknown agent: fail before reading anything
        usable(config, agent)
        if last:
            thread_id = await _last_thread(threads, invocation, agent)
        session = ChatSession(
            threads,
            console,
            reader,
            invocation,
            agent=agent,
            thread_id=thread_id,
            personality=personality,
            as_json=as_json,
        )
        ok = True
        try:
            ok = await session.resume_pending(message)
            if message is not None and ok:
                ok = await session.turn(message)
            elif message is not None:  # the resumed run did not complete: say so, not drop it
                tid = str(session.thread_id)
                again = invocation.command("chat", agent, "--thread", tid, message)
                console.status(
                    f"agents-mcp: your message was not sent, since the run above did not"
                    f" complete; send it again with `{again}`"
                )
            elif ok:
                ok = await _interactive(session, console, reader)
        finally:
            if session.known and session.thread_id is not None:
                again = invocation.command("chat", agent, "--thread", session.thread_id)
                console.status(f"thread: {session.thread_id} (continue with `{again}`)")
    return 0 if ok else 1


def usable(config: Config, agent: str) -> None:
    """Refuse at once to run ``agent`` when its model names an unset variable (the other
    agents work without it)."""
    model = config.agents[agent].model
    unset = config.unresolved_models.get(model)
    if unset:
        several = len(unset) > 1
        exports = " ".join(f"{name}=…" for name in unset)
        raise ConfigError(
            f"agent {agent!r} uses model {model!r}, which needs the environment"
            f" variable{'s' if several else ''} {', '.join(unset)} (named in models.{model}"
            f" of {config.path}): {'they are' if several else 'it is'} not set; run"
            f" `export {exports}` and try again"
        )


async def _last_thread(threads: Threads, invocation: Invocation, agent: str) -> str:
    found, _, _ = await threads.list_threads(owner=LOCAL_OWNER, agent=agent, limit=1)
    if not found:
        start = invocation.command("chat", agent, "MESSAGE")
        raise NotFound(f"agent {agent!r} has no thread to continue; start one with `{start}`")
    return found[0].id


async def approve(
    invocation: Invocation,
    *,
    thread_id: str,
    call_id: str,
    deny: str | None,
    always: bool,
    as_json: bool,
    console: Console,
) -> int:
    """Run the ``approve`` command: decide one waiting call, then see the run through."""
    from agents_mcp.threads.runtime import open_threads

    if deny is not None and always:
        raise InvalidRequest("--always allows the tool for the thread; it cannot go with --deny")
    config = invocation.load()
    async with open_threads(
        config, db_path=invocation.db, recover=False, warn_unresolved=False
    ) as threads:
        summary = await threads.get(owner=LOCAL_OWNER, thread_id=thread_id)
        root = await _root(threads, summary.thread)
        if root.agent in config.agents:
            usable(config, root.agent)
        earlier = await find_call(threads.store, summary.thread, root, call_id)
        if earlier.status == ("approved" if deny is None else "denied"):
            console.status(already(earlier))
        session = ChatSession(
            threads,
            console,
            LineReader(),
            invocation,
            agent=summary.thread.agent,
            thread_id=thread_id,
            as_json=as_json,
        )
        scope: Scope = "thread" if always else "once"
        ok = await session.decide(call_id, deny is None, scope, deny or None)
    return 0 if ok else 1


async def _root(threads: Threads, thread: Thread) -> Thread:
    """The top-level thread of ``thread`` (itself, unless it is a delegation's)."""
    if thread.parent_id is None:
        return thread
    root_id = await threads.store.root_of(thread.id)
    return await threads.store.get_thread(root_id, LOCAL_OWNER)


def already(decided: Approval) -> str:
    """The note for a decision that was made before: this one changes nothing."""
    stamp = decided.decided_at  # 2026-11-21T10:00:01.123Z, shown as `show` does
    when = f" at {stamp.replace('T', ' ').split('.')[0]}Z" if stamp else ""
    why = f" ({decided.reason})" if decided.reason else ""
    return (
        f"agents-mcp: call {decided.call_id} was already {decided.status}{when}{why};"
        " this changes nothing. The thread's current result follows."
    )


async def _interactive(session: ChatSession, console: Console, reader: LineReader) -> bool:
    if reader.interactive:
        console.status(f"Chatting with {session.agent}. Ctrl-D to quit.")
    ok = True
    while True:
        if reader.interactive:
            console.ask("you> ")
        try:
            line = await reader.readline()
        except BaseException:  # Ctrl-C at the prompt: end its line before we say more
            if reader.interactive:
                console.status("")
            raise
        if line is None:
            if reader.interactive:
                console.status("")
            return ok
        if line.strip():
            ok = await session.turn(line)
