-- Requests and model tokens per client and quota window (server.quota), counted with conditional upserts.
CREATE TABLE quota_usage (
    client TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client, window_start)
);
