"""Agents, their sessions and turns (Llama Stack's Agents API), in SQLite: they outlive restarts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pocketstack.storage.owners import OWNER_COLUMNS, Owner, Visibility, owner_of, owner_values, restrict
from pocketstack.storage.sqlite import Database, Row, bounded


@dataclass
class StoredSession:
    id: str
    agent_id: str
    name: str
    started_at: str
    transcript: list[dict[str, Any]]  # chat messages: what the next turn's model call continues from
    owner: Owner | None = None  # a session has its own owner (an agent may be shared); its turns follow it


@dataclass(frozen=True)
class StoredAgent:
    id: str
    created_at: str
    config: dict[str, Any]
    owner: Owner | None = None


@dataclass
class StoredTurn:
    turn: dict[str, Any]  # the Turn as served
    pending: dict[str, Any] | None  # a turn awaiting the client's tool results: what resuming needs


class AgentStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add_agent(self, agent: StoredAgent) -> None:
        await self._db.execute(
            f"INSERT INTO agents (id, created_at, config, {OWNER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (agent.id, agent.created_at, json.dumps(agent.config), *owner_values(agent.owner)),
        )

    async def agent(self, agent_id: str) -> StoredAgent | None:
        rows = await self._db.fetch(
            f"SELECT id, created_at, config, {OWNER_COLUMNS} FROM agents WHERE id = ?", (agent_id,)
        )
        return _agent(rows[0]) if rows else None

    async def agents(self, start: int, limit: int, visible: Visibility | None = None) -> list[StoredAgent]:
        """A page by offset of the agents `visible` lets the request see."""
        found = await _visible_page(self._db, "agents", "id, created_at, config", [], [], start, limit, visible)
        return [_agent(row) for row in found]

    async def delete_agent(self, agent_id: str) -> bool:
        return bool(await self._db.fetch("DELETE FROM agents WHERE id = ? RETURNING id", (agent_id,)))

    async def add_session(self, session: StoredSession) -> None:
        await self._db.execute(
            f"INSERT INTO agent_sessions (id, agent_id, name, started_at, transcript, {OWNER_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session.id, session.agent_id, session.name, session.started_at, json.dumps(session.transcript),
             *owner_values(session.owner)),
        )  # fmt: skip

    async def session(self, agent_id: str, session_id: str) -> StoredSession | None:
        rows = await self._db.fetch(
            f"SELECT {_SESSION_COLUMNS}, {OWNER_COLUMNS} FROM agent_sessions WHERE id = ? AND agent_id = ?",
            (session_id, agent_id),
        )
        return _session(rows[0]) if rows else None

    async def sessions(
        self, agent_id: str, start: int, limit: int, visible: Visibility | None = None
    ) -> list[StoredSession]:
        found = await _visible_page(
            self._db, "agent_sessions", _SESSION_COLUMNS, ["agent_id = ?"], [agent_id], start, limit, visible
        )
        return [_session(row) for row in found]

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


_SESSION_COLUMNS = "id, agent_id, name, started_at, transcript"


def _agent(row: Row) -> StoredAgent:
    return StoredAgent(row["id"], row["created_at"], json.loads(row["config"]), owner_of(row))


def _session(row: Row) -> StoredSession:
    return StoredSession(
        row["id"], row["agent_id"], row["name"], row["started_at"], json.loads(row["transcript"]), owner_of(row)
    )


async def _visible_page(
    db: Database,
    table: str,
    columns: str,
    clauses: list[str],
    params: list[Any],
    start: int,
    limit: int,
    visible: Visibility | None,
) -> list[Row]:
    """Rows by offset in creation order: filtered in SQL, or (a configured policy) row by row."""
    clauses, params = list(clauses), list(params)
    keep = visible.keep if visible is not None else None
    if keep is None:
        restrict(visible, clauses, params)
    condition = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    select = f"SELECT {columns}, {OWNER_COLUMNS} FROM {table} {condition} ORDER BY seq"
    if keep is None:
        return await db.fetch(f"{select} LIMIT ? OFFSET ?", (*params, bounded(limit), bounded(start)))
    rows = [row for row in await db.fetch(select, params) if keep(row["id"], owner_of(row))]
    return rows[start : start + limit]
