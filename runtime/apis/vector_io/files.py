"""Files attached to vector stores: the routes, and the background ingestion behind them.

Attaching records the file as `in_progress` and queues it; one worker extracts, chunks, embeds
and stores it, then marks it `completed` or `failed` with a reason. A file's chunks have ids
derived from the file and their position, and a file's old chunks are removed before it is
(re)ingested, so ingestion can be redone any number of times: rows still `in_progress` when the
server stops (even by SIGKILL) are queued again at the next start, without duplicates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from pydantic import MISSING

from pocketstack._generated import models
from pocketstack.apis.files import FilesApi
from pocketstack.apis.inference.api import InferenceApi
from pocketstack.apis.vector_io import ingest
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, NotFoundError, PocketStackError
from pocketstack.providers.vector_search import NewChunk, VectorIOProvider
from pocketstack.storage import pages
from pocketstack.wire.fields import given, plain

if TYPE_CHECKING:
    from pocketstack.apis.vector_io.api import VectorIOApi

log = logging.getLogger(__name__)
INSERT_BATCH = 64
MAX_ATTRIBUTES = 16
COLUMNS = "store_id, file_id, status, attributes, chunking_strategy, created_at, usage_bytes, last_error"


def _file_object(row: Any) -> models.VectorStoreFileObject:
    error = json.loads(row["last_error"]) if row["last_error"] else None
    return models.VectorStoreFileObject(
        id=row["file_id"],
        attributes=json.loads(row["attributes"]),
        chunking_strategy=json.loads(row["chunking_strategy"]),
        created_at=row["created_at"],
        last_error=models.VectorStoreFileLastError(**error) if error else None,
        status=models.VectorStoreFileStatus(row["status"]),
        usage_bytes=row["usage_bytes"],
        vector_store_id=row["store_id"],
    )


def file_counts(rows: Iterable[Any]) -> models.VectorStoreFileCounts:
    """Counts by state from rows of (status, n)."""
    found = {row["status"]: row["n"] for row in rows}
    return models.VectorStoreFileCounts(
        completed=found.get("completed", 0),
        cancelled=found.get("cancelled", 0),
        failed=found.get("failed", 0),
        in_progress=found.get("in_progress", 0),
        total=sum(found.values()),
    )


def _attributes(value: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = plain(given(value, {}))
    if len(attributes) > MAX_ATTRIBUTES or not all(
        isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in attributes.items()
    ):
        raise BadRequestError(
            f"attributes: at most {MAX_ATTRIBUTES} keys, each a string, number or boolean", param="attributes"
        )
    return attributes


class VectorStoreFiles:
    def __init__(self, stack: Stack, vector_io: VectorIOApi, files: FilesApi) -> None:
        self.stack = stack
        self.vector_io = vector_io
        self.files = files
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Drop files deleted meanwhile, resume what a stopped server left in progress, then work the queue."""
        if self.stack.providers_of("files"):
            files = self.files.provider()
            files.on_removed(self.forget_files)
            attached = await self.stack.database.fetch("SELECT DISTINCT file_id FROM vector_store_files")
            gone = []
            for row in attached:  # files that expired while the server was stopped
                try:
                    await files.get(row["file_id"])
                except NotFoundError:
                    gone.append(row["file_id"])
            if gone:
                await self.forget_files(gone)
        rows = await self.stack.database.fetch(
            "SELECT store_id, file_id FROM vector_store_files WHERE status = 'in_progress' ORDER BY seq"
        )
        for row in rows:
            self._queue.put_nowait((row["store_id"], row["file_id"]))
        if rows:
            log.info("resuming ingestion of %d files", len(rows))
        self._worker = asyncio.create_task(self._work(), name="pocketstack-ingestion")

    async def forget_files(self, file_ids: list[str]) -> None:
        """Detach deleted files from every store: chunks and vectors first, then the attachment rows."""
        marks = ", ".join("?" for _ in file_ids)
        rows = await self.stack.database.fetch(
            f"SELECT store_id, file_id FROM vector_store_files WHERE file_id IN ({marks})", file_ids
        )
        for row in rows:
            record = await self.vector_io.record(row["store_id"])
            _, provider = self.vector_io.provider(record.provider_id)
            await provider.delete(row["store_id"], row["file_id"])
        if rows:
            await self.stack.database.execute(f"DELETE FROM vector_store_files WHERE file_id IN ({marks})", file_ids)
            log.info("detached %d deleted files from vector stores", len(rows))

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until every queued file is done (tests and benchmarks)."""
        await self._queue.join()

    async def counts(self, store_id: str) -> models.VectorStoreFileCounts:
        rows = await self.stack.database.fetch(
            "SELECT status, COUNT(*) AS n FROM vector_store_files WHERE store_id = ? GROUP BY status", (store_id,)
        )
        return file_counts(rows)

    async def attach(self, store_id: str, file_id: str, attributes: Any, strategy: Any) -> models.VectorStoreFileObject:
        await self.vector_io.usable(store_id)
        statement = await self.attachment(store_id, file_id, attributes, strategy)
        await self.stack.database.execute(*statement)
        self.enqueue(store_id, [file_id])
        return await self.get(store_id, file_id)

    async def attachment(
        self, store_id: str, file_id: str, attributes: Any, strategy: Any
    ) -> tuple[str, Sequence[Any]]:
        """The statement that attaches a checked file (a 404 for an unknown one): queue it once it has run."""
        await self.files.provider().get(file_id)
        chunking = plain(given(strategy)) or {"type": "auto"}
        try:
            ingest.chunking_plan(chunking)
        except ValueError as exc:
            raise BadRequestError(f"chunking_strategy: {exc}", param="chunking_strategy") from exc
        return (
            "INSERT INTO vector_store_files (store_id, file_id, status, attributes, chunking_strategy, created_at)"
            " VALUES (?, ?, 'in_progress', ?, ?, ?) ON CONFLICT (store_id, file_id) DO UPDATE SET"
            " status = 'in_progress', attributes = excluded.attributes, chunking_strategy = excluded.chunking_strategy,"
            " last_error = NULL",
            (store_id, file_id, json.dumps(_attributes(attributes)), json.dumps(chunking), int(time.time())),
        )

    def enqueue(self, store_id: str, file_ids: Iterable[str]) -> None:
        for file_id in file_ids:
            self._queue.put_nowait((store_id, file_id))

    async def get(self, store_id: str, file_id: str) -> models.VectorStoreFileObject:
        rows = await self.stack.database.fetch(
            f"SELECT {COLUMNS} FROM vector_store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id)
        )
        if not rows:
            await self.vector_io.record(store_id)
            raise BadRequestError(f"File '{file_id}' is not attached to vector store '{store_id}'.", code="not_found")
        return _file_object(rows[0])

    async def list(
        self,
        store_id: str,
        *,
        after: str | None,
        before: str | None = None,
        limit: int,
        descending: bool,
        status: str | None,
        batch_id: str | None = None,
    ) -> models.ListVectorStoreFilesResponse:
        await self.vector_io.record(store_id)
        where, params = ["store_id = ?"], [store_id]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if batch_id is not None:
            where.append("file_id IN (SELECT file_id FROM vector_store_file_batch_files WHERE batch_id = ?)")
            params.append(batch_id)
        found = await pages.page(
            self.stack.database,
            table="vector_store_files",
            columns=COLUMNS,
            where=where,
            params=params,
            id_column="file_id",
            after=after,
            before=before,
            limit=limit,
            descending=descending,
            what="attached file",
        )
        data = [_file_object(row) for row in found.rows]
        return models.ListVectorStoreFilesResponse(
            data=data, first_id=data[0].id if data else "", last_id=data[-1].id if data else "", has_more=found.has_more
        )

    async def content(
        self, store_id: str, file_id: str, *, with_embeddings: bool, with_metadata: bool
    ) -> models.VectorStoreFileContentResponse:
        await self.get(store_id, file_id)
        record = await self.vector_io.record(store_id)
        _, provider = self.vector_io.provider(record.provider_id)
        chunks = await provider.file_chunks(store_id, file_id, with_embeddings=with_embeddings)
        data = [
            models.VectorStoreContent(
                text=chunk.content,
                embedding=chunk.embedding if with_embeddings and chunk.embedding is not None else MISSING,
                metadata=chunk.metadata if with_metadata else MISSING,
                chunk_metadata=chunk.chunk_metadata if with_metadata else MISSING,
            )
            for chunk in chunks
        ]
        return models.VectorStoreFileContentResponse(data=data, has_more=False, next_page=None)

    async def update(self, store_id: str, file_id: str, attributes: Any) -> models.VectorStoreFileObject:
        current = await self.get(store_id, file_id)
        await self.stack.database.execute(
            "UPDATE vector_store_files SET attributes = ? WHERE store_id = ? AND file_id = ?",
            (json.dumps(_attributes(attributes)), store_id, file_id),
        )
        if current.status.value == "completed":  # the chunks carry the attributes: re-ingest to refresh them
            await self.attach(store_id, file_id, attributes, current.chunking_strategy)
        return await self.get(store_id, file_id)

    async def detach(self, store_id: str, file_id: str) -> models.VectorStoreFileDeleteResponse:
        await self.get(store_id, file_id)
        await self.stack.database.execute(
            "DELETE FROM vector_store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id)
        )
        record = await self.vector_io.record(store_id)
        _, provider = self.vector_io.provider(record.provider_id)
        await provider.delete(store_id, file_id)
        return models.VectorStoreFileDeleteResponse(id=file_id, deleted=True)

    async def _work(self) -> None:
        while True:
            store_id, file_id = await self._queue.get()
            try:
                await self._ingest(store_id, file_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ingestion of %s into %s failed", file_id, store_id)
                await self._finish(
                    store_id, file_id, "failed", 0, {"code": "server_error", "message": "ingestion failed"}
                )
            finally:
                self._queue.task_done()

    async def _ingest(self, store_id: str, file_id: str) -> None:
        rows = await self.stack.database.fetch(
            f"SELECT {COLUMNS} FROM vector_store_files WHERE store_id = ? AND file_id = ? AND status = 'in_progress'",
            (store_id, file_id),
        )
        if not rows:
            return  # detached, or done by an earlier queue entry
        row = rows[0]
        record = await self.vector_io.record(store_id)
        _, provider = self.vector_io.provider(record.provider_id)
        try:
            meta = await self.files.provider().get(file_id)
            body = await self.files.provider().content(file_id)
            text = await asyncio.to_thread(ingest.extract_text, body.path, meta.filename, body.media_type)
        except ingest.UnsupportedFileError as exc:
            await self._finish(store_id, file_id, "failed", 0, {"code": "unsupported_file", "message": str(exc)})
            return
        except (ingest.InvalidFileError, NotFoundError) as exc:
            message = exc.message if isinstance(exc, PocketStackError) else str(exc)
            await self._finish(store_id, file_id, "failed", 0, {"code": "invalid_file", "message": message})
            return
        plan = ingest.chunking_plan(json.loads(row["chunking_strategy"]), self._auto_plan())
        pieces, tokenizer = await _chunked(self.vector_io.inference, text, record.embedding_model, plan)
        attributes = json.loads(row["attributes"])
        await provider.delete(store_id, file_id)  # a redo after a crash starts clean
        for start in range(0, len(pieces), INSERT_BATCH):
            if start and not await self._wanted(store_id, file_id):
                break  # cancelled or detached meanwhile: _finish clears what was stored
            batch = pieces[start : start + INSERT_BATCH]
            vectors = await self.vector_io.embed(record.embedding_model, [piece.text for piece in batch])
            chunks = [
                NewChunk(
                    chunk_id=f"{file_id}-{start + offset}",
                    content=piece.text,
                    metadata=attributes
                    | {"file_id": file_id, "filename": meta.filename, "chunk_index": start + offset},
                    chunk_metadata={
                        "document_id": file_id,
                        "chunk_id": f"{file_id}-{start + offset}",
                        "chunk_index": start + offset,
                        "chunk_tokenizer": tokenizer,
                        "content_token_count": round(piece.tokens),
                        "source": meta.filename,
                    },
                    embedding=vector,
                    file_id=file_id,
                    filename=meta.filename,
                )
                for offset, (piece, vector) in enumerate(zip(batch, vectors, strict=True))
            ]
            await provider.insert(store_id, record.embedding_dimension, chunks)
        await self._finish(store_id, file_id, "completed", sum(len(p.text.encode()) for p in pieces), None)

    async def _finish(self, store_id: str, file_id: str, status: str, usage: int, error: dict[str, str] | None) -> None:
        await self.stack.database.execute(
            "UPDATE vector_store_files SET status = ?, usage_bytes = ?, last_error = ?"
            " WHERE store_id = ? AND file_id = ? AND status = 'in_progress'",
            (status, usage, json.dumps(error) if error else None, store_id, file_id),
        )
        if status != "completed" or not await self._wanted(store_id, file_id, status):
            # failed part way, or detached, its store deleted or its batch cancelled meanwhile: leave nothing behind
            for instance in self.stack.providers_of("vector_io"):
                await cast(VectorIOProvider, instance.impl).delete(store_id, file_id)

    def _auto_plan(self) -> ingest.ChunkingPlan:
        params = self.stack.config.vector_stores.file_ingestion_params
        size = params.default_chunk_size_tokens or ingest.DEFAULT_MAX_TOKENS
        overlap = params.default_chunk_overlap_tokens
        overlap = ingest.DEFAULT_OVERLAP_TOKENS if overlap is None else overlap
        return ingest.ChunkingPlan(size, min(overlap, size // 2))

    async def _wanted(self, store_id: str, file_id: str, status: str = "in_progress") -> bool:
        rows = await self.stack.database.fetch(
            "SELECT 1 FROM vector_store_files WHERE store_id = ? AND file_id = ? AND status = ?",
            (store_id, file_id, status),
        )
        return bool(rows)


async def _chunked(
    inference: InferenceApi, text: str, model: str, plan: ingest.ChunkingPlan
) -> tuple[list[ingest.TextChunk], str]:
    """The text's chunks, sized in the embedding model's tokens and never over what it can embed;
    and what counted them (the model, or the estimate)."""
    spans = ingest.words(text)
    vocabulary = sorted({text[a:b] for a, b in spans})
    counts = await inference.count_tokens(model, vocabulary) if vocabulary else None
    if counts is None:
        return ingest.chunk_text(text, plan), f"estimate ({ingest.ESTIMATED_TOKENS_PER_WORD} tokens per word)"
    room = counts.context_length - counts.special_tokens
    if plan.max_tokens > room:  # e.g. auto's 800 on a 512-token encoder: windows the model can embed whole
        plan = ingest.ChunkingPlan(room, min(plan.overlap_tokens, room // 2))
    sizes = dict(zip(vocabulary, counts.counts, strict=True))
    return ingest.chunk_text(text, plan, sizes.__getitem__), model
