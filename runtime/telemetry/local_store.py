"""Finished spans into the SQLite span store, in batches, off the event loop, with retention applied.

The SDK's BatchSpanProcessor queues ended spans and hands them to `SpanStoreExporter` on its own
thread. Each span's owner is the user of the request it belongs to: `OwnerProcessor` notes it
when a span of the trace starts with a user known (the server span starts before authentication
has run, its children after), and the exporter writes it on every span of that trace.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from threading import Lock

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from pocketstack.security.principal import User, current_user
from pocketstack.storage.owners import Owner
from pocketstack.storage.spans import SpanRecord, SpanStore

log = logging.getLogger(__name__)

TRIM_EVERY_S = 60.0
_KINDS = {
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.INTERNAL: "internal",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
_STATUSES = {StatusCode.OK: "ok", StatusCode.ERROR: "error", StatusCode.UNSET: "unset"}


class TraceOwners:
    """trace id -> the user its spans belong to; bounded (the oldest traces are forgotten first)."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._owners: OrderedDict[int, User] = OrderedDict()
        self._capacity = capacity
        self._lock = Lock()

    def note(self, trace_id: int, user: User) -> None:
        with self._lock:
            if trace_id in self._owners:
                return
            self._owners[trace_id] = user
            if len(self._owners) > self._capacity:
                self._owners.popitem(last=False)

    def owner(self, trace_id: int) -> Owner | None:
        with self._lock:
            user = self._owners.get(trace_id)
        return None if user is None else Owner(user.principal, user.attributes)


class OwnerProcessor(SpanProcessor):
    """Notes the user of each trace as its spans start (the request context carries it)."""

    def __init__(self, owners: TraceOwners) -> None:
        self._owners = owners

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        user = current_user()
        if user is not None:
            self._owners.note(span.context.trace_id, user)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def to_record(span: ReadableSpan, owner: Owner | None) -> SpanRecord:
    context = span.context
    assert context is not None
    events = [
        {"name": event.name, "timestamp": event.timestamp / 1e9, "attributes": dict(event.attributes or {})}
        for event in span.events
    ]
    return SpanRecord(
        trace_id=_hex(context.trace_id, 32),
        span_id=_hex(context.span_id, 16),
        parent_span_id=None if span.parent is None else _hex(span.parent.span_id, 16),
        name=span.name,
        kind=_KINDS.get(span.kind, "internal"),
        start_time=(span.start_time or 0) / 1e9,
        end_time=(span.end_time or span.start_time or 0) / 1e9,
        status=_STATUSES.get(span.status.status_code, "unset"),
        status_message=span.status.description,
        attributes=dict(span.attributes or {}),
        events=events,
        owner=owner,
    )


class SpanStoreExporter(SpanExporter):
    """Writes each batch in one transaction; every minute, drops what retention says is too old or too much."""

    def __init__(self, store: SpanStore, owners: TraceOwners, max_age_s: float, max_spans: int) -> None:
        self._store = store
        self._owners = owners
        self._max_age_s = max_age_s
        self._max_spans = max_spans
        self._last_trim = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            records = [to_record(span, self._owners.owner(span.context.trace_id)) for span in spans if span.context]
            self._store.add_spans_blocking(records)
            if time.monotonic() - self._last_trim > TRIM_EVERY_S:
                self.trim()
        except Exception:  # a full disk or a closed database must not break requests: the spans are lost
            log.warning("telemetry: %d spans could not be stored", len(spans), exc_info=True)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def trim(self) -> None:
        self._last_trim = time.monotonic()
        dropped = self._store.trim_blocking(self._max_age_s, self._max_spans)
        if dropped:
            log.debug("telemetry: retention dropped %d spans", dropped)

    def shutdown(self) -> None:
        pass
