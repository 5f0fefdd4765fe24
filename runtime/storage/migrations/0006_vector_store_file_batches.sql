-- File batches of vector stores: which files each batch attached, and whether it was cancelled.
-- A batch's state is derived from its files' rows in vector_store_files.
CREATE TABLE vector_store_file_batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    store_id TEXT NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE vector_store_file_batch_files (
    batch_id TEXT NOT NULL REFERENCES vector_store_file_batches (id) ON DELETE CASCADE,
    file_id TEXT NOT NULL,
    PRIMARY KEY (batch_id, file_id)
);
