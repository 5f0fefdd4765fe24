-- Prompts (issue 19): a stored template and its versions.
-- `latest_version` is what an update must name (compare-and-set: the update that finds
-- it unchanged wins, the others get a 409); `default_version` is what a get without a version,
-- the list and a response without one use. Versions follow their prompt (deleted with it).
CREATE TABLE prompts (
    prompt_id TEXT PRIMARY KEY,
    latest_version INTEGER NOT NULL,
    default_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    owner_principal TEXT NOT NULL DEFAULT '',
    owner_attributes TEXT
);
CREATE TABLE prompt_versions (
    prompt_id TEXT NOT NULL REFERENCES prompts (prompt_id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    variables TEXT NOT NULL,  -- JSON list of names
    created_at INTEGER NOT NULL,
    PRIMARY KEY (prompt_id, version)
);
CREATE INDEX prompts_by_owner ON prompts (owner_principal);
