-- Owners (issue 17): the principal that created each resource ('' = unowned: declared by the run
-- config, or created while the server ran without authentication) and its attributes then (JSON).
-- Children follow their parent (a vector store's files and batches, a conversation's items, a
-- response's events, a session's turns); an agent's sessions have their own owner.
ALTER TABLE resources ADD COLUMN owner_principal TEXT NOT NULL DEFAULT '';
ALTER TABLE resources ADD COLUMN owner_attributes TEXT;
ALTER TABLE files ADD COLUMN owner_principal TEXT NOT NULL DEFAULT '';
ALTER TABLE files ADD COLUMN owner_attributes TEXT;
ALTER TABLE vector_stores ADD COLUMN owner_principal TEXT NOT NULL DEFAULT '';
ALTER TABLE vector_stores ADD COLUMN owner_attributes TEXT;
ALTER TABLE responses ADD COLUMN owner_principal TEXT NOT NULL DEFAULT '';
ALTER TABLE responses ADD COLUMN owner_attributes TEXT;
ALTER TABLE conversations ADD COLUMN owner_principal TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN owner_attributes TEXT;
ALTER TABLE chat_completions ADD COLUMN owner_principal TEXT NOT NULL DEFAULT '';
ALTER TABLE chat_completions ADD COLUMN owner_attributes TEXT;
ALTER TABLE agents ADD COLUMN owner_principal TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN owner_attributes TEXT;
ALTER TABLE agent_sessions ADD COLUMN owner_principal TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_sessions ADD COLUMN owner_attributes TEXT;
CREATE INDEX files_by_owner ON files (owner_principal, seq);
CREATE INDEX vector_stores_by_owner ON vector_stores (owner_principal, seq);
CREATE INDEX responses_by_owner ON responses (owner_principal, seq);
CREATE INDEX conversations_by_owner ON conversations (owner_principal, seq);
CREATE INDEX chat_completions_by_owner ON chat_completions (owner_principal, seq);
CREATE INDEX agents_by_owner ON agents (owner_principal, seq);
CREATE INDEX agent_sessions_by_owner ON agent_sessions (owner_principal, seq);
