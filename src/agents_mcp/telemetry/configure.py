"""Switching telemetry on: the SDK's tracer and meter providers, from the ``OTEL_*``
environment and ``[server.telemetry]``.

The SDK has no public "configure from the environment" function (that is the private
``opentelemetry.sdk._configuration``, or the distro's auto-instrumentation), but its
public constructors read most variables themselves: ``Resource.create()`` reads
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``, ``TracerProvider()`` the sampler
(``OTEL_TRACES_SAMPLER[_ARG]``) and span limits, ``BatchSpanProcessor()`` ``OTEL_BSP_*``,
the OTLP/HTTP exporters their endpoint, headers, timeout, compression and certificates,
``PeriodicExportingMetricReader()`` ``OTEL_METRIC_EXPORT_INTERVAL``. What is left is read
here: whether to export at all (``OTEL_SDK_DISABLED``, ``OTEL_TRACES_EXPORTER``,
``OTEL_METRICS_EXPORTER``: ``otlp`` or ``none``) and the protocol (only
``http/protobuf`` is installed).

Telemetry is opt-in: with nothing set, a desktop stdio server must not start sending to
``localhost:4318``. It is on when ``[server.telemetry] enabled = true``, or (``auto``)
when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set. The SDK and exporter come with
``pip install "agents-mcp[otel]"``; they are imported here only, and only when on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agents_mcp.errors import ConfigError

if TYPE_CHECKING:
    from agents_mcp.config import TelemetrySettings
    from agents_mcp.telemetry import _State

log = logging.getLogger("agents_mcp.telemetry")

ENDPOINTS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)
PROTOCOLS = (
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
)
SERVICE_NAME = "agents-mcp"
"""``service.name`` when ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name none."""


def exporters(settings: TelemetrySettings) -> tuple[bool, bool]:
    """Whether traces and metrics are exported: (traces, metrics)."""
    if settings.enabled is False or _env("OTEL_SDK_DISABLED").lower() == "true":
        return False, False
    default = settings.enabled is True or any(_env(v) for v in ENDPOINTS)
    return _wanted("traces", default), _wanted("metrics", default)


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _wanted(signal: str, default: bool) -> bool:
    raw = _env(f"OTEL_{signal.upper()}_EXPORTER")
    if not raw:
        return default
    names = {n.strip().lower() for n in raw.split(",") if n.strip()}
    if names - {"otlp", "none"}:
        log.warning(
            "OTEL_%s_EXPORTER=%s: agents-mcp exports over OTLP only (otlp or none)",
            signal.upper(),
            raw,
        )
    return "otlp" in names and default


def setup(settings: TelemetrySettings, state: _State) -> Callable[[], None] | None:
    """Install the global providers and switch the facade on; returns the idempotent
    function that flushes what is buffered and stops exporting (None: telemetry stays off)."""
    traces, metrics_on = exporters(settings)
    if not (traces or metrics_on):
        return None
    for name in PROTOCOLS:
        if _env(name) and _env(name) != "http/protobuf":
            log.warning("%s=%s: only http/protobuf is supported; using it", name, _env(name))
    try:
        from opentelemetry.sdk.resources import Resource
    except ImportError:
        raise ConfigError(
            "telemetry is switched on (OTEL_EXPORTER_OTLP_ENDPOINT or [server.telemetry]) but"
            ' the OpenTelemetry SDK is not installed: pip install "agents-mcp[otel]"'
        ) from None
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    stops: list[Callable[[], Any]] = []
    if traces:
        stops.append(_traces(resource))
    if metrics_on:
        stops.append(_metrics(resource))
    state.capture_content = settings.capture_content
    state.on = True
    return _once(stops, state)


def _traces(resource: Any) -> Callable[[], Any]:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider.shutdown


def _metrics(resource: Any) -> Callable[[], Any]:
    from opentelemetry import metrics
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
    metrics.set_meter_provider(provider)
    return provider.shutdown  # collects and exports a last time


def _once(stops: list[Callable[[], Any]], state: _State) -> Callable[[], None]:
    done = False

    def shutdown() -> None:
        """Flush and stop (blocking: export is HTTP on the SDK's own threads)."""
        nonlocal done
        if done:
            return
        done = True
        state.on = False
        for stop in stops:
            try:
                stop()
            except Exception as exc:  # telemetry must never break an exit
                log.warning("telemetry shutdown failed: %s", exc)

    return shutdown
