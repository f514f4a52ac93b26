"""Agents that call agents: ``agent__<name>`` tools run the same loop as child threads.

A delegation call starts (or continues) a child thread stored under the parent's thread
and call id, and runs it inline, inside the parent's run: cancelling the parent cancels
the child, and a child that pauses for approval pauses its parent. When the parent's run
resumes, the same call finds its child again and continues it, so a decision made at the
top reaches the call two levels down exactly once.

Guards: a delegation deeper than ``max_depth`` or to an agent already on the chain (on
this instance) is refused with a tool error the calling model can read; a shared
``Budget`` caps LLM requests for the whole tree, and the shared ``Spend`` counts its
tokens and cost against the top-level call's budgets (``usage``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from agents_mcp.engine.agent import DELEGATION_SERVER, Agent, Delegated, Link, Run, RunEvent
from agents_mcp.engine.loop import run
from agents_mcp.engine.summary import summarize
from agents_mcp.errors import ClientError
from agents_mcp.messages import ToolCall
from agents_mcp.store import Store, Thread
from agents_mcp.toolsets import ToolInfo

INSTANCE = "am_" + secrets.token_hex(8)
"""This process, as named in delegation chains crossing MCP servers."""

PARAMETERS: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "What to ask or tell the agent"},
        "thread_id": {
            "type": "string",
            "description": "Continue a conversation with this agent (thread_id of an earlier result)",
        },
    },
    "required": ["message"],
    "additionalProperties": False,
}


def delegate_tool(name: str, description: str) -> ToolInfo:
    """How agent ``name`` is offered to a model that may delegate to it."""
    return ToolInfo(
        name=f"{DELEGATION_SERVER}__{name}",
        server=DELEGATION_SERVER,
        tool=name,
        description=f"Delegate to the agent {name!r}: {description}",
        parameters=PARAMETERS,
    )


def chain_text(chain: tuple[Link, ...]) -> str:
    return " › ".join(link.agent for link in chain)


class Delegation:
    """Runs child agents for delegation calls (the loop's ``Delegate``)."""

    def __init__(
        self, store: Store, agents: Mapping[str, Agent], *, max_depth: int, instance: str = INSTANCE
    ) -> None:
        self.store = store
        self.agents = agents
        self.max_depth = max_depth
        self.instance = instance

    def refusal(self, chain: tuple[Link, ...], agent: str) -> str | None:
        """Why delegating from ``chain`` to ``agent`` is refused; None when it is allowed."""
        if any(link.instance == self.instance and link.agent == agent for link in chain):
            return (
                f"Error: delegation refused: agent {agent!r} is already on the chain"
                f" {chain_text(chain)}; calling it again would loop. Answer with what you have."
            )
        if len(chain) > self.max_depth:
            return (
                f"Error: delegation refused: the chain {chain_text(chain)} is already"
                f" {len(chain) - 1} delegations deep (max_depth {self.max_depth})."
                " Do this part yourself."
            )
        return None

    async def __call__(
        self, parent: Run, call: ToolCall, agent: str, arguments: Mapping[str, Any]
    ) -> Delegated:
        refused = self.refusal(parent.chain, agent)
        if refused is not None:
            return Delegated(text=refused, ok=False)
        try:
            child = await self._child(parent, call, agent, arguments)
        except ClientError as exc:
            return Delegated(text=f"Error: {exc}", ok=False)
        if child.status in ("completed", "failed", "cancelled", "budget_exceeded"):
            return await self._outcome(child)  # finished before a crash or a pause upstream
        if child.status == "needs_approval":
            if await self.store.pending_in_tree(child.id):
                return Delegated(text=None)
            try:  # its calls are decided: this run carries them out
                await self.store.resume_child(child.id, parent.claim)
            except ClientError as exc:  # somebody else resumed it meanwhile
                return Delegated(text=f"Error: {exc}", ok=False)
        prefix = f"{agent} › "

        async def progress(event: RunEvent) -> None:
            if event.kind == "status":
                await parent.progress(RunEvent("status", prefix + event.text))

        await run(
            Run(
                agent=self.agents[agent],
                thread_id=child.id,
                store=self.store,
                claim=parent.claim,
                progress=progress,
                chain=(*parent.chain, Link(self.instance, agent)),
                budget=parent.budget,
                delegate=self,
                ask=parent.ask,
                root_id=parent.root,
                owner=parent.owner,
                spend=parent.spend,  # a delegation counts against the call that started it
            )
        )
        finished = await self.store.thread(child.id)
        assert finished is not None
        return await self._outcome(finished)

    async def _child(
        self, parent: Run, call: ToolCall, agent: str, arguments: Mapping[str, Any]
    ) -> Thread:
        """The child thread of this call: found again, continued, or new."""
        existing = await self.store.child_for_call(parent.thread_id, call.id)
        if existing is not None:
            return existing
        message = arguments.get("message")
        if not isinstance(message, str) or not message.strip():
            raise ClientError("agent__ tools need a non-empty 'message' string")
        owner_thread = await self.store.thread(parent.thread_id)
        assert owner_thread is not None
        wanted = arguments.get("thread_id")
        if wanted is None:
            return await self.store.create_thread(
                agent=agent,
                owner=owner_thread.owner,
                first_message=message,
                claim=parent.claim,
                parent=(parent.thread_id, call.id),
            )
        child = await self.store.thread(str(wanted))
        if child is None or child.parent_id != parent.thread_id or child.agent != agent:
            raise ClientError(
                f"thread {wanted!r} is not a conversation of this thread with agent {agent!r};"
                " omit thread_id to start a new one"
            )
        if child.status in ("running", "needs_approval"):
            raise ClientError(f"thread {wanted!r} is {child.status}; it cannot take a message now")
        # One transaction checks the status, adds the message and links the new call.
        return await self.store.start_turn(
            child.id, message, claim=parent.claim, parent_call_id=call.id
        )

    async def _outcome(self, child: Thread) -> Delegated:
        if child.status == "needs_approval":
            return Delegated(text=None)
        summary = await summarize(self.store, child)
        tail = (
            f"[agent {child.agent} · thread_id: {child.id} · pass this thread_id to continue"
            " the conversation with this agent]"
        )
        if child.status == "completed":
            return Delegated(text=f"{summary.reply or ''}\n\n{tail}")
        why = f"{child.error_type}: {child.error_message}" if child.error_type else child.status
        return Delegated(
            text=f"Error: agent {child.agent} did not finish ({why})\n\n{tail}", ok=False
        )
