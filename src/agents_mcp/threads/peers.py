"""Threads relayed to other agents-mcp servers: cancelling them there when ours is cancelled."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio

from agents_mcp.engine.agent import Agent
from agents_mcp.store import Settled, Store
from agents_mcp.toolsets import ToolInfo

log = logging.getLogger("agents_mcp.threads.peers")

FORWARD_SECONDS = 30.0
"""How long cancelling a relayed thread on another agents-mcp may take."""


async def cancel_relayed(store: Store, agents: Mapping[str, Agent], settled: Settled) -> None:
    """Cancel, on the other agents-mcp servers, the threads whose approvals we relayed
    and just cancelled: their calls must not run there either (each within
    ``FORWARD_SECONDS``; a peer that cannot be reached is logged)."""
    done: set[tuple[str, str]] = set()
    for a in settled.remote:
        if a.remote_server is None or a.remote_thread_id is None:
            continue
        key = (a.remote_server, a.remote_thread_id)
        if key in done:
            continue
        done.add(key)
        owner = await store.thread(a.thread_id)
        spec = agents.get(owner.agent) if owner else None
        if spec is not None:
            await _cancel(spec, a.remote_server, a.remote_thread_id)


async def _cancel(spec: Agent, server: str, thread_id: str) -> None:
    tool = ToolInfo(
        name=f"{server}__cancel_run",
        server=server,
        tool="cancel_run",
        description="",
        parameters={},
    )
    why = "did not answer in time"
    with anyio.move_on_after(FORWARD_SECONDS):
        try:
            out = await spec.toolset.call(tool, {"thread_id": thread_id})
            why = "" if out.ok else out.text
        except Exception as exc:  # e.g. the server left the agent's config
            why = str(exc) or type(exc).__name__
    if why:
        log.warning("could not cancel thread %s on %s: %s", thread_id, server, why)
