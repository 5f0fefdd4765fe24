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
from typing import TYPE_CHECKING, Any

from pocketstack import ingest
from pocketstack._generated import models
from pocketstack.apis.files import FilesApi
from pocketstack.errors import BadRequestError, NotFoundError, PocketStackError
from pocketstack.fields import given, plain
from pocketstack.providers.vector_search import NewChunk
from pocketstack.stack import Stack

if TYPE_CHECKING:
    from pocketstack.apis.vector_io import VectorIOApi

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
        """Resume what a stopped server left in progress, then work the queue in the background."""
        rows = await self.stack.database.fetch(
            "SELECT store_id, file_id FROM vector_store_files WHERE status = 'in_progress' ORDER BY seq"
        )
        for row in rows:
            self._queue.put_nowait((row["store_id"], row["file_id"]))
        if rows:
            log.info("resuming ingestion of %d files", len(rows))
        self._worker = asyncio.create_task(self._work(), name="pocketstack-ingestion")

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
        found = {row["status"]: row["n"] for row in rows}
        return models.VectorStoreFileCounts(
            completed=found.get("completed", 0),
            cancelled=found.get("cancelled", 0),
            failed=found.get("failed", 0),
            in_progress=found.get("in_progress", 0),
            total=sum(found.values()),
        )

    async def attach(self, store_id: str, file_id: str, attributes: Any, strategy: Any) -> models.VectorStoreFileObject:
        await self.vector_io.record(store_id)
        await self.files.provider().get(file_id)  # 404 for an unknown file
        chunking = plain(given(strategy)) or {"type": "auto"}
        try:
            ingest.chunking_plan(chunking)
        except ValueError as exc:
            raise BadRequestError(f"chunking_strategy: {exc}", param="chunking_strategy") from exc
        await self.stack.database.execute(
            "INSERT INTO vector_store_files (store_id, file_id, status, attributes, chunking_strategy, created_at)"
            " VALUES (?, ?, 'in_progress', ?, ?, ?) ON CONFLICT (store_id, file_id) DO UPDATE SET"
            " status = 'in_progress', attributes = excluded.attributes, chunking_strategy = excluded.chunking_strategy,"
            " last_error = NULL",
            (store_id, file_id, json.dumps(_attributes(attributes)), json.dumps(chunking), int(time.time())),
        )
        self._queue.put_nowait((store_id, file_id))
        return await self.get(store_id, file_id)

    async def get(self, store_id: str, file_id: str) -> models.VectorStoreFileObject:
        rows = await self.stack.database.fetch(
            f"SELECT {COLUMNS} FROM vector_store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id)
        )
        if not rows:
            await self.vector_io.record(store_id)
            raise BadRequestError(f"File '{file_id}' is not attached to vector store '{store_id}'.", code="not_found")
        return _file_object(rows[0])

    async def list(
        self, store_id: str, *, after: str | None, limit: int, descending: bool, status: str | None
    ) -> models.ListVectorStoreFilesResponse:
        await self.vector_io.record(store_id)
        clauses, params = ["store_id = ?"], [store_id]
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if after is not None:
            cursor = await self.stack.database.fetch(
                "SELECT seq FROM vector_store_files WHERE store_id = ? AND file_id = ?", (store_id, after)
            )
            if not cursor:
                raise BadRequestError(f"No attached file '{after}' to continue after.", param="after")
            clauses.append("seq < ?" if descending else "seq > ?")
            params.append(cursor[0]["seq"])
        rows = await self.stack.database.fetch(
            f"SELECT {COLUMNS} FROM vector_store_files WHERE {' AND '.join(clauses)}"
            f" ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT ?",
            (*params, limit + 1),
        )
        data = [_file_object(row) for row in rows[:limit]]
        return models.ListVectorStoreFilesResponse(
            data=data,
            first_id=data[0].id if data else "",
            last_id=data[-1].id if data else "",
            has_more=len(rows) > limit,
        )

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
        _, provider = self.vector_io.provider(record["provider_id"])
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
        _, provider = self.vector_io.provider(record["provider_id"])
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
        pieces = ingest.chunk_text(text, ingest.chunking_plan(json.loads(row["chunking_strategy"])))
        attributes = json.loads(row["attributes"])
        await provider.delete(store_id, file_id)  # a redo after a crash starts clean
        for start in range(0, len(pieces), INSERT_BATCH):
            batch = pieces[start : start + INSERT_BATCH]
            vectors = await self.vector_io.embed(record["embedding_model"], batch)
            chunks = [
                NewChunk(
                    chunk_id=f"{file_id}-{start + offset}",
                    content=piece,
                    metadata=attributes
                    | {"file_id": file_id, "filename": meta.filename, "chunk_index": start + offset},
                    chunk_metadata={"document_id": file_id, "chunk_index": start + offset},
                    embedding=vector,
                    file_id=file_id,
                    filename=meta.filename,
                )
                for offset, (piece, vector) in enumerate(zip(batch, vectors, strict=True))
            ]
            await provider.insert(store_id, record["embedding_dimension"], chunks)
        await self._finish(store_id, file_id, "completed", sum(len(p.encode()) for p in pieces), None)

    async def _finish(self, store_id: str, file_id: str, status: str, usage: int, error: dict[str, str] | None) -> None:
        await self.stack.database.execute(
            "UPDATE vector_store_files SET status = ?, usage_bytes = ?, last_error = ?"
            " WHERE store_id = ? AND file_id = ? AND status = 'in_progress'",
            (status, usage, json.dumps(error) if error else None, store_id, file_id),
        )
        still = await self.stack.database.fetch(
            "SELECT 1 FROM vector_store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id)
        )
        if not still:  # detached (or its store deleted) while being ingested: leave nothing behind
            for instance in self.stack.providers_of("vector_io"):
                await instance.impl.delete(store_id, file_id)  # type: ignore[attr-defined]
