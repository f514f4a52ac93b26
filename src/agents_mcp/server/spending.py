"""What results say about usage and cost: tokens, model requests and US dollars.

A thread's own usage and its delegations' are kept apart (``delegated``), and summed in
``total``: a sub-agent's spending is rolled up to the thread that delegated to it.
Costs come from the models' configured prices; ``cost_usd`` is null when no price is
configured for any request counted.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agents_mcp.messages import Usage
from agents_mcp.store import Spent, TreeUsage


class UsageTotals(BaseModel):
    """Usage summed over some model requests."""

    input_tokens: int = Field(description="Prompt tokens, cached ones included")
    output_tokens: int = Field(description="Generated tokens, reasoning included")
    cache_read_tokens: int = Field(0, description="Prompt tokens read from the provider's cache")
    reasoning_tokens: int = Field(0, description="Output tokens spent reasoning, where reported")
    llm_requests: int
    cost_usd: float | None = Field(
        description="What the requests cost, from the models' configured prices (null: none"
        " configured)"
    )


class ThreadUsage(UsageTotals):
    """A thread's usage over its whole life, the agents it delegated to included."""

    delegated: UsageTotals | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="The part spent by agents this thread delegated to (at any depth)",
    )


def cost_usd(usage: Usage) -> float | None:
    return None if usage.cost_nanos is None else usage.cost_nanos / 1e9


def totals(spent: Spent) -> UsageTotals:
    u = spent.usage
    return UsageTotals(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        reasoning_tokens=u.reasoning_tokens,
        llm_requests=spent.requests,
        cost_usd=cost_usd(u),
    )


def thread_usage(tree: TreeUsage) -> ThreadUsage:
    """A thread's usage (its delegations' included, and shown apart)."""
    delegated = totals(tree.delegated) if tree.delegated.requests else None
    return ThreadUsage(**dict(totals(tree.total)), delegated=delegated)


class RunUsage(BaseModel):
    input_tokens: int = Field(description="Prompt tokens over this turn")
    output_tokens: int = Field(description="Completion tokens over this turn")
    llm_requests: int = Field(description="Model requests made in this turn")
    tool_calls: int = Field(description="Downstream tool calls settled in this turn")
    cache_read_tokens: int = Field(
        0,
        exclude_if=lambda v: not v,
        description="Prompt tokens read from the provider's cache (present when some were)",
    )
    reasoning_tokens: int = Field(
        0,
        exclude_if=lambda v: not v,
        description="Output tokens spent reasoning, where the provider reports them",
    )
    cost_usd: float | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="What this turn's model requests cost in US dollars, from the configured"
        " prices (present when the model has a price)",
    )
    delegated: UsageTotals | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="What the agents this turn delegated to spent (at any depth), not"
        " counted above; present only when it delegated",
    )
