"""``agents-mcp chat`` and ``agents-mcp approve``: talk to an agent from the terminal.

Same loop, same database and same owner (``local``) as the MCP server over stdio, so a
thread started here can be continued from Claude Desktop and the other way round.
Approvals are asked on the terminal and recorded exactly as ``approve_call`` records them.
With ``--json`` nothing streams: each turn's result is printed as one JSON object, the
same object ``chat_with_agent`` returns as ``structuredContent``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agents_mcp.cli.invocation import Invocation
from agents_mcp.cli.signing import sign_in_lines, wait_for_sign_in
from agents_mcp.cli.terminal import Console, LineReader
from agents_mcp.engine.agent import Progress, RunEvent, ShowsText
from agents_mcp.engine.summary import TurnSummary
from agents_mcp.errors import InvalidRequest, NotFound
from agents_mcp.server.results import agent_result
from agents_mcp.store import LOCAL_OWNER, Approval
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

    async def resume_pending(self) -> bool:
        """Settle what ``--thread`` left undecided; False when it is still waiting."""
        if self.thread_id is None:
            return True
        async with self.console.spinner("loading the thread"):
            summary = await self.threads.get(owner=LOCAL_OWNER, thread_id=self.thread_id)
        if summary.thread.agent != self.agent:
            raise InvalidRequest(
                f"thread {self.thread_id!r} belongs to agent {summary.thread.agent!r},"
                f" not {self.agent!r}; run"
                f" `{self.invocation.command('chat', summary.thread.agent, '--thread', self.thread_id)}`"
            )
        if summary.thread.status != "needs_approval":
            return True
        self._streamed = False
        async with self.console.spinner():
            summary = await self._decide(summary)
        return self._report(summary)

    async def turn(self, message: str) -> bool:
        """Send ``message`` and see the turn through; False when it did not complete."""
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
        """Ask about each pending call until the run no longer waits (or input ends)."""
        while summary.thread.status == "needs_approval" and summary.pending:
            approval = summary.pending[0]
            self.console.working(None)
            if approval.kind == "authorization":  # wait for the sign-in, in the browser
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
        if self.as_json:
            self.console.line(agent_result(summary).model_dump_json(indent=2))
        elif thread.status == "completed" and not self._streamed and summary.reply:
            self.console.line(summary.reply)  # the answer was ready before we listened
        if thread.status == "completed":
            return True
        if thread.status == "needs_approval":
            self.console.status("agents-mcp: the run waits for approval:")
            for line in waiting_lines(self.invocation, thread.id, summary.pending):
                self.console.status(line)
        elif thread.status == "running":
            self.console.status(
                f"agents-mcp: still running after {WAIT:.0f} s;"
                f" see `{self.invocation.command('show', thread.id)}`"
            )
        else:
            why = f" ({thread.error_type})" if thread.error_type else ""
            detail = f": {thread.error_message}" if thread.error_message else ""
            self.console.status(f"agents-mcp: the run {thread.status}{why}{detail}")
        return False


def waiting_lines(invocation: Invocation, thread_id: str, pending: Sequence[Approval]) -> list[str]:
    """Each waiting call and the command that decides it."""
    lines: list[str] = []
    for a in pending:
        if a.kind == "authorization":
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
    async with open_threads(config, db_path=invocation.db, recover=False) as threads:
        threads.agent(agent)  # unknown agent: fail before reading anything
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
            ok = await session.resume_pending()
            if message is not None:
                ok = ok and await session.turn(message)
            elif ok:
                ok = await _interactive(session, console, reader)
        finally:
            if session.thread_id is not None:
                again = invocation.command("chat", agent, "--thread", session.thread_id)
                console.status(f"thread: {session.thread_id} (continue with `{again}`)")
    return 0 if ok else 1


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
    async with open_threads(config, db_path=invocation.db, recover=False) as threads:
        summary = await threads.get(owner=LOCAL_OWNER, thread_id=thread_id)
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
