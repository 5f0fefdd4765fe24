"""Log records beside the traces: as events on the span of the request that logged them, and to a collector.

Offline, a warning or an error logged while a request is served is kept as a `log` event on that
request's current span, so the local store (and `pocketstack traces`) shows it in place. With an
OTLP endpoint, OpenTelemetry's logging handler sends the records too, with their trace and span
ids, so a collector links them to the traces.
"""

from __future__ import annotations

import logging

from opentelemetry import trace

PACKAGE_LOGGER = "pocketstack"


class SpanEventHandler(logging.Handler):
    """Adds each record (WARNING and above by default) as a `log` event on the current span, if it records."""

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)

    def emit(self, record: logging.LogRecord) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: keep the raw one
            message = str(record.msg)
        attributes = {
            "log.severity": record.levelname,
            "log.message": message,
            "code.namespace": record.name,
        }
        if record.exc_info and record.exc_info[1] is not None:
            attributes["exception.type"] = type(record.exc_info[1]).__name__
        span.add_event("log", attributes)


class OtlpLogs:
    """OpenTelemetry's logging handler on the package's logger, exporting to `endpoint` while attached."""

    def __init__(self, endpoint: str, level: int = logging.INFO) -> None:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        self.provider = LoggerProvider(resource=Resource.create({"service.name": "pocketstack"}))
        self.provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint)))
        self.handler = LoggingHandler(level=level, logger_provider=self.provider)

    def attach(self) -> None:
        logging.getLogger(PACKAGE_LOGGER).addHandler(self.handler)

    def flush(self, timeout_millis: int) -> bool:
        return bool(self.provider.force_flush(timeout_millis))

    def detach(self) -> None:
        logging.getLogger(PACKAGE_LOGGER).removeHandler(self.handler)
        self.provider.shutdown()  # type: ignore[no-untyped-call]
