"""A real OTLP/HTTP receiver on loopback: it decodes what exporters send with opentelemetry-proto."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service_name: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    links: tuple[tuple[str, str], ...] = ()  # (trace id, span id) of each linked span


@dataclass
class Receiver:
    url: str
    spans: list[ReceivedSpan] = field(default_factory=list)
    metric_names: set[str] = field(default_factory=set)
    logs: list[tuple[str, str, str]] = field(default_factory=list)  # (trace id, severity, body)
    content_types: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, name: str, timeout: float = 10.0) -> list[ReceivedSpan]:
        """The spans named `name` once one arrived (exporters send in batches, after a delay)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [span for span in self.spans if span.name == name]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no span {name!r} reached the receiver; got {sorted({s.name for s in self.spans})}")


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        receiver = self.server.receiver  # type: ignore[attr-defined]
        with receiver.lock:
            receiver.content_types.add(self.headers.get("Content-Type", ""))
            if self.path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            receiver.spans.append(
                                ReceivedSpan(
                                    trace_id=span.trace_id.hex(),
                                    span_id=span.span_id.hex(),
                                    parent_span_id=span.parent_span_id.hex(),
                                    name=span.name,
                                    service_name=str(resource.get("service.name")),
                                    attributes={a.key: _value(a.value) for a in span.attributes},
                                    events=[
                                        (e.name, {a.key: _value(a.value) for a in e.attributes}) for e in span.events
                                    ],
                                    links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                                )
                            )
            elif self.path == "/v1/logs":
                logs_request = ExportLogsServiceRequest.FromString(body)
                for resource_logs in logs_request.resource_logs:
                    for scope_logs in resource_logs.scope_logs:
                        for record in scope_logs.log_records:
                            entry = (record.trace_id.hex(), record.severity_text, str(_value(record.body)))
                            receiver.logs.append(entry)
            elif self.path == "/v1/metrics":
                metrics_request = ExportMetricsServiceRequest.FromString(body)
                for resource_metrics in metrics_request.resource_metrics:
                    for scope_metrics in resource_metrics.scope_metrics:
                        receiver.metric_names.update(metric.name for metric in scope_metrics.metrics)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.receiver = receiver  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
