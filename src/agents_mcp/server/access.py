"""Which agents a caller may use: ``[agents.<name>] access = ["alice", "role:research"]``.

An agent without ``access`` is open to every caller. The ``local`` owner (stdio, the CLI,
loopback HTTP without tokens) is the operator and may use every agent: the CLI reads the
same config and database anyway. For everyone else an agent they may not use does not
exist: naming it is "unknown agent" (with the list of the agents they may use), and its
threads, even their own from before they lost access, answer "not found" like unknown
ids and are left out of ``list_threads``. Nothing is deleted: access given back shows
them again.

A delegation's thread counts as its top-level thread's agent: using an agent includes
the agents it delegates to, which the operator chose in the config.
"""

from __future__ import annotations

from collections.abc import Mapping

from agents_mcp.config import AgentConfig
from agents_mcp.errors import NotFound
from agents_mcp.server.auth import Caller
from agents_mcp.store import Approval, Thread, ThreadStatus
from agents_mcp.threads.service import Threads

PAGES = 10
"""How many pages ``list_threads`` reads to fill one page when it must skip threads."""


class Access:
    """The access rules of every agent, in config order."""

    def __init__(self, agents: Mapping[str, AgentConfig]) -> None:
        self.update(agents)

    def update(self, agents: Mapping[str, AgentConfig]) -> None:
        """The rules of ``agents`` from now on (agent files changed)."""
        self._rules = {name: cfg.access for name, cfg in agents.items()}
        self.open = all(rule is None for rule in self._rules.values())
        """No agent restricts its callers: every check can be skipped."""

    def agents_for(self, caller: Caller) -> list[str]:
        """The agents ``caller`` may use, in config order."""
        if self.open or caller.local:
            return list(self._rules)
        held = {caller.owner, *(f"role:{r}" for r in caller.roles)}
        return [name for name, rule in self._rules.items() if rule is None or held & set(rule)]

    def restricted(self, caller: Caller) -> bool:
        """Whether some agent is closed to ``caller``."""
        return len(self.agents_for(caller)) < len(self._rules)

    def require_agent(self, caller: Caller, agent: str) -> None:
        """Raise "unknown agent" unless ``caller`` may use ``agent``."""
        allowed = self.agents_for(caller)
        if agent not in allowed:
            valid = ", ".join(sorted(allowed)) or "none (no agent is open to you)"
            raise NotFound(f"unknown agent {agent!r}; valid agents: {valid}")

    async def require_thread(self, threads: Threads, caller: Caller, thread_id: str) -> None:
        """Raise "not found" for a thread of an agent ``caller`` may not use."""
        if not self.restricted(caller):
            return  # the owner check of every Threads method is all there is to do
        thread = await threads.store.get_thread(thread_id, caller.owner)
        if not await self._visible(threads, caller, thread):
            raise NotFound(f"thread {thread_id!r} not found")

    async def _visible(self, threads: Threads, caller: Caller, thread: Thread) -> bool:
        if thread.parent_id is not None:
            root = await threads.store.thread(await threads.store.root_of(thread.id))
            thread = root if root is not None else thread
        return thread.agent in self.agents_for(caller)

    async def list_threads(
        self,
        threads: Threads,
        caller: Caller,
        *,
        agent: str | None,
        status: ThreadStatus | None,
        limit: int,
        cursor: str | None,
        include_children: bool,
    ) -> tuple[list[Thread], dict[str, list[Approval]], str | None]:
        """``Threads.list_threads`` without the threads of agents closed to ``caller``.

        Skipped threads are made up from the following pages (up to :data:`PAGES`), so a
        page is short only when that many pages held nothing for the caller.
        """
        if agent is not None:
            self.require_agent(caller, agent)
        if not self.restricted(caller):
            return await threads.list_threads(
                owner=caller.owner,
                agent=agent,
                status=status,
                limit=limit,
                cursor=cursor,
                include_children=include_children,
            )
        found: list[Thread] = []
        pending: dict[str, list[Approval]] = {}
        for _ in range(PAGES):
            page, waiting, cursor = await threads.list_threads(
                owner=caller.owner,
                agent=agent,
                status=status,
                limit=limit - len(found),
                cursor=cursor,
                include_children=include_children,
            )
            for thread in page:
                if await self._visible(threads, caller, thread):
                    found.append(thread)
                    pending[thread.id] = waiting.get(thread.id, [])
            if cursor is None or len(found) == limit:
                break
        return found, pending, cursor
