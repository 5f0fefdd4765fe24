"""File batches: several files attached to a vector store at once, followed and cancelled together.

A batch records which files it attached; its counts and state are read from those files' rows,
so they stay exact whatever the ingestion worker is doing. Cancelling marks the batch's files
that are still in progress `cancelled`; the worker skips them, or stops part way and removes
what it had stored.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from pocketstack._generated import models
from pocketstack.apis.vector_io.files import file_counts
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError
from pocketstack.wire.fields import given, plain

if TYPE_CHECKING:
    from pocketstack.apis.vector_io.api import VectorIOApi

MAX_BATCH_FILES = 500


class FileBatches:
    def __init__(self, stack: Stack, vector_io: VectorIOApi) -> None:
        self.stack = stack
        self.vector_io = vector_io

    async def create(self, store_id: str, request: models.CreateFileBatchRequest) -> models.VectorStoreFileBatchObject:
        await self.vector_io.usable(store_id)
        wanted = self._files(request)
        statements = [
            await self.vector_io.files.attachment(store_id, file_id, attributes, strategy)
            for file_id, attributes, strategy in wanted
        ]  # every file checked before anything is written: an unknown one fails the whole batch
        batch_id = f"vsfb_{uuid.uuid4().hex}"
        await self.stack.database.transaction(
            [
                (
                    "INSERT INTO vector_store_file_batches (id, store_id, created_at) VALUES (?, ?, ?)",
                    (batch_id, store_id, int(time.time())),
                ),
                *(
                    ("INSERT INTO vector_store_file_batch_files (batch_id, file_id) VALUES (?, ?)", (batch_id, file_id))
                    for file_id, _, _ in wanted
                ),
                *statements,
            ]
        )
        self.vector_io.files.enqueue(store_id, [file_id for file_id, _, _ in wanted])
        return await self.get(store_id, batch_id)

    def _files(self, request: models.CreateFileBatchRequest) -> list[tuple[str, Any, Any]]:
        file_ids, files = given(request.file_ids), given(request.files)
        if (file_ids is None) == (files is None):
            raise BadRequestError("give `file_ids` or `files`, one of the two", param="file_ids")
        if files is not None:
            if given(request.attributes) is not None or given(request.chunking_strategy) is not None:
                raise BadRequestError(
                    "with `files`, give attributes and chunking_strategy per file", param="attributes"
                )
            wanted = [(plain(f.file_id), given(f.attributes), given(f.chunking_strategy)) for f in files]
        else:
            shared = (given(request.attributes), given(request.chunking_strategy))
            wanted = [(plain(file_id), *shared) for file_id in file_ids or []]
        unique = {file_id: entry for file_id, *entry in wanted}  # a file named twice is attached once
        if len(unique) > MAX_BATCH_FILES:
            raise BadRequestError(f"a batch holds at most {MAX_BATCH_FILES} files", param="file_ids")
        return [(file_id, plain(attributes), plain(strategy)) for file_id, (attributes, strategy) in unique.items()]

    async def get(self, store_id: str, batch_id: str) -> models.VectorStoreFileBatchObject:
        await self.vector_io.record(store_id)
        rows = await self.stack.database.fetch(
            "SELECT id, store_id, created_at, cancelled FROM vector_store_file_batches WHERE id = ? AND store_id = ?",
            (batch_id, store_id),
        )
        if not rows:
            # 400 like every other not-found under /v1/vector_stores (Llama Stack's behaviour)
            raise BadRequestError(f"File batch '{batch_id}' not found in vector store '{store_id}'.", code="not_found")
        batch = rows[0]
        counts = await self._counts(batch_id)
        if batch["cancelled"]:
            status = "cancelled"
        elif counts.in_progress:
            status = "in_progress"
        elif counts.total and counts.failed == counts.total:
            status = "failed"
        else:
            status = "completed"
        return models.VectorStoreFileBatchObject(
            id=batch["id"],
            created_at=batch["created_at"],
            vector_store_id=batch["store_id"],
            status=models.VectorStoreFileBatchStatus(status),
            file_counts=counts,
        )

    async def _counts(self, batch_id: str) -> models.VectorStoreFileCounts:
        rows = await self.stack.database.fetch(
            "SELECT f.status, COUNT(*) AS n FROM vector_store_file_batch_files b"
            " JOIN vector_store_file_batches batch ON batch.id = b.batch_id"
            " JOIN vector_store_files f ON f.store_id = batch.store_id AND f.file_id = b.file_id"
            " WHERE b.batch_id = ? GROUP BY f.status",
            (batch_id,),
        )
        return file_counts(rows)

    async def cancel(self, store_id: str, batch_id: str) -> models.VectorStoreFileBatchObject:
        batch = await self.get(store_id, batch_id)
        if batch.status.value != "in_progress":
            raise BadRequestError(
                f"File batch '{batch_id}' is {batch.status.value}; only a batch in progress can be cancelled."
            )
        members = "SELECT file_id FROM vector_store_file_batch_files WHERE batch_id = ?"
        cancelled = await self.stack.database.fetch(
            f"SELECT file_id FROM vector_store_files WHERE store_id = ? AND status = 'in_progress'"
            f" AND file_id IN ({members})",
            (store_id, batch_id),
        )
        await self.stack.database.transaction(
            [
                ("UPDATE vector_store_file_batches SET cancelled = 1 WHERE id = ?", (batch_id,)),
                (
                    "UPDATE vector_store_files SET status = 'cancelled' WHERE store_id = ? AND status = 'in_progress'"
                    f" AND file_id IN ({members})",
                    (store_id, batch_id),
                ),
            ]
        )
        record = await self.vector_io.record(store_id)
        _, provider = self.vector_io.provider(record.provider_id)
        for row in cancelled:  # chunks a file may have from before; the worker clears what it adds after
            await provider.delete(store_id, row["file_id"])
        return await self.get(store_id, batch_id)

    async def list_files(
        self, store_id: str, batch_id: str, request: models.OpenaiListFilesInVectorStoreFileBatchRequest
    ) -> models.ListVectorStoreFilesResponse:
        await self.get(store_id, batch_id)
        order, status = given(request.order), given(request.filter)
        return await self.vector_io.files.list(
            store_id,
            after=given(request.after),
            before=given(request.before),
            limit=request.limit,
            descending=order is None or order.value == "desc",
            status=status.value if status is not None else None,
            batch_id=batch_id,
        )
