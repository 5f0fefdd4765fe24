-- Static API keys (server.auth provider_config type api_keys): only a SHA-256 of each key is kept.
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    principal TEXT NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}',
    name TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
