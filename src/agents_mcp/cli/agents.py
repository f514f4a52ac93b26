"""``agents-mcp agents`` (every agent, and where it came from) and ``agents-mcp tools
AGENT`` (the tools its model sees: its servers are started to list them)."""

from __future__ import annotations

import json
from typing import Any

import anyio

from agents_mcp.cli.check_agents import shown_path, source
from agents_mcp.cli.invocation import Invocation
from agents_mcp.cli.terminal import Console, one_line
from agents_mcp.config import approval_required
from agents_mcp.config.agent_files import FORMAT_NAMES
from agents_mcp.errors import NotFound


def list_agents(invocation: Invocation, console: Console, *, as_json: bool) -> int:
    """Print each agent with its model and source; files left out go to stderr."""
    config = invocation.load()
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "model": agent.model,
            "description": " ".join(agent.description.split()),
            "source": source(config, name),
            "file": config.origin(name),
        }
        for name, agent in config.agents.items()
    ]
    if as_json:
        console.line(json.dumps({"agents": rows}, indent=2, ensure_ascii=False))
        return 0
    width = max(len(r["name"]) for r in rows)
    model = max(len(r["model"]) for r in rows)
    for r in rows:
        console.line(f"{r['name'].ljust(width)}  {r['model'].ljust(model)}  {r['source']}")
        console.line(f"{' ' * width}  {one_line(r['description'])}")
    for f in config.imported.files:
        if f.status != "loaded":
            kind = FORMAT_NAMES[f.format] if f.format else "agent file"
            why = "; ".join(
                n.text for n in f.notes if n.kind == "problem" or f.status == "shadowed"
            )
            console.status(f"not used: {shown_path(f.path, config.path)} ({kind}): {why}")
    return 0


async def list_tools(
    invocation: Invocation, agent: str, console: Console, *, as_json: bool, seconds: float
) -> int:
    """Start the agent's servers and print the tools its model is offered."""
    from agents_mcp.downstream.servers import Downstreams
    from agents_mcp.threads.runtime import agent_toolset

    config = invocation.load()
    cfg = config.agents.get(agent)
    if cfg is None:
        valid = ", ".join(config.agents)
        raise NotFound(f"unknown agent {agent!r}; valid agents: {valid}")
    downstreams = Downstreams.from_config({s: config.mcp_servers[s] for s in cfg.servers})
    try:
        async with console.spinner(f"starting {len(cfg.servers)} server(s)"):
            with anyio.move_on_after(seconds):
                found = await agent_toolset(cfg, downstreams).available()
    finally:
        with anyio.move_on_after(10, shield=True):
            await downstreams.aclose()
    tools: list[dict[str, Any]] = [
        {
            "name": t.name,
            "server": t.server,
            "read_only": t.read_only,
            "needs_approval": approval_required(
                cfg.require_approval, t.server, t.tool, t.read_only
            ),
            "description": t.description,
        }
        for t in found.tools
    ]
    tools += [
        {"name": f"agent__{other}", "server": None, "read_only": False, "needs_approval": False,
         "description": f"delegates to agent {other}"}
        for other in cfg.agents
    ]  # fmt: skip
    unavailable = [{"server": u.server, "reason": u.reason} for u in found.unavailable]
    if as_json:
        data = {"agent": agent, "tools": tools, "unavailable": unavailable}
        console.line(json.dumps(data, indent=2, ensure_ascii=False))
        return 1 if unavailable else 0
    width = max((len(t["name"]) for t in tools), default=0)
    for t in tools:
        rule = "needs approval" if t["needs_approval"] else "runs without approval"
        kind = "read-only" if t["read_only"] else "         "
        console.line(f"{t['name'].ljust(width)}  {kind}  {rule}  {one_line(t['description'], 60)}")
    for u in unavailable:
        console.status(f"server {u['server']} is unavailable: {u['reason']}")
    if not tools and not unavailable:
        console.status(f"agent {agent} has no tools")
    return 1 if unavailable else 0
