"""Finished spans in SQLite (migration 0020): written by telemetry's span processor, read by the query API.

Writes come from the span processor's own thread in batches (one transaction each), so they are
blocking calls here; reads are async like every other store's. Retention drops whole traces, the
oldest first, by age and by count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pocketstack.storage.owners import Owner, owner_values
from pocketstack.storage.sqlite import Database


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
