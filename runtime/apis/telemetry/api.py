"""Telemetry (Llama Stack 0.2's API, gone from HTTP in 0.3): the spans the server recorded, read back.

The server's own spans reach the store through runtime/telemetry/ (the span processor); this module
only reads them, and writes what clients push with log_event. Each user sees the traces of their own
requests (spans are owned like every record: security/access.py, kind `sql_record::spans`): another
user's trace or span id is a 404, as an unknown one is.

As Llama Stack 0.2 (providers/utils/telemetry/sqlite_trace_store.py, dataset_mixin.py), with these
differences:
- a trace matches attribute filters when one of its spans satisfies all of them (Llama Stack's join
  did the same); attribute keys are whole keys (`gen_ai.request.model`; Llama Stack's `$.key` path split
  them at the dots); query_traces defaults to newest first;
- `get_trace` and `list_traces` (GET /v1/telemetry/traces, PocketStack's own) carry the root span's
  name, status and duration and the trace's spans; `unset` OpenTelemetry statuses read as `ok`;
- query_spans and save_spans_to_dataset read every matching trace (Llama Stack: the first 100); an
  empty `attributes_to_return` returns every span with all its attributes (Llama Stack: none), and the
  spans keep their own trace id (Llama Stack wrote the root span's id there);
- log_event: `span_start` stores the span at once (status `open`, shown without an end time until its
  `span_end`), owned by the caller; an unstructured log or a metric becomes an event of the span it
  names (`unstructured_log` with message and severity; `metric.<name>` with value and unit, as Llama
  Stack names them), or, when the caller has no such span, a span of its own with that id holding the
  event (Llama Stack dropped it), so the query API shows it; `ttl_seconds` is accepted and the store's
  retention applies. `span_end` on a span the caller cannot see is a 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pocketstack._generated import models, protocols
from pocketstack.apis.telemetry.metrics import query_metrics
from pocketstack.core.stack import Stack
from pocketstack.errors import ResourceNotFoundError
from pocketstack.security.access import TRACE
from pocketstack.storage.spans import OPEN, AttributeFilter, SpanReader, SpanRecord, SpanStore, SpanWriter, tree_order
from pocketstack.wire.fields import given

# query_spans and save_spans_to_dataset read at most this many traces (the newest).
MAX_TRACES = 10_000


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


def _status(span: SpanRecord) -> models.SpanStatus | None:
    if span.status == OPEN:
        return None
    return models.SpanStatus.error if span.status == "error" else models.SpanStatus.ok


def _attributes(span: SpanRecord, keep: Sequence[str] | None) -> dict[str, Any]:
    """The span's attributes, or only those named (a missing one as null, as Llama Stack's json_object gives)."""
    if not keep:
        return dict(span.attributes)
    return {key: span.attributes.get(key) for key in keep}


def _span_fields(span: SpanRecord, keep: Sequence[str] | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "span_id": span.span_id,
        "trace_id": span.trace_id,
        "name": span.name,
        "start_time": _time(span.start_time),
        "attributes": _attributes(span, keep),
    }
    if span.parent_span_id is not None:
        fields["parent_span_id"] = span.parent_span_id
    if span.status != OPEN:
        fields["end_time"] = _time(span.end_time)
    return fields


def span_with_status(span: SpanRecord, keep: Sequence[str] | None = None) -> models.SpanWithStatus:
    status = _status(span)
    extra = {} if status is None else {"status": status}
    return models.SpanWithStatus(**_span_fields(span, keep), **extra)


def trace_of(root: SpanRecord, spans: Iterable[SpanRecord] | None = None) -> models.Trace:
    fields: dict[str, Any] = {
        "trace_id": root.trace_id,
        "root_span_id": root.span_id,
        "start_time": _time(root.start_time),
        "name": root.name,
    }
    status = _status(root)
    if status is not None:
        fields |= {"end_time": _time(root.end_time), "status": status}
        fields["duration_ms"] = round((root.end_time - root.start_time) * 1000, 3)
    if spans is not None:
        fields["spans"] = [span_with_status(span) for _, span in tree_order(spans)]
    return models.Trace(**fields)


def _filters(conditions: Iterable[models.QueryCondition]) -> list[AttributeFilter]:
    return [AttributeFilter(c.key, c.op.value, c.value) for c in conditions]


class TelemetryApi(protocols.Telemetry):
    def __init__(self, stack: Stack, datasets: protocols.Datasets, dataset_io: protocols.DatasetIO) -> None:
        self.stack = stack
        self.access = stack.access
        self.datasets = datasets
        self.dataset_io = dataset_io

    @property
    def reader(self) -> SpanReader:
        """The store as the request's user sees it."""
        return SpanReader(self.stack.database, self.access.visibility(TRACE))

    async def _traces(self, roots: Sequence[SpanRecord]) -> list[models.Trace]:
        spans = await self.reader.trace_spans([root.trace_id for root in roots])
        return [trace_of(root, spans[root.trace_id]) for root in roots]

    async def list_traces(self, request: models.ListTracesRequest) -> models.QueryTracesResponse:
        roots = await self.reader.roots(limit=request.limit, offset=request.offset)
        return models.QueryTracesResponse(data=await self._traces(roots))

    async def query_traces(self, request: models.QueryTracesRequest) -> models.QueryTracesResponse:
        roots = await self.reader.roots(
            _filters(given(request.attribute_filters, [])),
            given(request.order_by, None) or ("-start_time",),
            limit=request.limit,
            offset=request.offset,
        )
        return models.QueryTracesResponse(data=[trace_of(root) for root in roots])

    async def get_trace(self, request: models.GetTraceRequest) -> models.Trace:
        root = await self.reader.root_of(request.trace_id)
        if root is None:
            raise ResourceNotFoundError("trace", request.trace_id)
        return (await self._traces([root]))[0]

    async def get_span(self, request: models.GetSpanRequest) -> models.Span:
        span = await self.reader.span(request.span_id, request.trace_id)
        if span is None:
            raise ResourceNotFoundError("span", request.span_id, parent=("trace", request.trace_id))
        return models.Span(**_span_fields(span))

    async def get_span_tree(self, request: models.GetSpanTreeRequest) -> models.QuerySpanTreeResponse:
        reader = self.reader
        top = await reader.span(request.span_id)
        if top is None:
            raise ResourceNotFoundError("span", request.span_id)
        keep = given(request.attributes_to_return, None)
        tree = await reader.subtree(top, given(request.max_depth))
        ordered = sorted(tree, key=lambda item: (item[0], item[1].start_time))  # shallowest first, as Llama Stack
        return models.QuerySpanTreeResponse(data={span.span_id: span_with_status(span, keep) for _, span in ordered})

    async def _matching_spans(
        self, conditions: Iterable[models.QueryCondition], attributes: Sequence[str], max_depth: int | None
    ) -> list[SpanRecord]:
        """Of the traces the filters select, the spans to `max_depth` that have every attribute named."""
        reader = self.reader
        roots = await reader.roots(_filters(conditions), limit=MAX_TRACES)
        found = []
        for root in roots:
            for _, span in await reader.subtree(root, max_depth):
                if all(span.attributes.get(key) is not None for key in attributes):
                    found.append(span)
        return found

    async def query_spans(self, request: models.QuerySpansRequest) -> models.QuerySpansResponse:
        keep = request.attributes_to_return
        spans = await self._matching_spans(request.attribute_filters, keep, given(request.max_depth))
        return models.QuerySpansResponse(data=[models.Span(**_span_fields(span, keep)) for span in spans])

    async def save_spans_to_dataset(self, request: models.SaveSpansToDatasetRequest) -> None:
        # The dataset first: an unknown (or hidden) one is a 404 even when no span matches.
        await self.datasets.get_dataset(models.GetDatasetRequest(dataset_id=request.dataset_id))
        keep = request.attributes_to_save
        spans = await self._matching_spans(request.attribute_filters, keep, given(request.max_depth))
        rows: list[dict[str, Any]] = [
            {
                "trace_id": span.trace_id,
                "span_id": span.span_id,
                "parent_span_id": span.parent_span_id,
                "name": span.name,
                "start_time": _time(span.start_time).isoformat(),
                "end_time": None if span.status == OPEN else _time(span.end_time).isoformat(),
                **{key: span.attributes.get(key) for key in keep},
            }
            for span in spans
        ]
        if rows:
            await self.dataset_io.append_rows(models.AppendRowsRequest(dataset_id=request.dataset_id, rows=rows))

    async def query_metrics(self, request: models.QueryMetricsRequest) -> models.QueryMetricsResponse:
        return await query_metrics(self.reader, request)

    async def log_event(self, request: models.LogEventRequest) -> None:
        event = request.event
        writer = SpanWriter(self.stack.database)
        attributes = dict(given(event.attributes, {}))
        at = _seconds(event.timestamp)
        if isinstance(event, models.StructuredLogEvent):
            payload = event.payload
            if isinstance(payload, models.SpanStartPayload):
                parent = given(payload.parent_span_id)
                span = SpanRecord(
                    event.trace_id, event.span_id, parent, payload.name, "internal", at, at, OPEN,
                    attributes=attributes, owner=self.access.owner(),
                )  # fmt: skip
                await writer.open_span(span)
                return
            if await self.reader.span(event.span_id, event.trace_id) is None:
                raise ResourceNotFoundError("span", event.span_id, parent=("trace", event.trace_id))
            await writer.end_span(event.trace_id, event.span_id, at, payload.status.value, attributes)
            return
        if isinstance(event, models.MetricEvent):
            name = f"metric.{event.metric}"
            attributes = {"value": event.value, "unit": event.unit, **attributes}
        else:
            name = event.type
            attributes = {"message": event.message, "severity": event.severity.value, **attributes}
        recorded = {"name": name, "timestamp": at, "attributes": attributes}
        if await self.reader.span(event.span_id, event.trace_id) is not None:
            await writer.add_event(event.trace_id, event.span_id, recorded)
            return
        own = SpanRecord(
            event.trace_id, event.span_id, None, name, "internal", at, at, "ok",
            attributes=attributes, events=[recorded], owner=self.access.owner(),
        )  # fmt: skip
        await asyncio.to_thread(SpanStore(self.stack.database).add_spans_blocking, [own])
