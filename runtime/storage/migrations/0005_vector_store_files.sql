-- Files attached to vector stores and their ingestion state; in_progress rows resume at start.
CREATE TABLE vector_store_files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id TEXT NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
    file_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attributes TEXT NOT NULL,
    chunking_strategy TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    usage_bytes INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (store_id, file_id)
);
CREATE INDEX vector_store_files_by_status ON vector_store_files (status);
