-- The Telemetry query API finds a span by its id alone (get_span_tree, Llama Stack's path names no
-- trace): 0020's UNIQUE (trace_id, span_id) cannot serve that lookup.
CREATE INDEX spans_by_span ON spans (span_id);
