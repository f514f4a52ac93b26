"""What a run spends: each model request priced, checked against its budgets, traced.

:func:`complete` is how the loop asks the model. Before the request, :class:`Spend`
admits it: this call's limits (``max_tokens``/``max_cost``, checked against what the
turn has spent, delegations included) and the daily ones of the owner and of the
top-level agent (reserved atomically in the store: ``store.usage``). A refusal is a
:class:`BudgetExceeded`, so the run ends ``budget_exceeded`` at a step boundary, never in
the middle of a write. After the answer, its usage is priced (``[models.<name>] price``),
stored with the answer, and charged.

A delegated run shares its parent's :class:`Spend`: it counts against the call that
started the tree and the top-level agent's daily budget. A resumed run (after an
approval, a restart, on another replica) reads back what its turn spent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import anyio

from agents_mcp import telemetry
from agents_mcp.config import AgentBudget, DailyBudget, Price, ServerBudgets
from agents_mcp.engine.agent import Agent, Run
from agents_mcp.engine.tracing import chat_span, chat_usage
from agents_mcp.errors import BudgetExceeded
from agents_mcp.llm import TextCallback
from agents_mcp.messages import LLMRequest, LLMResponse, Usage
from agents_mcp.store import Charge, Refusal, Store, StoredMessage, Thread

__all__ = ["Limits", "ServerBudgets", "Spend", "complete", "cost_nanos", "dollars", "nanos"]

NANOS = 1_000_000_000
"""Costs are counted in billionths of a US dollar: exact sums, whatever the prices."""


def nanos(dollars: float | None) -> int | None:
    """A price or limit in dollars, as nanodollars."""
    return None if dollars is None else int(Decimal(repr(dollars)) * NANOS)


def dollars(amount: int | None) -> str:
    """Nanodollars as ``$1.2345`` (at least cent precision, at most nanodollars)."""
    if amount is None:
        return "unpriced"
    text = f"{Decimal(amount) / NANOS:.9f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def cost_nanos(price: Price | None, usage: Usage) -> int | None:
    """What ``usage`` costs at ``price`` (USD per million tokens), in nanodollars."""
    if price is None:
        return None
    cached = Decimal(repr(price.cached_input if price.cached_input is not None else price.input))
    written = Decimal(repr(price.cache_write if price.cache_write is not None else price.input))
    fresh = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
    per_million = (
        fresh * Decimal(repr(price.input))
        + usage.cache_read_tokens * cached
        + usage.cache_write_tokens * written
        + usage.output_tokens * Decimal(repr(price.output))
    )
    return int((per_million * NANOS / 1_000_000).quantize(Decimal(1), ROUND_HALF_EVEN))


def priced(agent: Agent, usage: Usage) -> Usage:
    """The request's usage with its model and cost, as it is stored."""
    return replace(usage, cost_nanos=cost_nanos(agent.price, usage), model=agent.model or None)


def today() -> str:
    """The UTC day budgets count in."""
    return datetime.now(UTC).date().isoformat()


def resets(day: str) -> str:
    """When a daily budget of ``day`` starts afresh."""
    return f"{(datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()}T00:00:00Z"


def charges(
    owner: str, owner_budget: DailyBudget, agent: str, agent_budget: DailyBudget
) -> list[Charge]:
    """The daily budgets a run of ``agent`` for ``owner`` counts against."""
    out = []
    for scope, budget in ((f"owner:{owner}", owner_budget), (f"agent:{agent}", agent_budget)):
        if budget.limited:
            out.append(Charge(scope, budget.daily_tokens, nanos(budget.daily_cost)))
    return out


@dataclass(frozen=True)
class Limits:
    """Per-call limits: input plus output tokens, and nanodollars (None: no limit)."""

    tokens: int | None = None
    nanos: int | None = None

    @classmethod
    def of(cls, budget: AgentBudget) -> Limits:
        return cls(budget.max_tokens, nanos(budget.max_cost))

    def lowered(self, other: Limits) -> Limits:
        """The tighter of the two, limit by limit."""

        def low(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else min(a, b)

        return Limits(low(self.tokens, other.tokens), low(self.nanos, other.nanos))

    @property
    def limited(self) -> bool:
        return self.tokens is not None or self.nanos is not None


@dataclass(frozen=True)
class Ticket:
    """An admitted request: the day it counts in and what it reserved."""

    day: str
    reserved: tuple[int, int]


@dataclass
class Spend:
    """What one call (a top-level run and its delegations) has spent and may spend.

    ``caller`` is None for a resumed run: the limits its caller set are read back,
    with what the turn spent, before its first request.
    """

    store: Store
    owner: str
    root_id: str
    call: Limits
    daily: Sequence[Charge] = ()
    caller: Limits | None = Limits()
    turn: int = 0
    """The index of the turn's first message (the caller's), set when the run starts."""
    tokens: int = 0
    nanos: int = 0
    last: Usage = field(default_factory=Usage)
    """The previous request's usage: the next one's estimate."""

    @classmethod
    def of(
        cls,
        store: Store,
        agent: Agent,
        owner: str,
        root_id: str,
        budgets: ServerBudgets | None,
        caller: Limits | None,
    ) -> Spend:
        """The spending of a run of ``agent`` for ``owner`` on thread ``root_id``, under
        the agent's and the server's budgets, and the ``caller``'s limits (None: read
        them back, with what the turn spent: a resumed turn)."""
        call = Limits.of(agent.budget)
        owners = (budgets or ServerBudgets()).for_owner(owner)
        return cls(
            store,
            owner=owner,
            root_id=root_id,
            call=call if caller is None else call.lowered(caller),
            daily=charges(owner, owners, agent.name, agent.budget),
            caller=caller,
        )

    @classmethod
    async def new_turn(
        cls,
        store: Store,
        agent: Agent,
        owner: str,
        thread: Thread,
        budgets: ServerBudgets | None,
        limits: Limits | None,
    ) -> Spend:
        """The spending of the turn just started on ``thread``, under the ``limits`` its
        caller set, which are stored for the run that resumes the turn."""
        caller = limits or Limits()
        if caller.limited:
            turn = thread.message_count - 1
            await store.save_turn_limits(thread.id, turn, caller.tokens, caller.nanos)
        return cls.of(store, agent, owner, thread.id, budgets, caller)

    def starting(self, turn: Sequence[StoredMessage]) -> Spend:
        """This spending, for a run that starts on ``turn`` (the caller's message first)."""
        if turn:
            self.turn = turn[0].index
        return self

    async def admit(self, agent: Agent, input_estimate: int) -> Ticket | None:
        """Let one more request go, or raise :class:`BudgetExceeded`."""
        if self.caller is None:
            await self._resume()
        limits = self.call
        if limits.tokens is not None and self.tokens >= limits.tokens:
            raise BudgetExceeded(
                f"this call's budget is used up: {self.tokens} tokens of max_tokens"
                f" {limits.tokens} (in and out, delegated agents included); send a message to"
                " continue with a new call's budget"
            )
        if limits.nanos is not None and self.nanos >= limits.nanos:
            raise BudgetExceeded(
                f"this call's budget is used up: {dollars(self.nanos)} of max_cost"
                f" {dollars(limits.nanos)} (delegated agents included); send a message to"
                " continue with a new call's budget"
            )
        if not self.daily:
            return None
        guess = Usage(
            input_tokens=max(input_estimate, self.last.input_tokens),
            output_tokens=self.last.output_tokens,
        )
        reserved = (guess.tokens, cost_nanos(agent.price, guess) or 0)
        day = today()
        refused = await self.store.budget_admit(self.daily, day, *reserved)
        if refused is not None:
            raise BudgetExceeded(_daily_message(refused, day))
        return Ticket(day, reserved)

    async def settle(self, ticket: Ticket | None, usage: Usage) -> None:
        """Count an answered request's usage (and replace its reservation by it)."""
        self.tokens += usage.tokens
        self.nanos += usage.cost_nanos or 0
        self.last = usage
        if ticket is not None:
            with anyio.CancelScope(shield=True):  # the money is spent: it is counted
                await self.store.budget_settle(
                    self.daily, ticket.day, ticket.reserved, (usage.tokens, usage.cost_nanos or 0)
                )

    async def release(self, ticket: Ticket | None) -> None:
        """A request that failed: its reservation is dropped."""
        if ticket is not None:
            with anyio.CancelScope(shield=True):
                await self.store.budget_settle(self.daily, ticket.day, ticket.reserved, (0, 0))

    async def _resume(self) -> None:
        tokens, cost = await self.store.turn_limits(self.root_id, self.turn)
        self.caller = Limits(tokens, cost)
        self.call = self.call.lowered(self.caller)
        if self.call.limited:
            spent = (await self.store.turn_usage(self.root_id)).total.usage
            self.tokens, self.nanos = spent.tokens, spent.cost_nanos or 0


def _daily_message(refused: Refusal, day: str) -> str:
    kind, _, name = refused.charge.scope.partition(":")
    who = f"{kind} {name!r}"
    if refused.charge.nanos is not None and (
        refused.spent_nanos + refused.reserved_nanos >= refused.charge.nanos
    ):
        used = f"{dollars(refused.spent_nanos)} spent"
        if refused.reserved_nanos:
            used += f", {dollars(refused.reserved_nanos)} reserved by requests in flight"
        what = f"{used} of daily_cost {dollars(refused.charge.nanos)}"
    else:
        used = f"{refused.spent_tokens} tokens spent"
        if refused.reserved_tokens:
            used += f", {refused.reserved_tokens} reserved by requests in flight"
        what = f"{used} of daily_tokens {refused.charge.tokens}"
    return (
        f"the daily budget of {who} is used up ({what} on {day}, UTC); it resets at {resets(day)}"
    )


async def complete(
    r: Run, request: LLMRequest, on_text: TextCallback | None, input_estimate: int = 0
) -> LLMResponse:
    """Ask the run's model: admitted by the budgets first, priced, charged and traced."""
    spend = r.spend
    ticket = None if spend is None else await spend.admit(r.agent, input_estimate)
    started = time.perf_counter()
    with chat_span(r, request) as span:
        try:
            response = await r.agent.llm.complete(request, on_text=on_text)
        except BaseException:
            if spend is not None:
                await spend.release(ticket)
            raise
        usage = priced(r.agent, response.usage)
        if telemetry.enabled():
            chat_usage(span, r.agent, response, usage, time.perf_counter() - started)
    if spend is not None:
        await spend.settle(ticket, usage)
    return replace(response, usage=usage)
