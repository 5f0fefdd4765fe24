-- Stored chat completions (GET /v1/chat/completions): the answer, what it answered, who served it.
CREATE TABLE chat_completions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    model TEXT NOT NULL,
    served_by TEXT NOT NULL,
    completion TEXT NOT NULL,
    input_messages TEXT NOT NULL
);
CREATE INDEX chat_completions_by_model ON chat_completions (model, seq);
