"""Stored chat completions, paged by cursor in insertion order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pocketstack.errors import BadRequestError
from pocketstack.storage.sqlite import Database


@dataclass(frozen=True)
class StoredCompletion:
    completion: dict[str, Any]
    input_messages: list[dict[str, Any]]
    served_by: str


@dataclass(frozen=True)
class Page:
    items: list[StoredCompletion]
    has_more: bool


def _stored(row: Any) -> StoredCompletion:
    return StoredCompletion(json.loads(row["completion"]), json.loads(row["input_messages"]), row["served_by"])


# Llama Stack lets a client ask for any number of stored completions at once; reading them all into
# one answer would not scale, so a page stops here and says `has_more`, and the cursor goes on.
MAX_PAGE = 1000


class ChatCompletionStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(self, completion: dict[str, Any], input_messages: list[dict[str, Any]], served_by: str) -> None:
        await self._db.execute(
            "INSERT INTO chat_completions (id, created, model, served_by, completion, input_messages) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                completion["id"],
                completion["created"],
                completion["model"],
                served_by,
                json.dumps(completion),
                json.dumps(input_messages),
            ),
        )

    async def get(self, completion_id: str) -> StoredCompletion | None:
        rows = await self._db.fetch(
            "SELECT completion, input_messages, served_by FROM chat_completions WHERE id = ?", (completion_id,)
        )
        return _stored(rows[0]) if rows else None

    async def page(self, *, after: str | None, limit: int, model: str | None, order: Literal["asc", "desc"]) -> Page:
        """One page in insertion order; `limit` has no bound (Llama Stack's has none), a page does."""
        limit = min(limit, MAX_PAGE)
        clauses, params = [], []
        if model is not None:
            clauses.append("model = ?")
            params.append(model)
        if after is not None:
            cursor = await self._db.fetch("SELECT seq FROM chat_completions WHERE id = ?", (after,))
            if not cursor:
                raise BadRequestError(f"No stored chat completion '{after}' to continue after.", param="after")
            clauses.append("seq < ?" if order == "desc" else "seq > ?")
            params.append(cursor[0]["seq"])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        direction = "DESC" if order == "desc" else "ASC"
        rows = await self._db.fetch(
            f"SELECT completion, input_messages, served_by FROM chat_completions {where} "
            f"ORDER BY seq {direction} LIMIT ?",
            (*params, limit + 1),
        )
        return Page([_stored(row) for row in rows[:limit]], has_more=len(rows) > limit)
