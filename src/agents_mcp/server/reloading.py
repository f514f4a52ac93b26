"""Agent files read again while serving: a file added, edited or removed under ``[server]
agents_from`` changes the agents without a restart, and clients are told.

The folders are looked at every :data:`INTERVAL` seconds (modification times and sizes,
no file watching library). On a change the files are read again against the running
config (its models and servers), the agents are rebuilt (the next call gets the new
agent; a run already going keeps its own), the access rules follow, and every client
that listed our tools in the handshake era gets ``notifications/tools/list_changed``.
2026-07-28 clients list tools per request and are not sent anything. A change that
leaves no valid config (every file gone) keeps the agents as they were, with a warning.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import anyio
from fastmcp import Context

from agents_mcp.config import Config, reload_agents
from agents_mcp.config.agent_files import snapshot
from agents_mcp.errors import ConfigError, internal_error
from agents_mcp.server.access import Access
from agents_mcp.threads.runtime import Runtime

log = logging.getLogger("agents_mcp.server.reloading")

INTERVAL = 1.0
"""Seconds between two looks at the agent files."""
SESSIONS_KEPT = 256
"""Clients remembered to tell of a change (the most recent ones)."""


class AgentFiles:
    """The config being served, kept current with its agent files."""

    def __init__(self, config: Config, access: Access) -> None:
        self.config = config
        self._access = access
        self._sessions: OrderedDict[str, Any] = OrderedDict()

    def remember(self, ctx: Context | None) -> None:
        """Tell this client of later changes (it listed our tools)."""
        if ctx is None or not self.config.server.agents_from:
            return
        try:
            session, key = ctx.session, ctx.session_id
        except RuntimeError:
            return
        if session.protocol_version.startswith("2026"):  # sessionless: nothing to tell
            return
        self._sessions[key] = session
        self._sessions.move_to_end(key)
        while len(self._sessions) > SESSIONS_KEPT:
            self._sessions.popitem(last=False)

    async def watch(self, runtime: Runtime) -> None:
        """Forever: apply the agent files' changes (run in the background)."""
        entries, path = self.config.server.agents_from, self.config.path
        seen = await anyio.to_thread.run_sync(snapshot, entries, path)
        while True:
            await anyio.sleep(INTERVAL)
            try:
                now = await anyio.to_thread.run_sync(snapshot, entries, path)
                if now != seen:
                    seen = now
                    await self.reload(runtime)
            except Exception as exc:  # this loop must outlive any one bad file
                internal_error(exc, "reading the agent files again")

    async def reload(self, runtime: Runtime) -> bool:
        """Read the agent files again and serve what they say; whether agents changed."""
        try:
            config = await anyio.to_thread.run_sync(reload_agents, self.config)
        except ConfigError as exc:
            log.warning("agent files changed, agents kept as they were: %s", exc)
            return False
        for report in config.imported.files:
            for note in report.notes:
                if note.kind == "problem":
                    log.warning("%s: %s", report.path, note.text)
        added, removed, changed = await runtime.apply(config)
        self.config = config
        self._access.update(config.agents)
        if not (added or removed or changed):
            return False
        log.warning(
            "agent files changed: added %s, removed %s, changed %s",
            ", ".join(added) or "none",
            ", ".join(removed) or "none",
            ", ".join(changed) or "none",
        )
        await self._tell()
        return True

    async def _tell(self) -> None:
        for key, session in list(self._sessions.items()):
            try:
                await session.send_tool_list_changed()
            except Exception as exc:  # a client that went away
                log.debug("cannot tell %s of changed tools: %s", key, exc)
                self._sessions.pop(key, None)
