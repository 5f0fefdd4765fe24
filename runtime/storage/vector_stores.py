"""Vector stores' records (OpenAI's vector store object); their chunks and vectors live in the vector_io provider."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pocketstack.storage.owners import Owner, Visibility, owner_of, owner_values
from pocketstack.storage.pages import page
from pocketstack.storage.sqlite import Database, Row

_COLUMNS = (
    "id, provider_id, name, created_at, last_active_at, embedding_model, embedding_dimension, metadata, expires_after,"
    " source, owner_principal, owner_attributes"
)

Source = Literal["api", "config"]  # created by a request, or from the run config's registered_resources


@dataclass(frozen=True)
class StoredVectorStore:
    id: str
    provider_id: str
    name: str
    created_at: int
    last_active_at: int  # what expiry counts from
    embedding_model: str
    embedding_dimension: int
    metadata: dict[str, Any]
    expires_after: dict[str, Any] | None  # OpenAI's {anchor, days}; None: never expires
    source: Source
    owner: Owner | None = None  # who created it (None: unowned, e.g. from the run config)

    @property
    def expires_at(self) -> int | None:
        """When the store expires: `days` after it was last used (OpenAI's only anchor), if it expires at all."""
        if not self.expires_after:
            return None
        days: int = self.expires_after["days"]
        return self.last_active_at + days * 86400


def _stored(row: Row) -> StoredVectorStore:
    return StoredVectorStore(
        id=row["id"],
        provider_id=row["provider_id"],
        name=row["name"],
        created_at=row["created_at"],
        last_active_at=int(row["last_active_at"]),
        embedding_model=row["embedding_model"],
        embedding_dimension=row["embedding_dimension"],
        metadata=json.loads(row["metadata"]),
        expires_after=json.loads(row["expires_after"]) if row["expires_after"] else None,
        source=row["source"],
        owner=owner_of(row),
    )


def _json_or_null(value: dict[str, Any] | None) -> str | None:
    return json.dumps(value) if value is not None else None


class VectorStoreStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, store_id: str) -> StoredVectorStore | None:
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM vector_stores WHERE id = ?", (store_id,))
        return _stored(rows[0]) if rows else None

    async def add(self, store: StoredVectorStore) -> None:
        await self._db.execute(
            f"INSERT INTO vector_stores ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                store.id,
                store.provider_id,
                store.name,
                store.created_at,
                store.last_active_at,
                store.embedding_model,
                store.embedding_dimension,
                json.dumps(store.metadata),
                _json_or_null(store.expires_after),
                store.source,
                *owner_values(store.owner),
            ),
        )

    async def update(
        self,
        store_id: str,
        *,
        name: str,
        metadata: dict[str, Any],
        expires_after: dict[str, Any] | None,
        last_active_at: int,
    ) -> None:
        await self._db.execute(
            "UPDATE vector_stores SET name = ?, metadata = ?, expires_after = ?, last_active_at = ? WHERE id = ?",
            (name, json.dumps(metadata), _json_or_null(expires_after), last_active_at, store_id),
        )

    async def touch(self, store_id: str, last_active_at: int) -> None:
        await self._db.execute("UPDATE vector_stores SET last_active_at = ? WHERE id = ?", (last_active_at, store_id))

    async def mark_from_config(self, store_id: str) -> None:
        """The run config declares this store: it is then kept from deletion through the API."""
        await self._db.execute("UPDATE vector_stores SET source = 'config' WHERE id = ?", (store_id,))

    async def delete(self, store_id: str) -> None:
        """The record, its attached files and file batches (the tables cascade)."""
        await self._db.execute("DELETE FROM vector_stores WHERE id = ?", (store_id,))

    async def page(
        self,
        *,
        after: str | None,
        before: str | None = None,
        limit: int,
        descending: bool,
        visible: Visibility | None = None,
    ) -> tuple[list[StoredVectorStore], bool]:
        found = await page(
            self._db,
            visible=visible,
            table="vector_stores",
            columns=_COLUMNS,
            after=after,
            before=before,
            limit=limit,
            descending=descending,
            what="vector store",
        )
        return [_stored(row) for row in found.rows], found.has_more
