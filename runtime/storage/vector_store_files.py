"""Files attached to vector stores, their ingestion state, and the file batches that attached them together.

An attachment row is `in_progress` until the ingestion worker marks it `completed` or `failed`
(or a batch cancellation marks it `cancelled`); rows still `in_progress` at start are resumed.
A batch's counts and state are read from its files' rows, so they stay exact whatever the worker does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pocketstack.storage.pages import page
from pocketstack.storage.sqlite import Database, Row

_COLUMNS = "store_id, file_id, status, attributes, chunking_strategy, created_at, usage_bytes, last_error"

FileStatus = Literal["in_progress", "completed", "cancelled", "failed"]
Statement = tuple[str, Sequence[Any]]


@dataclass(frozen=True)
class StoredFile:
    """A file attached to a vector store."""

    store_id: str
    file_id: str
    status: FileStatus
    attributes: dict[str, Any]  # copied into each chunk's metadata (what search filters read)
    chunking_strategy: dict[str, Any]
    created_at: int
    usage_bytes: int
    last_error: dict[str, str] | None  # {code, message} of a failed ingestion


@dataclass(frozen=True)
class NewAttachment:
    """A file to attach (or attach again, for a fresh ingestion), checked by the caller."""

    store_id: str
    file_id: str
    attributes: dict[str, Any]
    chunking_strategy: dict[str, Any]
    created_at: int
    error: dict[str, str] | None = None  # attached already `failed` with this last_error (an unknown file)


@dataclass(frozen=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.cancelled + self.failed


@dataclass(frozen=True)
class StoredFileBatch:
    id: str
    store_id: str
    created_at: int
    cancelled: bool


def _stored(row: Row) -> StoredFile:
    return StoredFile(
        store_id=row["store_id"],
        file_id=row["file_id"],
        status=row["status"],
        attributes=json.loads(row["attributes"]),
        chunking_strategy=json.loads(row["chunking_strategy"]),
        created_at=row["created_at"],
        usage_bytes=row["usage_bytes"],
        last_error=json.loads(row["last_error"]) if row["last_error"] else None,
    )


def _counts(rows: Iterable[Row]) -> FileCounts:
    """Counts by state from rows of (status, n)."""
    return FileCounts(**{row["status"]: row["n"] for row in rows})


def _attach(attachment: NewAttachment) -> Statement:
    """Attach a file as `in_progress` (or `failed`, given an error); a file already attached starts over
    with the new attributes and strategy."""
    return (
        "INSERT INTO vector_store_files"
        " (store_id, file_id, status, attributes, chunking_strategy, created_at, last_error)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (store_id, file_id) DO UPDATE SET"
        " status = excluded.status, attributes = excluded.attributes,"
        " chunking_strategy = excluded.chunking_strategy, last_error = excluded.last_error",
        (
            attachment.store_id,
            attachment.file_id,
            "failed" if attachment.error else "in_progress",
            json.dumps(attachment.attributes),
            json.dumps(attachment.chunking_strategy),
            attachment.created_at,
            json.dumps(attachment.error) if attachment.error else None,
        ),
    )


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


_BATCH_MEMBERS = "SELECT file_id FROM vector_store_file_batch_files WHERE batch_id = ?"


class VectorStoreFileStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    # Attached files

    async def attach(self, attachment: NewAttachment) -> None:
        await self._db.execute(*_attach(attachment))

    async def get(self, store_id: str, file_id: str) -> StoredFile | None:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM vector_store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id)
        )
        return _stored(rows[0]) if rows else None

    async def has_status(self, store_id: str, file_id: str, status: FileStatus) -> bool:
        rows = await self._db.fetch(
            "SELECT 1 FROM vector_store_files WHERE store_id = ? AND file_id = ? AND status = ?",
            (store_id, file_id, status),
        )
        return bool(rows)

    async def page(
        self,
        store_id: str,
        *,
        after: str | None,
        before: str | None,
        limit: int,
        descending: bool,
        status: str | None,
        batch_id: str | None,
    ) -> tuple[list[StoredFile], bool]:
        """A page of the store's files, those with `status` only, those a batch attached only."""
        where, params = ["store_id = ?"], [store_id]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if batch_id is not None:
            where.append(f"file_id IN ({_BATCH_MEMBERS})")
            params.append(batch_id)
        found = await page(
            self._db,
            table="vector_store_files",
            columns=_COLUMNS,
            where=where,
            params=params,
            id_column="file_id",
            after=after,
            before=before,
            limit=limit,
            descending=descending,
            what="attached file",
        )
        return [_stored(row) for row in found.rows], found.has_more

    async def counts(self, store_id: str) -> FileCounts:
        rows = await self._db.fetch(
            "SELECT status, COUNT(*) AS n FROM vector_store_files WHERE store_id = ? GROUP BY status", (store_id,)
        )
        return _counts(rows)

    def totals_blocking(self) -> list[tuple[str, int, int]]:
        """(store id, files attached, their usage_bytes) of every store, in one aggregate query over the
        attachments; blocking, for the metrics collector's thread. A closed database (the server
        stopping while a scrape reads) answers nothing."""
        try:
            rows = self._db.transaction_blocking(
                [
                    (
                        "SELECT s.id AS store_id, COUNT(f.file_id) AS files, COALESCE(SUM(f.usage_bytes), 0) AS usage"
                        " FROM vector_stores s LEFT JOIN vector_store_files f ON f.store_id = s.id GROUP BY s.id",
                        (),
                    )
                ]
            )
        except sqlite3.ProgrammingError:
            return []
        return [(row["store_id"], row["files"], row["usage"]) for row in rows]

    async def attached_file_ids(self) -> list[str]:
        """Every file attached to some store."""
        rows = await self._db.fetch("SELECT DISTINCT file_id FROM vector_store_files")
        return [row["file_id"] for row in rows]

    async def in_progress(self) -> list[tuple[str, str]]:
        """(store id, file id) of the files waiting for ingestion, in the order they were attached."""
        rows = await self._db.fetch(
            "SELECT store_id, file_id FROM vector_store_files WHERE status = 'in_progress' ORDER BY seq"
        )
        return [(row["store_id"], row["file_id"]) for row in rows]

    async def attachments_of(self, file_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(store id, file id) wherever one of the files is attached."""
        rows = await self._db.fetch(
            f"SELECT store_id, file_id FROM vector_store_files WHERE file_id IN ({_marks(file_ids)})", file_ids
        )
        return [(row["store_id"], row["file_id"]) for row in rows]

    async def set_attributes(self, store_id: str, file_id: str, attributes: dict[str, Any]) -> None:
        await self._db.execute(
            "UPDATE vector_store_files SET attributes = ? WHERE store_id = ? AND file_id = ?",
            (json.dumps(attributes), store_id, file_id),
        )

    async def finish(
        self, store_id: str, file_id: str, status: FileStatus, usage_bytes: int, error: dict[str, str] | None
    ) -> None:
        """Record how an ingestion ended, unless the file was cancelled or detached meanwhile."""
        await self._db.execute(
            "UPDATE vector_store_files SET status = ?, usage_bytes = ?, last_error = ?"
            " WHERE store_id = ? AND file_id = ? AND status = 'in_progress'",
            (status, usage_bytes, json.dumps(error) if error else None, store_id, file_id),
        )

    async def detach(self, store_id: str, file_id: str) -> None:
        await self._db.execute("DELETE FROM vector_store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id))

    async def detach_everywhere(self, file_ids: Sequence[str]) -> None:
        await self._db.execute(f"DELETE FROM vector_store_files WHERE file_id IN ({_marks(file_ids)})", file_ids)

    # File batches

    async def create_batch(self, batch: StoredFileBatch, attachments: Sequence[NewAttachment]) -> None:
        """The batch, its members and their attachments in one transaction: all of them, or nothing."""
        await self._db.transaction(
            [
                (
                    "INSERT INTO vector_store_file_batches (id, store_id, created_at, cancelled) VALUES (?, ?, ?, ?)",
                    (batch.id, batch.store_id, batch.created_at, int(batch.cancelled)),
                ),
                *(
                    (
                        "INSERT INTO vector_store_file_batch_files (batch_id, file_id) VALUES (?, ?)",
                        (batch.id, a.file_id),
                    )
                    for a in attachments
                ),
                *(_attach(attachment) for attachment in attachments),
            ]
        )

    async def batch(self, store_id: str, batch_id: str) -> StoredFileBatch | None:
        rows = await self._db.fetch(
            "SELECT id, store_id, created_at, cancelled FROM vector_store_file_batches WHERE id = ? AND store_id = ?",
            (batch_id, store_id),
        )
        if not rows:
            return None
        row = rows[0]
        return StoredFileBatch(row["id"], row["store_id"], row["created_at"], bool(row["cancelled"]))

    async def batch_counts(self, batch_id: str) -> FileCounts:
        rows = await self._db.fetch(
            "SELECT f.status, COUNT(*) AS n FROM vector_store_file_batch_files b"
            " JOIN vector_store_file_batches batch ON batch.id = b.batch_id"
            " JOIN vector_store_files f ON f.store_id = batch.store_id AND f.file_id = b.file_id"
            " WHERE b.batch_id = ? GROUP BY f.status",
            (batch_id,),
        )
        return _counts(rows)

    async def cancel_batch(self, store_id: str, batch_id: str) -> list[str]:
        """Mark the batch cancelled and its files still in progress `cancelled`, together; those files' ids."""
        rows = await self._db.fetch(
            "SELECT file_id FROM vector_store_files WHERE store_id = ? AND status = 'in_progress'"
            f" AND file_id IN ({_BATCH_MEMBERS})",
            (store_id, batch_id),
        )
        await self._db.transaction(
            [
                ("UPDATE vector_store_file_batches SET cancelled = 1 WHERE id = ?", (batch_id,)),
                (
                    "UPDATE vector_store_files SET status = 'cancelled' WHERE store_id = ? AND status = 'in_progress'"
                    f" AND file_id IN ({_BATCH_MEMBERS})",
                    (store_id, batch_id),
                ),
            ]
        )
        return [row["file_id"] for row in rows]
