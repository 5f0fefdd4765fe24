"""Finished spans into the SQLite span store, in batches, off the event loop, with retention applied.

The SDK's BatchSpanProcessor queues ended spans and hands them to `SpanStoreExporter` on its own
thread. Each span's owner is the user of the request (or job) it belongs to: `OwnerProcessor`
notes it as spans start and end (`SpanOwners` says how), and the exporter writes it on the span.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from threading import Lock
from typing import TypeVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from pocketstack.security.principal import User, current_user
from pocketstack.storage.owners import Owner
from pocketstack.storage.spans import SpanRecord, SpanStore

log = logging.getLogger(__name__)

V = TypeVar("V")
TRIM_EVERY_S = 60.0
_KINDS = {
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.INTERNAL: "internal",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
_STATUSES = {StatusCode.OK: "ok", StatusCode.ERROR: "error", StatusCode.UNSET: "unset"}


class _Bounded(OrderedDict[int, V]):
    """A dict that forgets its oldest entries past `capacity` (spans that never end must not leak)."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def put(self, key: int, value: V) -> None:
        self[key] = value
        if len(self) > self.capacity:
            self.popitem(last=False)


class SpanOwners:
    """Which user each span belongs to: the user of its local root (the request's server span, or a
    background job's own root span), whoever's spans ran under it first.

    Owners are kept per local root, never per trace id: a trace id arrives from the client in
    `traceparent`, so one user could send another's, and their spans must not be filed together.
    The server span starts before authentication has run; the spans below it start after, with
    the user known, and their root's owner is noted then.
    """

    def __init__(self, capacity: int = 50_000) -> None:
        self._root_of: _Bounded[int] = _Bounded(capacity)  # running span -> its local root
        self._root_owner: _Bounded[User] = _Bounded(capacity)  # local root -> its user
        self._ended: _Bounded[User] = _Bounded(capacity)  # ended span, not yet exported -> its user
        self._lock = Lock()

    def started(self, span_id: int, parent: SpanContext | None, user: User | None) -> None:
        with self._lock:
            local_parent = parent is not None and not parent.is_remote
            root = self._root_of.get(parent.span_id, parent.span_id) if parent and local_parent else span_id
            self._root_of.put(span_id, root)
            if user is not None and root not in self._root_owner:
                self._root_owner.put(root, user)

    def ended(self, span_id: int) -> None:
        with self._lock:
            root = self._root_of.pop(span_id, span_id)
            user = self._root_owner.get(root)
            if user is not None:
                self._ended.put(span_id, user)

    def take(self, span_id: int) -> Owner | None:
        """The owner of an ended span, once (the exporter's call)."""
        with self._lock:
            user = self._ended.pop(span_id, None)
        return None if user is None else Owner(user.principal, user.attributes)


class OwnerProcessor(SpanProcessor):
    """Notes each span's user as it starts and ends (the request context carries the user)."""

    def __init__(self, owners: SpanOwners) -> None:
        self._owners = owners

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._owners.started(span.context.span_id, span.parent, current_user())

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None:
            self._owners.ended(span.context.span_id)

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

    def __init__(self, store: SpanStore, owners: SpanOwners, max_age_s: float, max_spans: int) -> None:
        self._store = store
        self._owners = owners
        self._max_age_s = max_age_s
        self._max_spans = max_spans
        self._last_trim = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            records = [to_record(span, self._owners.take(span.context.span_id)) for span in spans if span.context]
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
