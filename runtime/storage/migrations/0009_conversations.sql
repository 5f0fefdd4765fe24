-- Conversations (OpenAI's): their metadata, and their items in order (messages, function calls and
-- outputs, as JSON). Responses read a conversation's items before answering and append to them.
CREATE TABLE conversations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE conversation_items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    item TEXT NOT NULL,
    UNIQUE (conversation_id, id)
);
