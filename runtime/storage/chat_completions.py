"""Stored chat completions, paged by cursor in insertion order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pocketstack.storage.owners import OWNER_COLUMNS, Owner, Visibility, owner_of, owner_values
from pocketstack.storage.pages import page
from pocketstack.storage.sqlite import Database


@dataclass(frozen=True)
class StoredCompletion:
    completion: dict[str, Any]
    input_messages: list[dict[str, Any]]
    served_by: str
    owner: Owner | None = None


@dataclass(frozen=True)
class Page:
    items: list[StoredCompletion]
    has_more: bool


def _stored(row: Any) -> StoredCompletion:
    return StoredCompletion(
        json.loads(row["completion"]), json.loads(row["input_messages"]), row["served_by"], owner_of(row)
    )


_COLUMNS = f"completion, input_messages, served_by, {OWNER_COLUMNS}"


# Llama Stack lets a client ask for any number of stored completions at once; reading them all into
# one answer would not scale, so a page stops here and says `has_more`, and the cursor goes on.
MAX_PAGE = 1000


class ChatCompletionStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(
        self,
        completion: dict[str, Any],
        input_messages: list[dict[str, Any]],
        served_by: str,
        owner: Owner | None = None,
    ) -> None:
        await self._db.execute(
            "INSERT INTO chat_completions (id, created, model, served_by, completion, input_messages, "
            f"{OWNER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                completion["id"],
                completion["created"],
                completion["model"],
                served_by,
                json.dumps(completion),
                json.dumps(input_messages),
                *owner_values(owner),
            ),
        )

    async def get(self, completion_id: str) -> StoredCompletion | None:
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM chat_completions WHERE id = ?", (completion_id,))
        return _stored(rows[0]) if rows else None

    async def page(
        self,
        *,
        after: str | None,
        limit: int,
        model: str | None,
        order: Literal["asc", "desc"],
        visible: Visibility | None = None,
    ) -> Page:
        """One page in insertion order; `limit` has no bound (Llama Stack's has none), a page does."""
        found = await page(
            self._db,
            table="chat_completions",
            columns=_COLUMNS,
            where=["model = ?"] if model is not None else [],
            params=[model] if model is not None else [],
            after=after,
            limit=min(limit, MAX_PAGE),
            descending=order == "desc",
            visible=visible,
            no_cursor="No stored chat completion '{cursor}' to continue after.",
        )
        return Page([_stored(row) for row in found.rows], has_more=found.has_more)
