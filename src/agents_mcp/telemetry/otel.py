"""The facade's work, through the OpenTelemetry API (loaded only once telemetry is on).

Spans come from the global tracer provider that ``configure`` installed (so fastmcp's
and the MCP SDK's own spans land in the same traces), metrics from the global meter
provider. Instruments follow the GenAI and MCP metric conventions, with their advised
bucket boundaries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import Link as OTelLink
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agents_mcp.telemetry import Attributes, Kind, Link

_KINDS = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT, "server": SpanKind.SERVER}
_TRACER = trace.get_tracer("agents_mcp")
_METER = metrics.get_meter("agents_mcp")

_TOKEN_BUCKETS = [4.0**i for i in range(14)]  # 1, 4, 16 … 67 108 864
_SECONDS = [0.01 * 2**i for i in range(14)]  # 0.01 … 81.92
_AGENT_SECONDS = [0.1 * 2**i for i in range(13)]  # 0.1 … 409.6
_MCP_SECONDS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]

_INSTRUMENTS: dict[str, Any] = {
    "gen_ai.client.token.usage": _METER.create_histogram(
        "gen_ai.client.token.usage",
        unit="{token}",
        description="Number of input and output tokens used.",
        explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
    ),
    "gen_ai.client.operation.duration": _METER.create_histogram(
        "gen_ai.client.operation.duration",
        unit="s",
        description="GenAI operation duration.",
        explicit_bucket_boundaries_advisory=_SECONDS,
    ),
    "gen_ai.invoke_agent.duration": _METER.create_histogram(
        "gen_ai.invoke_agent.duration",
        unit="s",
        description="Duration of one run of an agent.",
        explicit_bucket_boundaries_advisory=_AGENT_SECONDS,
    ),
    "mcp.client.operation.duration": _METER.create_histogram(
        "mcp.client.operation.duration",
        unit="s",
        description="Duration of an MCP request sent to a downstream server.",
        explicit_bucket_boundaries_advisory=_MCP_SECONDS,
    ),
    "mcp.server.operation.duration": _METER.create_histogram(
        "mcp.server.operation.duration",
        unit="s",
        description="Duration of an MCP request served.",
        explicit_bucket_boundaries_advisory=_MCP_SECONDS,
    ),
    "agents_mcp.runs.active": _METER.create_up_down_counter(
        "agents_mcp.runs.active",
        unit="{run}",
        description="Runs of agents in progress in this process (delegations included).",
    ),
    "agents_mcp.cost": _METER.create_counter(
        "agents_mcp.cost",
        unit="USD",
        description="What model requests cost, from the configured prices.",
    ),
}
_GAUGES: dict[str, Callable[[], float | None]] = {}
_gauge_lock = threading.Lock()


class _Recording:
    """A recording span, as the facade's :class:`~agents_mcp.telemetry.Span`."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set(self, attributes: Attributes) -> None:
        self._span.set_attributes(_clean(attributes))

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        self._span.add_event(name, _clean(attributes or {}))

    def fail(self, kind: str, message: str = "") -> None:
        self._span.set_attribute("error.type", kind)
        self._span.set_status(Status(StatusCode.ERROR, message or None))

    def traceparent(self) -> tuple[str, str | None] | None:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(self._span))
        if "traceparent" not in carrier:
            return None
        return carrier["traceparent"], carrier.get("tracestate")


def _clean(attributes: Attributes) -> dict[str, Any]:
    """Attributes without the ``None`` values (OpenTelemetry refuses them)."""
    return {k: v for k, v in attributes.items() if v is not None}


def _link(link: Link) -> OTelLink | None:
    traceparent, tracestate, attributes = link
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    context = TraceContextTextMapPropagator().extract(carrier)
    linked = trace.get_current_span(context).get_span_context()
    return OTelLink(linked, _clean(attributes)) if linked.is_valid else None


@contextmanager
def span(
    name: str,
    kind: Kind,
    attributes: Attributes,
    links: Sequence[Link],
) -> Iterator[_Recording]:
    valid = [found for link in links if (found := _link(link)) is not None]
    with _TRACER.start_as_current_span(
        name,
        kind=_KINDS[kind],
        attributes=_clean(attributes),
        links=valid,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        recording = _Recording(current)
        try:
            yield recording
        except BaseException as exc:  # failed, cancelled, or a bug: the span says so and ends
            recording.fail(getattr(exc, "kind", None) or type(exc).__qualname__, str(exc)[:200])
            raise


def annotate(attributes: Attributes) -> None:
    trace.get_current_span().set_attributes(_clean(attributes))


def event(name: str, attributes: Attributes) -> None:
    trace.get_current_span().add_event(name, _clean(attributes))


def inject(meta: dict[str, Any]) -> None:
    propagate.inject(meta)


def record(metric: str, value: float, attributes: Attributes) -> None:
    instrument = _INSTRUMENTS[metric]
    clean = _clean(attributes)
    if hasattr(instrument, "record"):
        instrument.record(value, clean)
    else:
        instrument.add(value, clean)


def observe(metric: str, read: Callable[[], float | None]) -> None:
    """An observable gauge reporting ``read()`` (once per name; the latest ``read`` wins)."""
    with _gauge_lock:
        known = metric in _GAUGES
        _GAUGES[metric] = read
    if known:
        return

    def callback(_: metrics.CallbackOptions) -> Iterator[metrics.Observation]:
        value = _GAUGES[metric]()
        if value is not None:
            yield metrics.Observation(value)

    _METER.create_observable_gauge(metric, callbacks=[callback], unit="{call}")
