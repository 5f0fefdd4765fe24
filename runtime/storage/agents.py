"""Agents, their sessions and turns (Llama Stack's Agents API), in SQLite: they outlive restarts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pocketstack.storage.sqlite import Database


@dataclass
class StoredSession:
    id: str
    agent_id: str
    name: str
    started_at: str
    transcript: list[dict[str, Any]]  # chat messages: what the next turn's model call continues from


@dataclass
class StoredTurn:
    turn: dict[str, Any]  # the Turn as served
    pending: dict[str, Any] | None  # a turn awaiting the client's tool results: what resuming needs


class AgentStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add_agent(self, agent_id: str, created_at: str, config: dict[str, Any]) -> None:
        await self._db.execute(
            "INSERT INTO agents (id, created_at, config) VALUES (?, ?, ?)", (agent_id, created_at, json.dumps(config))
        )

    async def agent(self, agent_id: str) -> tuple[str, dict[str, Any]] | None:
        rows = await self._db.fetch("SELECT created_at, config FROM agents WHERE id = ?", (agent_id,))
        return (rows[0]["created_at"], json.loads(rows[0]["config"])) if rows else None

    async def agents(self, start: int, limit: int) -> list[tuple[str, str, dict[str, Any]]]:
        rows = await self._db.fetch(
            "SELECT id, created_at, config FROM agents ORDER BY seq LIMIT ? OFFSET ?", (limit, start)
        )
        return [(row["id"], row["created_at"], json.loads(row["config"])) for row in rows]

    async def delete_agent(self, agent_id: str) -> bool:
        return bool(await self._db.fetch("DELETE FROM agents WHERE id = ? RETURNING id", (agent_id,)))

    async def add_session(self, session: StoredSession) -> None:
        await self._db.execute(
            "INSERT INTO agent_sessions (id, agent_id, name, started_at, transcript) VALUES (?, ?, ?, ?, ?)",
            (session.id, session.agent_id, session.name, session.started_at, json.dumps(session.transcript)),
        )

    async def session(self, agent_id: str, session_id: str) -> StoredSession | None:
        rows = await self._db.fetch(
            "SELECT name, started_at, transcript FROM agent_sessions WHERE id = ? AND agent_id = ?",
            (session_id, agent_id),
        )
        if not rows:
            return None
        row = rows[0]
        return StoredSession(session_id, agent_id, row["name"], row["started_at"], json.loads(row["transcript"]))

    async def sessions(self, agent_id: str, start: int, limit: int) -> list[StoredSession]:
        rows = await self._db.fetch(
            "SELECT id, name, started_at, transcript FROM agent_sessions WHERE agent_id = ? ORDER BY seq "
            "LIMIT ? OFFSET ?",
            (agent_id, limit, start),
        )
        return [StoredSession(r["id"], agent_id, r["name"], r["started_at"], json.loads(r["transcript"])) for r in rows]

    async def delete_session(self, agent_id: str, session_id: str) -> bool:
        rows = await self._db.fetch(
            "DELETE FROM agent_sessions WHERE id = ? AND agent_id = ? RETURNING id", (session_id, agent_id)
        )
        return bool(rows)

    async def turns(self, session_id: str) -> list[StoredTurn]:
        rows = await self._db.fetch(
            "SELECT turn, pending FROM agent_turns WHERE session_id = ? ORDER BY seq", (session_id,)
        )
        return [StoredTurn(json.loads(r["turn"]), json.loads(r["pending"]) if r["pending"] else None) for r in rows]

    async def turn(self, session_id: str, turn_id: str) -> StoredTurn | None:
        rows = await self._db.fetch(
            "SELECT turn, pending FROM agent_turns WHERE session_id = ? AND id = ?", (session_id, turn_id)
        )
        if not rows:
            return None
        return StoredTurn(json.loads(rows[0]["turn"]), json.loads(rows[0]["pending"]) if rows[0]["pending"] else None)

    async def save_turn(self, session: StoredSession, turn: StoredTurn) -> None:
        """The turn (new or resumed) and the session's transcript, in one transaction."""
        pending = json.dumps(turn.pending) if turn.pending is not None else None
        await self._db.transaction([
            ("INSERT INTO agent_turns (id, session_id, turn, pending) VALUES (?, ?, ?, ?) "
             "ON CONFLICT (id) DO UPDATE SET turn = excluded.turn, pending = excluded.pending",
             (turn.turn["turn_id"], session.id, json.dumps(turn.turn), pending)),
            ("UPDATE agent_sessions SET transcript = ? WHERE id = ?", (json.dumps(session.transcript), session.id)),
        ])  # fmt: skip
