"""The spans a test's server recorded, read straight from its span store (the query API is tested apart)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pocketstack.app import STACK


@dataclass(frozen=True)
class StoredSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    status: str
    duration_s: float
    attributes: dict[str, Any]
    events: list[dict[str, Any]]


async def stored_spans(app: web.Application) -> list[StoredSpan]:
    """Every span recorded so far (flushed first), oldest first."""
    stack = app[STACK]
    assert stack.telemetry is not None, "telemetry is off, or the server has not started"
    await asyncio.to_thread(stack.telemetry.flush)
    rows = await stack.database.fetch(
        "SELECT trace_id, span_id, parent_span_id, name, kind, status, start_time, end_time, attributes, events "
        "FROM spans ORDER BY start_time"
    )
    return [
        StoredSpan(
            trace_id=row["trace_id"],
            span_id=row["span_id"],
            parent_span_id=row["parent_span_id"],
            name=row["name"],
            kind=row["kind"],
            status=row["status"],
            duration_s=row["end_time"] - row["start_time"],
            attributes=json.loads(row["attributes"]),
            events=json.loads(row["events"]),
        )
        for row in rows
    ]


def children_of(spans: list[StoredSpan], parent: StoredSpan) -> list[StoredSpan]:
    return [span for span in spans if span.parent_span_id == parent.span_id and span.trace_id == parent.trace_id]
