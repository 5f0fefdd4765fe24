-- Telemetry (issue 20): finished spans, written in batches by the span processor of
-- runtime/telemetry/. Times are Unix seconds; attributes and events are JSON. A span's owner is the
-- user of the request (or job) it belongs to, so the query API shows each user their own traces.
CREATE TABLE spans (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    owner_principal TEXT NOT NULL DEFAULT '',
    owner_attributes TEXT,
    UNIQUE (trace_id, span_id)
);
CREATE INDEX spans_by_start ON spans (start_time);
CREATE INDEX spans_by_trace ON spans (trace_id);
CREATE INDEX spans_roots ON spans (start_time) WHERE parent_span_id IS NULL;
