"""A real OTLP/HTTP receiver for the tests: what exporters POST to ``/v1/traces`` and
``/v1/metrics``, decoded with the official protobufs (``opentelemetry-proto``).

``OTLPReceiver().endpoint`` is what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes. It serves on a
thread of its own (a stdlib ``ThreadingHTTPServer``), so exporters in this process and in
agents-mcp subprocesses reach it alike; :meth:`OTLPReceiver.wait_for` waits, bounded, for
what a test expects to arrive.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import anyio
from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

T = TypeVar("T")

SIGNALS: dict[str, tuple[type[Message], type[Message]]] = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}
INTERNAL, SERVER, CLIENT = 1, 2, 3
"""``Span.kind`` values."""


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


@dataclass(frozen=True)
class Span:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    links: list[tuple[str, str, dict[str, Any]]]
    status: int
    """0 unset, 1 ok, 2 error."""
    events: list[tuple[str, dict[str, Any]]]
    scope: str
    service: str
    start: int
    end: int


@dataclass(frozen=True)
class Point:
    metric: str
    unit: str
    attributes: dict[str, Any]
    count: int | None = None
    sum: float | None = None
    value: float | None = None
    bounds: list[float] = field(default_factory=list)


class OTLPReceiver:
    def __init__(self) -> None:
        self.bodies: dict[str, list[Any]] = {path: [] for path in SIGNALS}
        self.content_types: list[str] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                if path not in SIGNALS:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request_type, response_type = SIGNALS[path]
                message = request_type()
                message.ParseFromString(body)
                with receiver._changed:
                    receiver.bodies[path].append(message)
                    receiver.content_types.append(self.headers.get("Content-Type", ""))
                    receiver._changed.notify_all()
                out = response_type().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def env(self, service: str) -> dict[str, str]:
        """The environment an exporting agents-mcp gets: this receiver, its name, quick
        batches, metrics only at exit (a last export when the process stops)."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_SERVICE_NAME": service,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        }

    def spans(self) -> list[Span]:
        with self._changed:
            requests = list(self.bodies["/v1/traces"])
        out = []
        for request in requests:
            for rs in request.resource_spans:
                service = str(attributes(rs.resource.attributes).get("service.name"))
                for ss in rs.scope_spans:
                    out += [_span(s, ss.scope.name, service) for s in ss.spans]
        return out

    def points(self) -> list[Point]:
        with self._changed:
            requests = list(self.bodies["/v1/metrics"])
        out = []
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        out += _points(m)
        return out

    async def wait_for(self, found: Callable[[OTLPReceiver], T | None], seconds: float = 30) -> T:
        """What ``found(self)`` returns once it is not None (checked at each export)."""

        def wait() -> T:
            with self._changed:
                while True:
                    result = found(self)
                    if result is not None:
                        return result
                    if not self._changed.wait(timeout=seconds):
                        got = sorted({(s.service, s.name) for s in self.spans()})
                        raise TimeoutError(f"not received within {seconds} s; spans: {got}")

        with anyio.fail_after(seconds + 5):
            return await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)


def _span(s: Any, scope: str, service: str) -> Span:
    return Span(
        name=s.name,
        kind=s.kind,
        trace_id=s.trace_id.hex(),
        span_id=s.span_id.hex(),
        parent_id=s.parent_span_id.hex() or None,
        attributes=attributes(s.attributes),
        links=[(x.trace_id.hex(), x.span_id.hex(), attributes(x.attributes)) for x in s.links],
        status=s.status.code,
        events=[(e.name, attributes(e.attributes)) for e in s.events],
        scope=scope,
        service=service,
        start=s.start_time_unix_nano,
        end=s.end_time_unix_nano,
    )


def _points(m: Any) -> list[Point]:
    kind = m.WhichOneof("data")
    if kind == "histogram":
        return [
            Point(m.name, m.unit, attributes(p.attributes), count=p.count, sum=p.sum,
                  bounds=list(p.explicit_bounds))
            for p in m.histogram.data_points
        ]  # fmt: skip
    data = getattr(m, kind)
    return [
        Point(
            m.name,
            m.unit,
            attributes(p.attributes),
            value=p.as_int if p.HasField("as_int") else p.as_double,
        )
        for p in data.data_points
    ]


@contextmanager
def receiver() -> Iterator[OTLPReceiver]:
    rx = OTLPReceiver().start()
    try:
        yield rx
    finally:
        rx.close()
