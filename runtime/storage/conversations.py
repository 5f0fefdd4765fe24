"""Conversations and their items, in the order they were added."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pocketstack.errors import ConflictError
from pocketstack.storage.owners import OWNER_COLUMNS, Owner, owner_of, owner_values
from pocketstack.storage.pages import page
from pocketstack.storage.sqlite import Database


@dataclass(frozen=True)
class StoredConversation:
    id: str
    created_at: int
    metadata: dict[str, str]
    owner: Owner | None = None  # its items follow it


class ConversationStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, conversation: StoredConversation, items: list[dict[str, Any]]) -> None:
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                f"INSERT INTO conversations (id, created_at, metadata, {OWNER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (
                    conversation.id,
                    conversation.created_at,
                    json.dumps(conversation.metadata),
                    *owner_values(conversation.owner),
                ),
            )
        ]
        statements += self._inserts(conversation.id, items)
        await self._db.transaction(statements)

    @staticmethod
    def _inserts(conversation_id: str, items: list[dict[str, Any]]) -> list[tuple[str, tuple[Any, ...]]]:
        ids = [item["id"] for item in items]
        if len(set(ids)) != len(ids):
            raise ConflictError("Two of the items have the same id.", code="duplicate_item")
        return [
            ("INSERT INTO conversation_items (conversation_id, id, item) VALUES (?, ?, ?)",
             (conversation_id, item["id"], json.dumps(item)))
            for item in items
        ]  # fmt: skip

    async def get(self, conversation_id: str) -> StoredConversation | None:
        rows = await self._db.fetch(
            f"SELECT id, created_at, metadata, {OWNER_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
        )
        if not rows:
            return None
        row = rows[0]
        return StoredConversation(row["id"], row["created_at"], json.loads(row["metadata"]), owner_of(row))

    async def update(self, conversation_id: str, metadata: dict[str, str]) -> bool:
        rows = await self._db.fetch(
            "UPDATE conversations SET metadata = ? WHERE id = ? RETURNING id", (json.dumps(metadata), conversation_id)
        )
        return bool(rows)

    async def delete(self, conversation_id: str) -> bool:
        rows = await self._db.fetch("DELETE FROM conversations WHERE id = ? RETURNING id", (conversation_id,))
        return bool(rows)

    async def add_items(self, conversation_id: str, items: list[dict[str, Any]]) -> None:
        existing = await self._db.fetch(
            f"SELECT id FROM conversation_items WHERE conversation_id = ? AND id IN ({', '.join('?' for _ in items)})",
            (conversation_id, *[item["id"] for item in items]),
        )
        if existing:
            raise ConflictError(f"The conversation already has an item '{existing[0]['id']}'.", code="duplicate_item")
        await self._db.transaction(self._inserts(conversation_id, items))

    async def all_items(self, conversation_id: str) -> list[dict[str, Any]]:
        rows = await self._db.fetch(
            "SELECT item FROM conversation_items WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
        )
        return [json.loads(row["item"]) for row in rows]

    async def item(self, conversation_id: str, item_id: str) -> dict[str, Any] | None:
        rows = await self._db.fetch(
            "SELECT item FROM conversation_items WHERE conversation_id = ? AND id = ?", (conversation_id, item_id)
        )
        return json.loads(rows[0]["item"]) if rows else None

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        rows = await self._db.fetch(
            "DELETE FROM conversation_items WHERE conversation_id = ? AND id = ? RETURNING id",
            (conversation_id, item_id),
        )
        return bool(rows)

    async def page_items(
        self, conversation_id: str, *, after: str | None, limit: int, descending: bool
    ) -> tuple[list[dict[str, Any]], bool]:
        found = await page(
            self._db,
            table="conversation_items",
            columns="item",
            where=["conversation_id = ?"],
            params=[conversation_id],
            after=after,
            limit=limit,
            descending=descending,
            what="conversation item",
        )
        return [json.loads(row["item"]) for row in found.rows], found.has_more
