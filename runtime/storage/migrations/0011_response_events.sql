-- The events of background responses that were streamed: a client that left (or another one)
-- reads them again with GET /v1/responses/{id}?stream=true&starting_after=N.
CREATE TABLE response_events (
    response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    sequence_number INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (response_id, sequence_number)
);
