"""Assembling a configuration into running agents: models, downstream servers, store.

Both the MCP server and the CLI open the same runtime, so a thread started in one can be
continued in the other.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from agents_mcp import telemetry
from agents_mcp.config import (
    DEFAULT_CONTEXT_TOKENS,
    AgentConfig,
    Config,
    ModelConfig,
    approval_required,
)
from agents_mcp.downstream.servers import Downstreams, DownstreamServer
from agents_mcp.engine.agent import Agent
from agents_mcp.engine.context import ContextWindow
from agents_mcp.engine.delegation import delegate_tool
from agents_mcp.errors import LLMError, StoreError
from agents_mcp.llm import LLM, TextCallback
from agents_mcp.llm import build_llm as _build_llm
from agents_mcp.messages import LLMRequest, LLMResponse
from agents_mcp.store import SQLStore, Store, open_store, resolve_db
from agents_mcp.store.secrets import keys_for
from agents_mcp.store.tokens import TokenStore
from agents_mcp.threads.lifecycle import retain
from agents_mcp.threads.runs import Runs
from agents_mcp.threads.service import Threads
from agents_mcp.toolsets import ToolInfo, Toolset, WithoutTools

if TYPE_CHECKING:
    from agents_mcp.downstream.signin import Accounts

log = logging.getLogger("agents_mcp.threads.runtime")


def build_llm(cfg: ModelConfig) -> LLM:
    return _build_llm(cfg)


def _approval_rule(cfg: AgentConfig) -> Callable[[ToolInfo], bool]:
    def requires(tool: ToolInfo) -> bool:
        return approval_required(cfg.require_approval, tool.server, tool.tool, tool.read_only)

    return requires


class UnresolvedModel:
    """The model of an entry that names an unset environment variable: every request
    fails with what to set, so only the agents that use it fail, and only when called."""

    def __init__(self, name: str, unset: Sequence[str]) -> None:
        self.problem = unresolved_problem(name, unset)

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        raise LLMError(self.problem)


def unresolved_problem(name: str, unset: Sequence[str]) -> str:
    """Why model ``name`` cannot be used (``unset``: the variables it names that are not
    set), and what to do."""
    several = len(unset) > 1
    return (
        f"model {name!r} cannot be used: its config names the environment"
        f" variable{'s' if several else ''} {', '.join(unset)}, not set where agents-mcp"
        f" started; set {'them' if several else 'it'} (in the shell, or in the env block of"
        " the MCP client's entry for agents-mcp) and start agents-mcp again"
    )


def build_agents(
    config: Config, llms: Mapping[str, LLM], downstreams: Downstreams
) -> dict[str, Agent]:
    return {
        name: Agent(
            name=name,
            description=cfg.description,
            instructions=cfg.instructions,
            llm=llms[cfg.model],
            toolset=agent_toolset(cfg, downstreams),
            requires_approval=_approval_rule(cfg),
            max_iterations=cfg.max_iterations,
            settings=cfg.params.settings(),
            personalities={k: cfg.personality(k) for k in cfg.personalities},
            default_personality=cfg.default_personality,
            on_cancel=cfg.on_cancel,
            tool_result_budget=config.server.tool_result_budget,
            max_stored_result=config.server.max_stored_result,
            delegates=[delegate_tool(n, config.agents[n].description) for n in cfg.agents],
            output_schema=cfg.output_schema,
            context=_context(config.models.get(cfg.model), cfg),
            **_metered(config.models.get(cfg.model), cfg),
        )
        for name, cfg in config.agents.items()
    }


def _metered(model: ModelConfig | None, agent: AgentConfig) -> dict[str, Any]:
    """What usage records, budgets and traces know of an agent's model: its name in
    requests, its API and its price (``model`` None: unresolved, never asked)."""
    if model is None:
        return {"model": agent.model, "budget": agent.budget}
    return {
        "model": model.model or agent.model,
        "provider": model.provider,
        "price": model.price,
        "budget": agent.budget,
    }


async def open_accounts(
    config: Config, store: SQLStore, stack: AsyncExitStack, callback_url: str | None
) -> Accounts | None:
    """The sign-ins to downstream servers (when a server has ``auth = "oauth"``), kept in
    ``store``; ``client_credentials`` servers need none."""
    if not any(c.auth == "oauth" for c in config.mcp_servers.values()):
        return None
    from agents_mcp.downstream.loopback import Loopback, loopback_uri
    from agents_mcp.downstream.signin import Accounts

    port = config.server.oauth_callback_port
    tokens = TokenStore(store.db, keys_for(store.location))
    accounts = Accounts(tokens, config.mcp_servers, callback_url or loopback_uri(port))
    stack.push_async_callback(accounts.aclose)
    if callback_url is None:
        listener = Loopback(accounts, port)
        accounts.on_asked = listener.ensure
        stack.push_async_callback(listener.aclose)
    if tokens.keys.usable and await tokens.rotate():
        log.info("sign-ins re-encrypted with the newest key of %s", tokens.keys.source)
    return accounts


def agent_toolset(cfg: AgentConfig, downstreams: Downstreams) -> Toolset:
    """The tools of ``cfg``'s servers that it may use (``tools``, ``disabled_tools``)."""
    toolset = downstreams.toolset(cfg.servers, cfg.tools)
    return WithoutTools(toolset, cfg.disabled_tools) if cfg.disabled_tools else toolset


def _context(model: ModelConfig | None, agent: AgentConfig) -> ContextWindow:
    """The context window of the agent's requests: its model's, less room for the answer
    (``model`` None: its entry is unresolved and no request is ever made)."""
    if model is None:
        return ContextWindow.of(DEFAULT_CONTEXT_TOKENS["openai"], agent.params.max_tokens)
    return ContextWindow.of(model.context_tokens, agent.params.max_tokens or model.max_tokens)


def _models(
    config: Config, llms: Mapping[str, LLM], stack: AsyncExitStack, warn_unresolved: bool
) -> dict[str, LLM]:
    """Each model by name (``llms`` win), closed with ``stack``."""
    models: dict[str, LLM] = {}
    for name, model_cfg in config.models.items():
        models[name] = llms.get(name) or build_llm(model_cfg)
        closer = getattr(models[name], "aclose", None)
        if closer is not None:
            stack.push_async_callback(closer)
    for name, unset in config.unresolved_models.items():
        models[name] = llms.get(name) or UnresolvedModel(name, unset)
        if warn_unresolved:
            users = [a for a, cfg in config.agents.items() if cfg.model == name]
            log.warning(
                "%s (agents that use it: %s)",
                unresolved_problem(name, unset),
                ", ".join(users) or "none",
            )
    return models


@dataclass
class Runtime:
    """The running agents of a config; :meth:`apply` swaps them for those of a newer
    config (its agent files read again) without a restart."""

    config: Config
    threads: Threads
    downstreams: Downstreams
    models: Mapping[str, LLM]
    accounts: Accounts | None = None
    """The sign-ins to downstream servers, when a server has ``auth``."""

    async def apply(self, config: Config) -> tuple[list[str], list[str], list[str]]:
        """Serve ``config``'s agents from now on; the names added, removed and changed.
        A run already going keeps the agent it started with; the next one gets the new.
        Servers the new agents define are added (a changed one replaced)."""
        servers = self.downstreams.servers
        for name, cfg in config.mcp_servers.items():
            old = servers.get(name)
            if old is None or old.config != cfg:
                if self.accounts is not None:  # a new or changed server: its new entry
                    self.accounts.configs[name] = cfg
                servers[name] = DownstreamServer(name, cfg, accounts=self.accounts)
                if old is not None:
                    await old.aclose()
        before, after = self.config.agents, config.agents
        self.threads.replace_agents(build_agents(config, self.models, self.downstreams))
        self.config = config
        added = [n for n in after if n not in before]
        removed = [n for n in before if n not in after]
        changed = [n for n in after if n in before and after[n] != before[n]]
        return added, removed, changed


@asynccontextmanager
async def open_threads(
    config: Config,
    *,
    db_path: str | Path | None = None,
    llms: Mapping[str, LLM] | None = None,
    transports: Mapping[str, Any] | None = None,
    recover: bool = True,
    warn_unresolved: bool = True,
    callback_url: str | None = None,
) -> AsyncIterator[Threads]:
    """:func:`open_runtime`, for callers that only need the threads."""
    async with open_runtime(
        config,
        db_path=db_path,
        llms=llms,
        transports=transports,
        recover=recover,
        warn_unresolved=warn_unresolved,
        callback_url=callback_url,
    ) as runtime:
        yield runtime.threads


@asynccontextmanager
async def open_runtime(
    config: Config,
    *,
    db_path: str | Path | None = None,
    llms: Mapping[str, LLM] | None = None,
    transports: Mapping[str, Any] | None = None,
    recover: bool = True,
    warn_unresolved: bool = True,
    callback_url: str | None = None,
) -> AsyncIterator[Runtime]:
    """Open the store, build the agents and yield the :class:`Runtime`; close all on exit.

    ``llms`` replaces configured models by name and ``transports`` replaces downstream
    servers by name (tests use scripted models and in-process servers this way).
    Downstream servers connect lazily, on first use, never here. ``recover``: settle and
    resume other processes' abandoned threads, at start and now and then, and delete
    threads older than ``[server] retain_days`` (the server does; a one-shot command such
    as ``agents-mcp pending`` must not run their calls).
    ``warn_unresolved``: log each model whose environment variable is unset (a one-shot
    command that uses none of them need not say so). ``callback_url``: where sign-ins to
    downstream servers come back to (the HTTP server's ``/oauth/callback``); None: a
    loopback listener, started when one is asked.
    """
    async with AsyncExitStack() as stack:
        store = await open_store(
            resolve_db(config.server.db, db_path),
            lease_seconds=config.server.lease_seconds,
            sqlite_durability=config.server.sqlite_durability,
        )
        stack.push_async_callback(store.close)
        accounts = await open_accounts(config, store, stack, callback_url)
        downstreams = Downstreams.from_config(config.mcp_servers, transports or {}, accounts)
        stack.push_async_callback(downstreams.aclose)
        models = _models(config, llms or {}, stack, warn_unresolved)
        runs = Runs(store)
        stack.push_async_callback(runs.aclose)
        store.leases.on_lost = runs.interrupt_all
        threads = Threads(
            store,
            build_agents(config, models, downstreams),
            runs,
            max_depth=config.server.max_depth,
            max_total_llm_requests=config.server.max_total_llm_requests,
            question_timeout=config.server.question_timeout,
        )
        threads.budgets = config.server.budgets
        if accounts is not None:
            from agents_mcp.threads.signin import connect

            connect(threads, accounts)
        if recover:
            await threads.recover()
        runs.spawn(functools.partial(threads.maintain, sweep=recover))
        if recover and config.server.retain_days is not None:
            runs.spawn(functools.partial(retain, store, config.server.retain_days))
        if telemetry.enabled():
            runs.spawn(functools.partial(count_pending, store))
        yield Runtime(config, threads, downstreams, models, accounts)


PENDING_SECONDS = 5.0
"""How often the calls waiting for approval are counted, for the metric."""


async def count_pending(store: Store) -> None:
    """Forever: count the calls that wait for a decision, for the gauge
    ``agents_mcp.approvals.waiting`` (every replica reports the same count)."""
    counted: list[int | None] = [None]
    telemetry.observe("agents_mcp.approvals.waiting", lambda: counted[0])
    while True:
        try:
            counted[0] = await store.pending_count()
        except StoreError as exc:
            log.warning("%s", exc)
        await anyio.sleep(PENDING_SECONDS)
