"""An agent, ready to run, and one run of it on a thread: what the loop works with.

Plain dataclasses: the model, the toolset and the store come in here as parameters
(:class:`Agent`, :class:`Run`), never as module globals.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agents_mcp import telemetry
from agents_mcp.config import AgentBudget, Price
from agents_mcp.engine.context import ContextWindow
from agents_mcp.engine.transcript import Transcript
from agents_mcp.errors import (
    BudgetExceeded,
)
from agents_mcp.llm import LLM
from agents_mcp.messages import ToolCall
from agents_mcp.store import (
    Claim,
    Store,
)
from agents_mcp.toolsets import ToolInfo, Toolset, Unavailable

if TYPE_CHECKING:
    from agents_mcp.downstream.elicit import ElicitAnswer, Elicitation, ElicitHandler
    from agents_mcp.engine.usage import Spend


@dataclass(frozen=True)
class RunEvent:
    """Something a watcher of a run may show: a ``status`` line or streamed ``text``."""

    kind: Literal["status", "text"]
    text: str


Progress = Callable[[RunEvent], Awaitable[None]]
"""A listener of a run. One that shows streamed text as it comes (a terminal) has a true
``shows_text`` attribute: only then is the model's answer streamed (``stream = "auto"``)."""


async def _no_progress(event: RunEvent) -> None:
    return None


@dataclass(frozen=True)
class ShowsText:
    """A listener that shows the model's text as it streams (a terminal): with it
    attached, answers are streamed (``stream = "auto"``)."""

    listener: Progress
    shows_text: bool = True

    async def __call__(self, event: RunEvent) -> None:
        await self.listener(event)


@dataclass(frozen=True, kw_only=True)
class Agent:
    """A configured agent, ready to run: its model, tools and rules."""

    name: str
    description: str
    instructions: str
    llm: LLM
    toolset: Toolset
    requires_approval: Callable[[ToolInfo], bool]
    max_iterations: int = 12
    settings: Mapping[str, Any] = field(default_factory=dict[str, Any])
    personalities: Mapping[str, str] = field(default_factory=dict[str, str])
    default_personality: str | None = None
    on_cancel: Literal["detach", "stop"] = "detach"
    """What a cancelled request does to the run it waits for."""
    tool_result_budget: int = 50_000
    """Characters of one tool result shown to the model (the transcript keeps more)."""
    max_stored_result: int = 1_000_000
    """Characters of one tool result or reply the thread keeps; the rest is dropped."""
    delegates: Sequence[ToolInfo] = ()
    """Agents this one may call, as ``agent__<name>`` tools."""
    output_schema: Mapping[str, Any] | None = None
    """The JSON Schema every final answer must meet, unless a call names its own."""
    context: ContextWindow | None = None
    """The model's context window; None: requests carry the whole transcript."""
    model: str = ""
    """The model's name as requests send it (usage records, traces)."""
    provider: str = ""
    """The API its model speaks: ``openai``, ``anthropic``, ``responses``, ``demo``."""
    price: Price | None = None
    """What its model's tokens cost (None: counted in tokens only)."""
    budget: AgentBudget = field(default_factory=AgentBudget)
    """Its limits per call and per day (see ``usage``)."""

    def system_prompt(self, personality: str | None) -> str:
        """Instructions, then the chosen (or default) personality."""
        chosen = personality or self.default_personality
        parts = [self.instructions, self.personalities.get(chosen, "") if chosen else ""]
        return "\n\n".join(p.strip() for p in parts if p.strip())


@dataclass(frozen=True)
class Link:
    """One hop of a delegation chain: an agent on an agents-mcp instance."""

    instance: str
    agent: str


@dataclass
class Budget:
    """LLM requests left to a top-level run, shared by all its delegations."""

    limit: int
    used: int = 0

    def take(self) -> None:
        if self.used >= self.limit:
            raise BudgetExceeded(
                f"this run used its budget of {self.limit} LLM requests (max_total_llm_requests),"
                " delegations included; send a message to continue"
            )
        self.used += 1


@dataclass(frozen=True)
class Delegated:
    """What a delegation call gives the parent's model; ``text`` None: still waiting."""

    text: str | None
    ok: bool = True


Ask = Callable[["Run", "Elicitation"], Awaitable["ElicitAnswer"]]
"""Asks the person behind a run a question a downstream server asked during one of its
calls, and waits for the answer (see ``threads.questions``)."""

Delegate = Callable[["Run", ToolCall, str, Mapping[str, Any]], Awaitable[Delegated]]
"""Runs a child agent for a parent run's ``agent__<name>`` call (see ``delegation``)."""

DELEGATION_SERVER = "agent"
"""The ``server`` of delegation tools: the model sees them as ``agent__<name>``."""


@dataclass(frozen=True, kw_only=True)
class Run:
    """One run of an agent on a thread."""

    agent: Agent
    thread_id: str
    store: Store
    claim: Claim
    """The run's hold on its thread (a delegation's run shares its parent's)."""
    progress: Progress = _no_progress
    personality: str | None = None
    chain: tuple[Link, ...] = ()
    """The delegation chain down to this run's agent (itself last)."""
    budget: Budget | None = None
    delegate: Delegate | None = None
    state: RunState = field(default_factory=lambda: RunState())
    reads_text: Callable[[], bool] = lambda: False
    """Whether someone shows the model's text as it streams (a terminal chat)."""
    output_schema: Mapping[str, Any] | None = None
    """The JSON Schema this turn's final answer must meet (else the agent's, if any)."""
    owner: str | None = None
    """Whose thread it is: downstream servers that sign each person in get this owner's
    token (a delegation's run inherits its parent's)."""
    ask: Ask | None = None
    """Who asks the person the questions downstream servers ask (None: nobody is asked)."""
    root_id: str | None = None
    """The top-level thread, for a delegation's run (None: ``thread_id`` is one)."""

    @property
    def root(self) -> str:
        """The top-level thread this run's thread belongs to."""
        return self.root_id or self.thread_id

    def asker(self) -> ElicitHandler | None:
        """The handler of the questions asked during this run's calls: one per run, so
        the calls of one run share it (see ``downstream.elicit``)."""
        if self.ask is None:
            return None
        if self.state.asker is None:
            self.state.asker = functools.partial(self.ask, self)
        return self.state.asker

    spend: Spend | None = None
    """What the call spends and may spend, shared by its delegations (see ``usage``)."""

    @property
    def schema(self) -> Mapping[str, Any] | None:
        """The schema the final answer must meet, if any."""
        return self.output_schema if self.output_schema is not None else self.agent.output_schema

    def meta(self) -> dict[str, Any]:
        """The ``_meta`` sent with downstream calls, so another agents-mcp sees the chain,
        and every server the trace (``traceparent``: the current span, when traced)."""
        meta: dict[str, Any] = {
            CHAIN_META: [{"instance": link.instance, "agent": link.agent} for link in self.chain]
        }
        telemetry.inject(meta)
        return meta


CHAIN_META = "agents-mcp/chain"


@dataclass
class RunState:
    """What a run keeps between its steps: the thread's transcript and its tool list."""

    transcript: Transcript | None = None
    tools: list[ToolInfo] | None = None
    unavailable: list[Unavailable] = field(default_factory=list[Unavailable])
    """Servers whose tools could not be offered in this run."""
    fixed_chars: int | None = None
    """What each request carries besides the conversation (instructions, tools, schema)."""
    asker: ElicitHandler | None = None
    """The run's handler of downstream questions (see ``Run.asker``)."""
