-- Where a vector store comes from: 'api' (created by a request) or 'config' (registered_resources).
ALTER TABLE vector_stores ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
