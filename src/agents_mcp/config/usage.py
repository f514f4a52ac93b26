"""What runs cost and where that is seen: ``[models.<name>] price``,
``[agents.<name>.budget]``, ``[server.budgets]`` and ``[server.telemetry]``.

Prices are US dollars per million tokens, as providers list them; there is no built-in
price table (it would go stale): a model without ``price`` is counted in tokens only.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from agents_mcp.config.base import OwnerName, _Model


class Price(_Model):
    """``price = { input = 2.5, output = 10, cached_input = 1.25 }``: USD per million tokens.

    ``cached_input``: prompt tokens read from the provider's cache (default: ``input``);
    ``cache_write``: prompt tokens written to it (Anthropic; default: ``input``).
    Reasoning tokens are output tokens and cost ``output``.
    """

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)


class DailyBudget(_Model):
    """What one owner (or one agent) may spend per UTC day; a limit left out is no limit."""

    daily_tokens: int | None = Field(None, gt=0)
    """Input plus output tokens."""
    daily_cost: float | None = Field(None, gt=0)
    """US dollars (models without a price count nothing)."""

    @property
    def limited(self) -> bool:
        return self.daily_tokens is not None or self.daily_cost is not None


class AgentBudget(DailyBudget):
    """``[agents.<name>.budget]``: per call and per day.

    ``max_tokens``/``max_cost`` bound one ``chat_with_agent`` call (one turn, with the
    agents it delegates to, across pauses for approval and restarts); a caller may lower
    them for its call. ``daily_tokens``/``daily_cost`` bound everything the agent's
    threads spend in a UTC day, whoever the owner.
    """

    max_tokens: int | None = Field(None, gt=0)
    max_cost: float | None = Field(None, gt=0)


class ServerBudgets(_Model):
    """``[server.budgets]``: what each owner may spend per UTC day.

    ``owner`` applies to every owner not listed in ``owners``::

        [server.budgets]
        owner = { daily_cost = 5.0 }
        [server.budgets.owners.alice]
        daily_cost = 20.0
    """

    owner: DailyBudget = Field(default_factory=DailyBudget)
    owners: dict[OwnerName, DailyBudget] = {}

    def for_owner(self, owner: str) -> DailyBudget:
        return self.owners.get(owner, self.owner)


class TelemetrySettings(_Model):
    """``[server.telemetry]``: what the ``OTEL_*`` environment cannot say.

    Where traces and metrics go, the service name and sampling come from the standard
    variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``,
    ``OTEL_TRACES_SAMPLER``...). ``enabled = "auto"`` exports when an OTLP endpoint is
    set there; ``true`` exports to it or to ``http://localhost:4318``; ``false`` never.
    """

    enabled: bool | None = None
    """None ("auto", the default): on when ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set."""
    capture_content: bool = False
    """Record messages, tool arguments and results on spans (the GenAI conventions'
    opt-in). Secrets (API keys, tokens) are never recorded."""

    @model_validator(mode="before")
    @classmethod
    def _auto(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("enabled") == "auto":
            return {**data, "enabled": None}
        return data
