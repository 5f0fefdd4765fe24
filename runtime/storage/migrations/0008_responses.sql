-- Stored responses (GET /v1/responses): the response, the input items it answered, and the chat
-- messages it ended with (what `previous_response_id` continues from).
CREATE TABLE responses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    context TEXT NOT NULL
);
CREATE INDEX responses_by_model ON responses (model, seq);
