-- Batches (issue 19): OpenAI's Batch object as JSON in `record` (status mirrored for the restart
-- query), and one row per finished request line in batch_results, written as each line finishes.
-- A restarted batch skips the lines that have a row, and the output and error files are written
-- from these rows at finalization, so no line runs twice and no output line is duplicated.
CREATE TABLE batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    owner_principal TEXT NOT NULL DEFAULT '',
    owner_attributes TEXT
);
CREATE INDEX batches_by_status ON batches (status);
CREATE TABLE batch_results (
    batch_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    succeeded INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    -- Last: a line's answer (an embedding is kilobytes) spills into overflow pages, which the running
    -- tally, summing the columns before it after every line, then never reads.
    output TEXT NOT NULL,
    PRIMARY KEY (batch_id, line)
);
