"""Stored responses, paged by cursor in creation order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pocketstack.storage.owners import OWNER_COLUMNS, Owner, Visibility, owner_of, owner_values
from pocketstack.storage.pages import page
from pocketstack.storage.sqlite import Database

_COLUMNS = f"response, input_items, context, {OWNER_COLUMNS}"


@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]  # the items this request added, with their ids
    context: list[dict[str, Any]]  # the chat messages it ended with, for `previous_response_id`
    owner: Owner | None = None  # who created it; its input items and events follow it


def _stored(row: Any) -> StoredResponse:
    return StoredResponse(
        json.loads(row["response"]), json.loads(row["input_items"]), json.loads(row["context"]), owner_of(row)
    )


class ResponseStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(self, stored: StoredResponse) -> None:
        response = stored.response
        await self._db.execute(
            f"INSERT INTO responses (id, created_at, model, response, input_items, context, {OWNER_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                response["id"],
                response["created_at"],
                response["model"],
                json.dumps(response),
                json.dumps(stored.input_items),
                json.dumps(stored.context),
                *owner_values(stored.owner),
            ),
        )

    async def update(self, stored: StoredResponse) -> bool:
        """Replace a response's row (a background response as it progresses); False when it was deleted."""
        rows = await self._db.fetch(
            "UPDATE responses SET response = ?, context = ? WHERE id = ? RETURNING id",
            (json.dumps(stored.response), json.dumps(stored.context), stored.response["id"]),
        )
        return bool(rows)

    async def unfinished(self) -> list[StoredResponse]:
        """Background responses left queued or running (by a server that stopped)."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM responses "
            "WHERE json_extract(response, '$.status') IN ('queued', 'in_progress') ORDER BY seq"
        )
        return [_stored(row) for row in rows]

    async def get(self, response_id: str) -> StoredResponse | None:
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM responses WHERE id = ?", (response_id,))
        return _stored(rows[0]) if rows else None

    async def add_events(self, response_id: str, events: list[dict[str, Any]]) -> None:
        """Keep a streamed background response's events (as they are told); none once it was deleted."""
        await self._db.transaction(
            ("INSERT INTO response_events (response_id, sequence_number, event) "
             "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM responses WHERE id = ?)",
             (response_id, event["sequence_number"], json.dumps(event), response_id))
            for event in events
        )  # fmt: skip

    async def events(self, response_id: str, after: int) -> list[dict[str, Any]]:
        rows = await self._db.fetch(
            "SELECT event FROM response_events WHERE response_id = ? AND sequence_number > ? ORDER BY sequence_number",
            (response_id, after),
        )
        return [json.loads(row["event"]) for row in rows]

    async def delete(self, response_id: str) -> bool:
        rows = await self._db.fetch("DELETE FROM responses WHERE id = ? RETURNING id", (response_id,))
        return bool(rows)

    async def page(
        self, *, after: str | None, limit: int, model: str | None, descending: bool, visible: Visibility | None = None
    ) -> tuple[list[StoredResponse], bool]:
        found = await page(
            self._db,
            visible=visible,
            table="responses",
            columns=_COLUMNS,
            where=["model = ?"] if model is not None else [],
            params=[model] if model is not None else [],
            after=after,
            limit=limit,
            descending=descending,
            what="stored response",
        )
        return [_stored(row) for row in found.rows], found.has_more
