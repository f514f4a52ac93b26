"""Traces and metrics through OpenTelemetry: off unless switched on, and free when off.

::

    setup(settings)   install the SDK's providers from OTEL_* and [server.telemetry] (configure)
    span(...)         a span around a block, as the current span (otel)
    inject(meta)      the current trace context into an MCP request's _meta
    record_*(...)     the metrics

Everything here is a facade that checks one flag first. Until :func:`setup` switched
telemetry on, no span is made and nothing imports the OpenTelemetry SDK (nor even its
API: ``otel``, which does, loads on first use). The names of spans and attributes follow
the OpenTelemetry GenAI and MCP semantic conventions; the engine chooses them
(``engine.tracing``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from agents_mcp.config import TelemetrySettings

Kind = Literal["internal", "client", "server"]
Attributes = Mapping[str, Any]


@dataclass
class _State:
    on: bool = False
    """Spans and metrics are recorded (``setup`` installed the SDK)."""
    capture_content: bool = False
    """Messages, arguments and results go on spans (``[server.telemetry] capture_content``)."""


STATE = _State()


def enabled() -> bool:
    return STATE.on


def capture_content() -> bool:
    return STATE.on and STATE.capture_content


class Span(Protocol):
    """What code in a span may do with it (a recording span, or nothing at all)."""

    def set(self, attributes: Attributes) -> None: ...
    def event(self, name: str, attributes: Attributes | None = None) -> None: ...
    def fail(self, kind: str, message: str = "") -> None:
        """Mark the span failed: ``error.type`` = ``kind``, status ERROR."""
        ...

    def traceparent(self) -> tuple[str, str | None] | None:
        """The span's W3C ``traceparent`` (and ``tracestate``), to be linked later."""
        ...


class _Nothing:
    """The span when telemetry is off: every method does nothing."""

    def set(self, attributes: Attributes) -> None:
        return None

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        return None

    def fail(self, kind: str, message: str = "") -> None:
        return None

    def traceparent(self) -> tuple[str, str | None] | None:
        return None


NOTHING: Span = _Nothing()


OFF: AbstractContextManager[Span] = nullcontext(NOTHING)
"""The span block while telemetry is off: one object, reused (``nullcontext`` may be)."""


Link = tuple[str, str | None, Attributes]
"""A span to link to: its ``traceparent``, ``tracestate`` and the link's attributes."""


def span(
    name: str,
    kind: Kind = "internal",
    attributes: Attributes | None = None,
    *,
    links: Sequence[Link] = (),
) -> AbstractContextManager[Span]:
    """A span named ``name`` around the block, current inside it; ends with the block
    (an exception marks it failed with ``error.type``)."""
    if not STATE.on:
        return OFF
    from agents_mcp.telemetry import otel

    return otel.span(name, kind, attributes or {}, links)


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span (e.g. the MCP request's server span)."""
    if STATE.on:
        from agents_mcp.telemetry import otel

        otel.annotate(attributes)


def event(name: str, attributes: Attributes | None = None) -> None:
    """Add an event to the current span."""
    if STATE.on:
        from agents_mcp.telemetry import otel

        otel.event(name, attributes or {})


def inject(meta: dict[str, Any]) -> None:
    """Write the current trace context (``traceparent``, ``tracestate``, ``baggage``)
    into an MCP request's ``_meta``, unprefixed as SEP-414 says."""
    if STATE.on:
        from agents_mcp.telemetry import otel

        otel.inject(meta)


def record(metric: str, value: float, attributes: Attributes) -> None:
    """Record ``value`` on one of the instruments of :mod:`agents_mcp.telemetry.otel`."""
    if STATE.on:
        from agents_mcp.telemetry import otel

        otel.record(metric, value, attributes)


def observe(metric: str, read: Callable[[], float | None]) -> None:
    """Report what ``read()`` says as the gauge ``metric`` at each export."""
    if STATE.on:
        from agents_mcp.telemetry import otel

        otel.observe(metric, read)


def setup(settings: TelemetrySettings) -> Callable[[], None] | None:
    """Switch telemetry on when the environment and ``settings`` say so; the function
    that flushes and stops it (None: it stays off). See :mod:`.configure`."""
    from agents_mcp.telemetry.configure import setup as _setup

    return _setup(settings, STATE)
