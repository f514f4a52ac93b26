"""What a request must meet before it changes a thread, and the words when it does not:
each refusal says what happened and what to do instead."""

from __future__ import annotations

from agents_mcp.engine.agent import Agent
from agents_mcp.engine.summary import pending_in_tree
from agents_mcp.errors import Conflict, InvalidRequest, NotFound
from agents_mcp.store import Approval, Store, Thread


def check_message(spec: Agent, message: str, personality: str | None, refused: str | None) -> None:
    """A new message for ``spec``: not empty, a personality it has, and not refused by the
    delegation rules (``refused``: their reason)."""
    if refused is not None:
        raise Conflict(refused.removeprefix("Error: "))
    if not message.strip():
        raise InvalidRequest("message is empty; send the text the agent should act on")
    if personality is not None and personality not in spec.personalities:
        valid = ", ".join(sorted(spec.personalities)) or "none (this agent has no personalities)"
        raise InvalidRequest(
            f"unknown personality {personality!r} for agent {spec.name!r}; valid: {valid}"
        )


def check_continuation(thread: Thread, spec: Agent) -> None:
    """``thread`` can take a new message for ``spec``: a top-level thread of that agent."""
    if thread.parent_id is not None:
        raise InvalidRequest(
            f"thread {thread.id!r} is a delegation inside thread {thread.parent_id!r};"
            " continue that thread instead"
        )
    if thread.agent != spec.name:
        raise InvalidRequest(
            f"thread {thread.id!r} belongs to agent {thread.agent!r}, not {spec.name!r};"
            f" call chat_with_agent with agent={thread.agent!r}"
        )


async def busy(store: Store, thread: Thread) -> Conflict:
    """Why a new message cannot go to ``thread`` now, and what to do instead."""
    if thread.status == "needs_approval":
        pending = await pending_in_tree(store, thread)
        listed = "; ".join(f"{a.call_id} ({a.tool_name} {a.arguments})" for a in pending)
        return Conflict(
            f"thread {thread.id!r} has undecided tool calls: {listed}. Decide each with"
            " approve_call(thread_id, call_id, approve=true|false) before sending a new"
            " message, or cancel_run to drop them"
        )
    return Conflict(
        f"thread {thread.id!r} is {thread.status}; call get_thread to wait for its"
        " result, or cancel_run to stop it"
    )


async def find_call(store: Store, thread: Thread, root: Thread, call_id: str) -> Approval:
    """The approval ``call_id`` in ``thread``'s tree (or ``root``'s, for a child)."""
    matches: list[Approval] = []
    every: list[Approval] = []
    for t, _ in await store.tree(root.id if thread.parent_id is None else thread.id):
        found = await store.approvals(t.id)
        every += found
        matches += [a for a in found if a.call_id == call_id]
    if not matches:
        pending = [a.call_id for a in every if a.status == "pending"]
        hint = f"; pending calls: {', '.join(pending)}" if pending else "; nothing is pending"
        raise NotFound(f"call {call_id!r} not found in thread {thread.id!r}{hint}")
    if len(matches) > 1:  # two delegated agents' models chose the same call id
        where = ", ".join(f"thread_id={a.thread_id!r}" for a in matches)
        raise Conflict(
            f"call {call_id!r} exists in several delegated threads; call approve_call with"
            f" the thread_id of the one you mean: {where}"
        )
    return matches[0]
