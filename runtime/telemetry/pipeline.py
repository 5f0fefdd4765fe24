"""The OpenTelemetry SDK, installed once per process, and each running server's exporters attached to it.

OpenTelemetry's providers are process-global and cannot be replaced once set, while a process
may start and stop several servers (the tests, `pocketstack eval run`). So the SDK's providers
are installed once, with a span processor, a sampler and a metric exporter that forward to what
the running server(s) attached: `Telemetry.start` attaches a server's local store and OTLP
exporters, `stop` flushes and detaches them. With no server attached (or `telemetry.enabled:
false`), the sampler records nothing and spans cost next to nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from pocketstack import __version__
from pocketstack.config import TelemetryConfig
from pocketstack.storage.spans import SpanStore
from pocketstack.storage.sqlite import Database
from pocketstack.telemetry.instruments import set_capture_content
from pocketstack.telemetry.local_store import OwnerProcessor, SpanOwners, SpanStoreExporter
from pocketstack.telemetry.logs import PACKAGE_LOGGER, OtlpLogs, SpanEventHandler

log = logging.getLogger(__name__)
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
# Spans wait this long at most before they reach the local store (and the query API).
LOCAL_FLUSH_MS = 1000


class _Switchboard(SpanProcessor):
    """Forwards to the processors attached now (a tuple swapped whole, so the hot path takes no lock)."""

    def __init__(self) -> None:
        self.processors: tuple[SpanProcessor, ...] = ()
        self._lock = threading.Lock()

    def attach(self, processors: Sequence[SpanProcessor]) -> None:
        with self._lock:
            self.processors = (*self.processors, *processors)

    def detach(self, processors: Sequence[SpanProcessor]) -> None:
        with self._lock:
            self.processors = tuple(p for p in self.processors if p not in processors)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self.processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self.processors:
            processor.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(processor.force_flush(timeout_millis) for processor in self.processors)


class _AttachedSampler(Sampler):
    """Samples new traces at the attached server's ratio; nothing at all while none is attached."""

    def __init__(self) -> None:
        self.ratio: TraceIdRatioBased | None = None

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        ratio = self.ratio
        if ratio is None:
            return SamplingResult(Decision.DROP)
        return ratio.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "PocketStackAttached"


class _ForwardingMetricExporter(MetricExporter):
    """The periodic OTLP metric reader's exporter: the attached server's OTLP exporter, or nothing."""

    def __init__(self) -> None:
        super().__init__(preferred_temporality={}, preferred_aggregation={})
        self.target: MetricExporter | None = None

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object) -> MetricExportResult:
        target = self.target
        if target is None:
            return MetricExportResult.SUCCESS
        return target.export(metrics_data, timeout_millis=timeout_millis)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        pass


class _Sdk:
    def __init__(self, service_name: str) -> None:
        resource = Resource.create({"service.name": service_name, "service.version": __version__})
        self.switchboard = _Switchboard()
        self.sampler = _AttachedSampler()
        self.tracer_provider = TracerProvider(resource=resource, sampler=ParentBased(root=self.sampler))
        self.tracer_provider.add_span_processor(self.switchboard)
        self.metric_forwarder = _ForwardingMetricExporter()
        interval = float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000"))
        self.prometheus = PrometheusMetricReader()
        self.periodic = PeriodicExportingMetricReader(self.metric_forwarder, interval)
        readers = [self.prometheus, self.periodic]
        # No exemplars: neither the Prometheus text nor the local store shows them, and they cost ~3 us a record.
        self.meter_provider = MeterProvider(
            resource=resource, metric_readers=readers, exemplar_filter=AlwaysOffExemplarFilter()
        )
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)


_sdk: _Sdk | None = None
_sdk_lock = threading.Lock()


def _installed(service_name: str) -> _Sdk:
    global _sdk
    with _sdk_lock:
        if _sdk is None:
            _sdk = _Sdk(service_name)
        return _sdk


def otlp_endpoint(config: TelemetryConfig) -> str | None:
    return config.otlp_endpoint or os.environ.get(OTLP_ENDPOINT_ENV) or None


class Telemetry:
    """One server's telemetry: its span store and OTLP exporters, attached while it runs."""

    def __init__(self, config: TelemetryConfig, database: Database) -> None:
        self.config = config
        self._database = database
        self._processors: list[SpanProcessor] = []
        self._metric_exporter: MetricExporter | None = None
        self.local: SpanStoreExporter | None = None
        self._span_events = SpanEventHandler()
        self._otlp_logs: OtlpLogs | None = None

    def start(self) -> None:
        if not self.config.enabled:
            return
        sdk = _installed(self.config.service_name)
        owners = SpanOwners()
        max_age_s = self.config.retention_days * 86400
        self.local = SpanStoreExporter(SpanStore(self._database), owners, max_age_s, self.config.max_spans)
        self._processors = [
            OwnerProcessor(owners),
            BatchSpanProcessor(self.local, schedule_delay_millis=LOCAL_FLUSH_MS, max_export_batch_size=512),
        ]
        endpoint = otlp_endpoint(self.config)
        if endpoint:
            # Imported only when a collector is named: they pull in requests and protobuf.
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            base = endpoint.rstrip("/")
            self._processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
            self._metric_exporter = OTLPMetricExporter(endpoint=f"{base}/v1/metrics")
            sdk.metric_forwarder.target = self._metric_exporter
            self._otlp_logs = OtlpLogs(f"{base}/v1/logs")
            self._otlp_logs.attach()
            log.info("telemetry: exporting OTLP to %s", base)
        sdk.switchboard.attach(self._processors)
        sdk.sampler.ratio = TraceIdRatioBased(self.config.sample_ratio)
        set_capture_content(self.config.capture_content)
        logging.getLogger(PACKAGE_LOGGER).addHandler(self._span_events)
        self.local.trim()

    def flush(self, timeout_millis: int = 5000) -> bool:
        """Every span ended so far reaches the store and the collector, and the metrics the collector
        (tests and the CLI wait on it)."""
        flushed = all(processor.force_flush(timeout_millis) for processor in self._processors)
        if self._metric_exporter is not None and _sdk is not None:
            flushed = _flush_to_collector(_sdk, timeout_millis) and flushed
        if self._otlp_logs is not None:
            flushed = self._otlp_logs.flush(timeout_millis) and flushed
        return flushed

    def stop(self) -> None:
        if not self._processors or _sdk is None:
            return
        logging.getLogger(PACKAGE_LOGGER).removeHandler(self._span_events)
        if self._otlp_logs is not None:
            self._otlp_logs.detach()
            self._otlp_logs = None
        _sdk.switchboard.detach(self._processors)
        if not _sdk.switchboard.processors:
            _sdk.sampler.ratio = None
        if _sdk.metric_forwarder.target is self._metric_exporter and self._metric_exporter is not None:
            _flush_to_collector(_sdk, 5000)
            _sdk.metric_forwarder.target = None
        for processor in self._processors:
            processor.shutdown()
        self._processors = []
        set_capture_content(False)


def _flush_to_collector(sdk: _Sdk, timeout_millis: int) -> bool:
    # Only the OTLP reader: the meter provider's force_flush collects every reader, and each collection
    # the Prometheus reader is handed is queued until the next scrape, which then shows every family
    # once per queued collection (32 MB of /metrics seen after a test session's flushes).
    return sdk.periodic.force_flush(timeout_millis)


def prometheus_text() -> bytes:
    """The Prometheus text exposition of every metric (empty before any server started telemetry)."""
    from prometheus_client import REGISTRY, generate_latest

    return generate_latest(REGISTRY)
