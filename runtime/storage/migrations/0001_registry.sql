-- The resource registry: every registered resource, whatever its API, keyed by type and id.
CREATE TABLE resources (
    type TEXT NOT NULL,
    identifier TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    provider_resource_id TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('config', 'api', 'provider')),
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (type, identifier)
);
CREATE INDEX resources_by_provider ON resources (type, provider_id, provider_resource_id);
