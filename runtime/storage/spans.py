"""Finished spans in SQLite (migration 0020): written by telemetry's span processor, read by the query API.

Writes come from the span processor's own thread in batches (one transaction each), so they are
blocking calls here; reads are async like every other store's. Retention drops whole traces, the
oldest first, by age and by count.

A trace's roots are its spans without a parent, and those whose parent is not stored (a request
that came with a client's `traceparent` hangs under the client's span, which only the client has).
A trace is shown by its first root. Every read applies the request's `Visibility` to each span's
owner columns (a SQL clause under the default policy; a configured policy per row, in Python).
Attribute filters compare one JSON attribute each (`json_extract`); the ids, the roots and times
are indexed (migrations 0020, 0021).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pocketstack.errors import BadRequestError
from pocketstack.storage.owners import OWNER_COLUMNS, Owner, Visibility, owner_of, owner_values, restrict
from pocketstack.storage.sqlite import Database, Row, storable


@dataclass(frozen=True)
class SpanRecord:
    """One finished span, as the store keeps it (ids in lowercase hex, as W3C trace context writes them)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str  # server | internal | client | producer | consumer
    start_time: float  # Unix seconds
    end_time: float
    status: str  # ok | error | unset
    status_message: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[Mapping[str, Any]] = ()  # {"name", "timestamp", "attributes"}
    owner: Owner | None = None


_INSERT = (
    "INSERT OR IGNORE INTO spans (trace_id, span_id, parent_span_id, name, kind, start_time, end_time, status, "
    "status_message, attributes, events, owner_principal, owner_attributes) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SpanStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def add_spans_blocking(self, spans: Sequence[SpanRecord]) -> None:
        """Store a batch of finished spans in one transaction (a span stored twice is kept once)."""
        statements = []
        for span in spans:
            principal, attributes = owner_values(span.owner)
            statements.append(
                (
                    _INSERT,
                    (
                        span.trace_id,
                        span.span_id,
                        span.parent_span_id,
                        span.name,
                        span.kind,
                        span.start_time,
                        span.end_time,
                        span.status,
                        span.status_message,
                        json.dumps(dict(span.attributes), default=str),
                        json.dumps([dict(e) for e in span.events], default=str),
                        principal,
                        attributes,
                    ),
                )
            )
        if statements:
            self._db.transaction_blocking(statements)

    def trim_blocking(self, max_age_s: float, max_spans: int, now: float | None = None) -> int:
        """Drop the traces that started more than `max_age_s` ago, then the oldest traces until at most
        `max_spans` spans remain. Answers how many spans went."""
        cutoff = (time.time() if now is None else now) - max_age_s
        before = self._count_blocking()
        old = "SELECT trace_id FROM spans WHERE parent_span_id IS NULL AND start_time < ?"
        self._db.transaction_blocking(
            [
                (f"DELETE FROM spans WHERE trace_id IN ({old})", (cutoff,)),
                ("DELETE FROM spans WHERE start_time < ?", (cutoff,)),  # strays whose root never arrived
            ]
        )
        excess = self._count_blocking() - max_spans
        if excess > 0:
            # The oldest spans' traces, whole: a tree is never left without its root.
            oldest = "SELECT DISTINCT trace_id FROM (SELECT trace_id FROM spans ORDER BY seq LIMIT ?)"
            self._db.transaction_blocking([(f"DELETE FROM spans WHERE trace_id IN ({oldest})", (excess,))])
        return before - self._count_blocking()

    def _count_blocking(self) -> int:
        rows = self._db.transaction_blocking([("SELECT COUNT(*) FROM spans", ())])
        return int(rows[0][0])


@dataclass(frozen=True)
class AttributeFilter:
    """`attributes[key] <op> value` (Llama Stack's QueryCondition)."""

    key: str
    op: Literal["eq", "ne", "gt", "lt"]
    value: str | int | float | bool | None


_OPERATORS = {"eq": "=", "ne": "!=", "gt": ">", "lt": "<"}
# order_by fields of query_traces: the trace's columns (those of its first root).
_TRACE_ORDER = {"start_time": "start_time", "end_time": "end_time", "trace_id": "trace_id", "root_span_id": "span_id"}
_COLUMNS = (
    "seq, trace_id, span_id, parent_span_id, name, kind, start_time, end_time, status, status_message, "
    f"attributes, events, {OWNER_COLUMNS}"
)
# A span that starts its trace's tree: no parent, or a parent the store does not have.
_IS_ROOT = (
    "(s.parent_span_id IS NULL OR NOT EXISTS "
    "(SELECT 1 FROM spans p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id))"
)
SCAN_BATCH = 500


def attribute_path(key: str) -> str:
    """The JSON path of one attribute: OpenTelemetry's keys hold dots (`gen_ai.request.model`), quoted whole."""
    if '"' in key or "\\" in key:
        raise BadRequestError(f"attribute key {key!r} may not contain quotes or backslashes", param="key")
    if any(ord(char) < 0x20 or char == "\x7f" for char in key):  # SQLite's JSON paths end at a NUL
        raise BadRequestError(f"attribute key {key!r} may not contain a control character", param="key")
    return f'$."{key}"'


def _condition(condition: AttributeFilter, prefix: str) -> tuple[str, list[Any]]:
    column = f"json_extract({prefix}attributes, ?)"
    path = attribute_path(condition.key)
    value = condition.value
    if value is None:
        if condition.op not in ("eq", "ne"):
            raise BadRequestError(f"attribute {condition.key!r}: null compares only with eq or ne", param="op")
        return f"{column} IS {'NOT ' if condition.op == 'ne' else ''}NULL", [path]
    if not isinstance(value, str | int | float | bool):
        raise BadRequestError(
            f"attribute {condition.key!r}: compare with a string, number, boolean or null", param="value"
        )
    if isinstance(value, bool):
        value = int(value)  # json_extract reads JSON true/false as 1/0
    elif isinstance(value, int) and not storable(value):
        value = _bindable(value)
    return f"{column} {_OPERATORS[condition.op]} ?", [path, value]


def _bindable(number: float) -> float:
    """A number a request gave, as SQLite binds it: JSON integers have any size, SQLite's 64 bits at most
    (a REAL this far out compares with every stored time or count as the huge number did)."""
    return float(max(-_FAR, min(number, _FAR)))


_FAR = 2.0**64


def _record(row: Row) -> SpanRecord:
    return SpanRecord(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        name=row["name"],
        kind=row["kind"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        status=row["status"],
        status_message=row["status_message"],
        attributes=json.loads(row["attributes"]),
        events=json.loads(row["events"]),
        owner=owner_of(row),
    )


def tree_order(spans: Iterable[SpanRecord]) -> list[tuple[int, SpanRecord]]:
    """The spans of one trace as (depth, span), parents before their children, siblings by start time;
    each root (no parent among them) at depth 0."""
    ordered = sorted(spans, key=lambda span: (span.start_time, span.span_id))
    ids = {span.span_id for span in ordered}
    children: dict[str, list[SpanRecord]] = {}
    roots = []
    for span in ordered:
        if span.parent_span_id is not None and span.parent_span_id in ids:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    walked: list[tuple[int, SpanRecord]] = []
    stack = [(0, root) for root in reversed(roots)]
    while stack:
        depth, span = stack.pop()
        walked.append((depth, span))
        stack += [(depth + 1, child) for child in reversed(children.get(span.span_id, []))]
    return walked


class SpanReader:
    """The query API's reads, each limited to what `visible` lets the request see."""

    def __init__(self, database: Database, visible: Visibility | None) -> None:
        self._db = database
        self._visible = visible
        self._keep = visible.keep if visible is not None else None

    def _sees(self, row: Row) -> bool:
        return self._keep is None or self._keep(row["trace_id"], owner_of(row))

    def _where(self, clauses: list[str], params: list[Any], prefix: str = "s.") -> str:
        """The WHERE of `clauses` plus the visibility clause (whose values join `params`, in place)."""
        clauses = list(clauses)
        if self._keep is None:
            restrict(self._visible, clauses, params, prefix)
        return f"WHERE {' AND '.join(clauses)}" if clauses else ""

    async def _rows(self, sql_where: tuple[list[str], list[Any]], order: str = "s.start_time, s.seq") -> list[Row]:
        clauses, params = sql_where
        params = list(params)
        where = self._where(clauses, params)
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM spans s {where} ORDER BY {order}", params)
        return [row for row in rows if self._sees(row)]

    async def roots(
        self,
        filters: Sequence[AttributeFilter] = (),
        order_by: Sequence[str] = ("-start_time",),
        limit: int = 100,
        offset: int = 0,
    ) -> list[SpanRecord]:
        """The first root of each trace that has a span matching every filter, in `order_by` order."""
        clauses, params = [_IS_ROOT], []
        if filters:
            matching, matching_params = [], []
            for condition in filters:
                sql, values = _condition(condition, "m.")
                matching.append(sql)
                matching_params += values
            if self._keep is None:
                restrict(self._visible, matching, matching_params, "m.")
            clauses.append(f"s.trace_id IN (SELECT m.trace_id FROM spans m WHERE {' AND '.join(matching)})")
            params += matching_params
        order = []
        for field_name in order_by or ("-start_time",):
            column = _TRACE_ORDER.get(field_name.removeprefix("-"))
            if column is None:
                known = ", ".join(_TRACE_ORDER)
                raise BadRequestError(
                    f"cannot order traces by {field_name!r}: by {known} ('-' first: descending)", param="order_by"
                )
            order.append(f"s.{column} {'DESC' if field_name.startswith('-') else 'ASC'}")
        where = self._where(clauses, params)
        # Read in batches until enough traces: a trace with two roots, or rows a configured policy hides, are skipped.
        seen: set[str] = set()
        found: list[SpanRecord] = []
        start = 0
        while len(found) < offset + limit:
            rows = await self._db.fetch(
                f"SELECT {_COLUMNS} FROM spans s {where} ORDER BY {', '.join(order)}, s.seq LIMIT ? OFFSET ?",
                [*params, SCAN_BATCH, start],
            )
            for row in rows:
                if row["trace_id"] not in seen and self._sees(row):
                    seen.add(row["trace_id"])
                    found.append(_record(row))
            if len(rows) < SCAN_BATCH:
                break
            start += SCAN_BATCH
        return found[offset : offset + limit]

    async def root_of(self, trace_id: str) -> SpanRecord | None:
        """The trace's first root, if the request may see it."""
        rows = await self._rows(([_IS_ROOT, "s.trace_id = ?"], [trace_id]))
        return _record(rows[0]) if rows else None

    async def trace_spans(self, trace_ids: Sequence[str]) -> dict[str, list[SpanRecord]]:
        """Every visible span of each trace, by trace id (oldest first)."""
        if not trace_ids:
            return {}
        marks = ", ".join("?" for _ in trace_ids)
        spans: dict[str, list[SpanRecord]] = {trace_id: [] for trace_id in trace_ids}
        for row in await self._rows(([f"s.trace_id IN ({marks})"], list(trace_ids))):
            spans[row["trace_id"]].append(_record(row))
        return spans

    async def span(self, span_id: str, trace_id: str | None = None) -> SpanRecord | None:
        """A span by its id (in `trace_id`, when given; else the newest with that id)."""
        clauses, params = ["s.span_id = ?"], [span_id]
        if trace_id is not None:
            clauses.append("s.trace_id = ?")
            params.append(trace_id)
        rows = await self._rows((clauses, params), order="s.start_time DESC, s.seq DESC")
        return _record(rows[0]) if rows else None

    async def subtree(self, top: SpanRecord, max_depth: int | None = None) -> list[tuple[int, SpanRecord]]:
        """`top` and its descendants as (depth, span), `top` at depth 1, down to `max_depth`."""
        spans = (await self.trace_spans([top.trace_id]))[top.trace_id]
        walked: list[tuple[int, SpanRecord]] = []
        top_depth: int | None = None
        for depth, span in tree_order(spans):
            if top_depth is None:
                if span.span_id == top.span_id:
                    top_depth = depth
                else:
                    continue
            elif depth <= top_depth:
                break  # past `top`'s descendants
            if max_depth is None or depth - top_depth < max_depth:
                walked.append((depth - top_depth + 1, span))
        return walked

    async def metric_spans(self, start: float, end: float, having: Sequence[str]) -> list[SpanRecord]:
        """The visible spans that started within [start, end] and hold one of the attributes `having`."""
        present = " OR ".join("json_extract(s.attributes, ?) IS NOT NULL" for _ in having)
        clauses = ["s.start_time >= ?", "s.start_time <= ?", f"({present})"]
        rows = await self._rows((clauses, [_bindable(start), _bindable(end), *(attribute_path(key) for key in having)]))
        return [_record(row) for row in rows]

    async def logged_metrics(self, name: str, start: float, end: float) -> list[tuple[SpanRecord, Mapping[str, Any]]]:
        """Metric events `log_event` attached to visible spans (event name `metric.<name>`) at a time within
        [start, end], each with its span."""
        event_name = f"metric.{name}"
        clauses = [
            "s.end_time >= ?",
            "s.start_time <= ?",
            "EXISTS (SELECT 1 FROM json_each(s.events) e WHERE json_extract(e.value, '$.name') = ?)",
        ]
        found = []
        for row in await self._rows((clauses, [_bindable(start), _bindable(end), event_name])):
            span = _record(row)
            for event in span.events:
                if event.get("name") == event_name and start <= float(event.get("timestamp", 0)) <= end:
                    found.append((span, event))
        return found


OPEN = "open"  # the status of a span a client started (log_event span_start) and has not ended yet


class SpanWriter:
    """Spans and events a client pushes through log_event (the server's own come through SpanStore)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def open_span(self, span: SpanRecord) -> None:
        """Store a started span (status `open`, no duration yet); a span id the trace already has is kept as it was."""
        principal, attributes = owner_values(span.owner)
        row = (
            span.trace_id, span.span_id, span.parent_span_id, span.name, span.kind, span.start_time, span.start_time,
            OPEN, None, json.dumps(dict(span.attributes), default=str), json.dumps([dict(e) for e in span.events]),
            principal, attributes,
        )  # fmt: skip
        await self._db.execute(_INSERT, row)

    async def end_span(
        self, trace_id: str, span_id: str, end_time: float, status: str, attributes: Mapping[str, Any]
    ) -> bool:
        """End an open span: its end time and status, `attributes` added to its own. False: no such open span."""
        rows = await self._db.transaction(
            [
                (
                    "UPDATE spans SET end_time = MAX(start_time, ?), status = ?, "
                    "attributes = json_patch(attributes, ?) "
                    "WHERE trace_id = ? AND span_id = ? AND status = ? RETURNING seq",
                    (end_time, status, json.dumps(dict(attributes), default=str), trace_id, span_id, OPEN),
                )
            ]
        )
        return bool(rows)

    async def add_event(self, trace_id: str, span_id: str, event: Mapping[str, Any]) -> bool:
        """Add an event to a stored span; False when there is none."""
        rows = await self._db.transaction(
            [
                (
                    "UPDATE spans SET events = json_insert(events, '$[#]', json(?)) "
                    "WHERE trace_id = ? AND span_id = ? RETURNING seq",
                    (json.dumps(dict(event), default=str), trace_id, span_id),
                )
            ]
        )
        return bool(rows)
