-- Llama Stack's Agents: agents (their config as JSON), sessions (the chat transcript the next turn
-- continues from) and turns (the Turn as served, plus what a turn awaiting tool results resumes from).
CREATE TABLE agents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE TABLE agent_sessions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    started_at TEXT NOT NULL,
    transcript TEXT NOT NULL
);
CREATE TABLE agent_turns (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL REFERENCES agent_sessions (id) ON DELETE CASCADE,
    turn TEXT NOT NULL,
    pending TEXT
);
