"""File batches: several files attached to a vector store at once, followed and cancelled together.

Creating a batch answers once its files are ingested, or `vector_stores.attach_wait_s` ran out
(the rest goes on in the background). A file that does not exist is attached `failed`, its
last_error the files API's not-found (Llama Stack's `openai_create_vector_store_file_batch` and
`openai_attach_file_to_vector_store`); the others proceed.
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
from pocketstack.security.access import Action
from pocketstack.storage.vector_store_files import StoredFileBatch, VectorStoreFileStore
from pocketstack.wire.fields import given, plain

if TYPE_CHECKING:
    from pocketstack.apis.vector_io.api import VectorIOApi

MAX_BATCH_FILES = 500


class FileBatches:
    def __init__(self, stack: Stack, vector_io: VectorIOApi) -> None:
        self.stack = stack
        self.vector_io = vector_io

    @property
    def store(self) -> VectorStoreFileStore:
        return VectorStoreFileStore(self.stack.database)

    async def create(self, store_id: str, request: models.CreateFileBatchRequest) -> models.VectorStoreFileBatchObject:
        await self.vector_io.usable(store_id, Action.UPDATE)
        wanted = self._files(request)
        attachments = [
            await self.vector_io.files.attachment(store_id, file_id, attributes, strategy, missing_fails=True)
            for file_id, attributes, strategy in wanted
        ]  # every file checked before anything is written: bad chunking refuses the whole batch
        batch = StoredFileBatch(f"vsfb_{uuid.uuid4().hex}", store_id, int(time.time()), cancelled=False)
        await self.store.create_batch(batch, attachments)
        queued = [a.file_id for a in attachments if a.error is None]
        self.vector_io.files.enqueue(store_id, queued)
        await self.vector_io.files.settle(store_id, queued)
        return await self.get(store_id, batch.id)

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

    async def get(
        self, store_id: str, batch_id: str, action: Action = Action.READ
    ) -> models.VectorStoreFileBatchObject:
        """A batch follows its store (the request must be able to do `action` to the store)."""
        await self.vector_io.record(store_id, action)
        batch = await self.store.batch(store_id, batch_id)
        if batch is None:
            # 400 like every other not-found under /v1/vector_stores (Llama Stack's behaviour)
            raise BadRequestError(f"File batch '{batch_id}' not found in vector store '{store_id}'.", code="not_found")
        counts = file_counts(await self.store.batch_counts(batch_id))
        if batch.cancelled:
            status = "cancelled"
        elif counts.in_progress:
            status = "in_progress"
        elif counts.total and counts.failed == counts.total:
            status = "failed"
        else:
            status = "completed"
        return models.VectorStoreFileBatchObject(
            id=batch.id,
            created_at=batch.created_at,
            vector_store_id=batch.store_id,
            status=models.VectorStoreFileBatchStatus(status),
            file_counts=counts,
        )

    async def cancel(self, store_id: str, batch_id: str) -> models.VectorStoreFileBatchObject:
        batch = await self.get(store_id, batch_id, Action.UPDATE)
        if batch.status.value != "in_progress":
            raise BadRequestError(
                f"File batch '{batch_id}' is {batch.status.value}; only a batch in progress can be cancelled."
            )
        cancelled = await self.store.cancel_batch(store_id, batch_id)
        record = await self.vector_io.record(store_id, None)
        _, provider = self.vector_io.provider(record.provider_id)
        for file_id in cancelled:  # chunks a file may have from before; the worker clears what it adds after
            await provider.delete(store_id, file_id)
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
