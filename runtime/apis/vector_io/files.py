"""Files attached to vector stores: the routes, and the background ingestion behind them.

Attaching records the file as `in_progress` and queues it; one worker extracts, chunks, embeds
and stores it, then marks it `completed` or `failed` with a reason. The request waits for that up to
`vector_stores.attach_wait_s` and answers the status then (Llama Stack answers once ingestion is
over): small files come back `completed`, large ones `in_progress`, their ingestion going on. A file's chunks have ids
derived from the file and their position, and a file's old chunks are removed before it is
(re)ingested, so ingestion can be redone any number of times: rows still `in_progress` when the
server stops (even by SIGKILL) are queued again at the next start, without duplicates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from pydantic import MISSING

from pocketstack._generated import models
from pocketstack.apis.files import FilesApi
from pocketstack.apis.inference.api import InferenceApi
from pocketstack.apis.vector_io import contextual, ingest
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, InsufficientStorageError, NotFoundError, PocketStackError, disk_full
from pocketstack.providers.vector_search import NewChunk, VectorIOProvider
from pocketstack.security.access import Action
from pocketstack.security.principal import User
from pocketstack.storage.owners import Owner
from pocketstack.storage.vector_store_files import (
    FileCounts,
    FileStatus,
    NewAttachment,
    StoredFile,
    VectorStoreFileStore,
)
from pocketstack.storage.vector_stores import StoredVectorStore
from pocketstack.telemetry import vector_stores as telemetry
from pocketstack.telemetry.serving import Reading
from pocketstack.wire.fields import given, plain

if TYPE_CHECKING:
    from pocketstack.apis.vector_io.api import VectorIOApi

log = logging.getLogger(__name__)
CHUNKS_PER_WRITE = 64  # embedded and stored together; cancellation is checked between writes
CONTEXTUAL_CHUNKS_PER_WRITE = 12  # a chat call each: check for cancellation more often
FAIL_RETRIES = 600  # a failed ingestion on a full disk: seconds to wait for room to record it
JOINT_MARGIN_TOKENS = 2  # a context and its chunk, counted word by word, may tokenize a little longer together
MAX_ATTRIBUTES = 16


def _file_object(stored: StoredFile) -> models.VectorStoreFileObject:
    return models.VectorStoreFileObject(
        id=stored.file_id,
        attributes=stored.attributes,
        chunking_strategy=stored.chunking_strategy,
        created_at=stored.created_at,
        last_error=models.VectorStoreFileLastError(**stored.last_error) if stored.last_error else None,
        status=models.VectorStoreFileStatus(stored.status),
        usage_bytes=stored.usage_bytes,
        vector_store_id=stored.store_id,
    )


def file_counts(counts: FileCounts) -> models.VectorStoreFileCounts:
    return models.VectorStoreFileCounts(**dataclasses.asdict(counts), total=counts.total)


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
        # Each file with the request that queued it (None: resumed at start): its ingestion's trace links
        # to that request's span and belongs to its user.
        self._queue: asyncio.Queue[tuple[str, str, telemetry.Origin | None]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._waiters: dict[tuple[str, str], list[asyncio.Future[None]]] = {}

    @property
    def store(self) -> VectorStoreFileStore:
        return VectorStoreFileStore(self.stack.database)

    async def start(self) -> None:
        """Drop files deleted meanwhile, resume what a stopped server left in progress, then work the queue."""
        if self.stack.providers_of("files"):
            files = self.files.provider()
            files.on_removed(self.forget_files)
            gone = []
            for file_id in await self.store.attached_file_ids():  # files that expired while the server was stopped
                try:
                    await files.get(file_id)
                except NotFoundError:
                    gone.append(file_id)
            if gone:
                await self.forget_files(gone)
        waiting = await self.store.in_progress()
        for store_id, file_id in waiting:
            self._queue.put_nowait((store_id, file_id, None))
        if waiting:
            log.info("resuming ingestion of %d files", len(waiting))
        self._worker = asyncio.create_task(self._work(), name="pocketstack-ingestion")
        telemetry.store_files.add(self._file_counts)
        telemetry.store_bytes.add(self._file_bytes)

    async def forget_files(self, file_ids: list[str]) -> None:
        """Detach deleted files from every store: chunks and vectors first, then the attachment rows."""
        attachments = await self.store.attachments_of(file_ids)
        for store_id, file_id in attachments:
            record = await self.vector_io.record(store_id, None)
            _, provider = self.vector_io.provider(record.provider_id)
            await provider.delete(store_id, file_id)
        if attachments:
            await self.store.detach_everywhere(file_ids)
            log.info("detached %d deleted files from vector stores", len(attachments))

    async def stop(self) -> None:
        telemetry.store_files.remove(self._file_counts)
        telemetry.store_bytes.remove(self._file_bytes)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until every queued file is done (tests and benchmarks)."""
        await self._queue.join()

    def _file_counts(self) -> list[Reading]:
        """The files gauge (on the metrics collector's thread, never the event loop)."""
        return [telemetry.reading(store_id, files) for store_id, files, _ in self.store.totals_blocking()]

    def _file_bytes(self) -> list[Reading]:
        return [telemetry.reading(store_id, usage) for store_id, _, usage in self.store.totals_blocking()]

    async def counts(self, store_id: str) -> models.VectorStoreFileCounts:
        return file_counts(await self.store.counts(store_id))

    async def attach(
        self, store_id: str, file_id: str, attributes: Any, strategy: Any, *, wait: bool = True
    ) -> models.VectorStoreFileObject:
        """Attach and queue the file; with `wait`, answer once it is ingested or `attach_wait_s` ran out."""
        await self.vector_io.usable(store_id, Action.UPDATE)
        await self.store.attach(await self.attachment(store_id, file_id, attributes, strategy))
        self.enqueue(store_id, [file_id])
        if wait:
            await self.settle(store_id, [file_id])
        return await self.get(store_id, file_id)

    async def attachment(
        self, store_id: str, file_id: str, attributes: Any, strategy: Any, *, missing_fails: bool = False
    ) -> NewAttachment:
        """A checked file to attach: queue it once it is stored. An unknown file is a 404, or with
        `missing_fails` an attachment already `failed` (a file batch: Llama Stack's
        `openai_attach_file_to_vector_store` records the files API's error as the file's last_error)."""
        error = None
        try:
            await self.files.checked(file_id)  # another's file is as unknown as a missing one
        except NotFoundError as exc:
            if not missing_fails:
                raise
            error = {"code": "server_error", "message": exc.message}
        chunking = await self.checked_strategy(strategy)
        return NewAttachment(store_id, file_id, _attributes(attributes), chunking, int(time.time()), error)

    async def checked_strategy(self, strategy: Any) -> dict[str, Any]:
        """The chunking_strategy as stored (a contextual one with its defaults filled), or a 400 saying what is
        wrong with it: bad sizes, or a contextual one with no chat model (given, or configured) to write contexts."""
        chunking: dict[str, Any] = plain(given(strategy)) or {"type": "auto"}
        try:
            ingest.chunking_plan(chunking)
        except ValueError as exc:
            raise BadRequestError(f"chunking_strategy: {exc}", param="chunking_strategy") from exc
        if chunking.get("type") != "contextual":
            return chunking
        settings = contextual.parse(chunking)
        model = settings.model(self.stack.config.vector_stores)
        if model is None:
            raise BadRequestError(contextual.MISSING_MODEL, param="chunking_strategy")
        source = (
            "chunking_strategy.contextual.model_id"
            if settings.model_id
            else ("vector_stores.contextual_retrieval_params.model")
        )
        try:
            found = await self.vector_io.inference.models.lookup(model)
        except NotFoundError as exc:
            raise BadRequestError(f"{source}: {exc.message}", param="chunking_strategy") from exc
        if found.body["model_type"] != "llm":
            raise BadRequestError(
                f"{source}: '{model}' is a model of type {found.body['model_type']}; contextual chunking needs an "
                "llm (chat) model.",
                param="chunking_strategy",
            )
        return settings.strategy()

    def enqueue(self, store_id: str, file_ids: Iterable[str]) -> None:
        origin = telemetry.Origin()
        for file_id in file_ids:
            self._queue.put_nowait((store_id, file_id, origin))

    async def settle(self, store_id: str, file_ids: Iterable[str]) -> None:
        """Wait until the worker is done with these queued files, at most `attach_wait_s`. The wait
        never cancels an ingestion: what is left goes on in the background."""
        limit = self.stack.config.vector_stores.attach_wait_s
        if limit <= 0 or self._worker is None or self._worker.done():
            return
        loop = asyncio.get_running_loop()
        waiting: list[tuple[tuple[str, str], asyncio.Future[None]]] = []
        for file_id in file_ids:
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault((store_id, file_id), []).append(future)
            waiting.append(((store_id, file_id), future))
        if not waiting:
            return
        try:
            await asyncio.wait([future for _, future in waiting], timeout=limit)
        finally:
            for key, future in waiting:  # the ones the worker has not reached yet
                if not future.done() and future in (futures := self._waiters.get(key, [])):
                    futures.remove(future)
                    if not futures:
                        del self._waiters[key]

    def _done_with(self, store_id: str, file_id: str) -> None:
        for future in self._waiters.pop((store_id, file_id), []):
            if not future.done():
                future.set_result(None)

    async def get(self, store_id: str, file_id: str, action: Action = Action.READ) -> models.VectorStoreFileObject:
        """An attached file: it follows its store (the request must be able to do `action` to the store)."""
        await self.vector_io.record(store_id, action)
        stored = await self.store.get(store_id, file_id)
        if stored is None:
            raise BadRequestError(f"File '{file_id}' is not attached to vector store '{store_id}'.", code="not_found")
        return _file_object(stored)

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
        found, has_more = await self.store.page(
            store_id,
            after=after,
            before=before,
            limit=limit,
            descending=descending,
            status=status,
            batch_id=batch_id,
        )
        data = [_file_object(stored) for stored in found]
        return models.ListVectorStoreFilesResponse(
            data=data, first_id=data[0].id if data else "", last_id=data[-1].id if data else "", has_more=has_more
        )

    async def content(
        self, store_id: str, file_id: str, *, with_embeddings: bool, with_metadata: bool
    ) -> models.VectorStoreFileContentResponse:
        await self.get(store_id, file_id)
        record = await self.vector_io.record(store_id, None)
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
        """Replace the file's attributes, and those its chunks carry, in place: nothing is embedded again and the
        status stays (Llama Stack's openai_update_vector_store_file). A file still being ingested gets them on the
        chunks it stores after, and _ingest brings the ones stored before up to date."""
        await self.get(store_id, file_id, Action.UPDATE)
        replaced = _attributes(attributes)
        await self.store.set_attributes(store_id, file_id, replaced)
        record = await self.vector_io.record(store_id)
        _, provider = self.vector_io.provider(record.provider_id)
        await provider.set_file_attributes(store_id, file_id, replaced)
        return await self.get(store_id, file_id)

    async def detach(self, store_id: str, file_id: str) -> models.VectorStoreFileDeleteResponse:
        await self.get(store_id, file_id, Action.DELETE)
        await self.store.detach(store_id, file_id)
        record = await self.vector_io.record(store_id, None)
        _, provider = self.vector_io.provider(record.provider_id)
        await provider.delete(store_id, file_id)
        return models.VectorStoreFileDeleteResponse(id=file_id, deleted=True)

    async def _work(self) -> None:
        while True:
            store_id, file_id, origin = await self._queue.get()
            try:
                await self._ingest(store_id, file_id, origin)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("ingestion of %s into %s failed", file_id, store_id)
                message = InsufficientStorageError().message if disk_full(exc) else "ingestion failed"
                await self._fail(store_id, file_id, message)
            finally:
                self._queue.task_done()
                self._done_with(store_id, file_id)

    async def _ingest(self, store_id: str, file_id: str, origin: telemetry.Origin | None) -> None:
        attached = await self.store.get(store_id, file_id)
        if attached is None or attached.status != "in_progress":
            return  # detached, or done by an earlier queue entry
        record = await self.vector_io.record(store_id, None)
        # Resumed at start, the request is gone: the ingestion is its store owner's.
        user = origin.user if origin is not None else _user(record.owner)
        strategy = str(attached.chunking_strategy.get("type", "auto"))
        link = origin.span if origin is not None else None
        with telemetry.ingesting(store_id, file_id, strategy, link=link, user=user) as ingestion:
            await self._ingest_file(attached, record, ingestion)

    async def _ingest_file(
        self, attached: StoredFile, record: StoredVectorStore, ingestion: telemetry.Ingestion
    ) -> None:
        store_id, file_id = attached.store_id, attached.file_id
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
        strategy = attached.chunking_strategy
        situator = None
        try:
            if strategy.get("type") == "contextual":
                situator = self._situator(text, contextual.parse(strategy))
        except contextual.ContextualError as exc:
            await self._finish(store_id, file_id, "failed", 0, {"code": "server_error", "message": str(exc)})
            return
        plan = ingest.chunking_plan(strategy, ingest.auto_plan(self.stack.config.vector_stores.file_ingestion_params))
        reserve = contextual.CONTEXT_MAX_TOKENS if situator is not None else 0
        pieces, tokenizer = await ingest.chunk_document(
            self.vector_io.inference, text, record.embedding_model, plan, reserve
        )
        counted = sum(piece.tokens for piece in pieces) if tokenizer == record.embedding_model else None
        ingestion.chunked(len(pieces), plan.max_tokens, plan.overlap_tokens, counted)
        attributes = attached.attributes
        await provider.delete(store_id, file_id)  # a redo after a crash starts clean
        step = CONTEXTUAL_CHUNKS_PER_WRITE if situator is not None else CHUNKS_PER_WRITE
        usage = 0
        for start in range(0, len(pieces), step):
            if start and not await self._wanted(store_id, file_id):
                break  # cancelled or detached meanwhile: _finish clears what was stored
            batch = pieces[start : start + step]
            texts = [piece.text for piece in batch]
            if situator is not None:
                texts = await _situated(self.vector_io.inference, situator, batch, record.embedding_model)
                if situator.tally.failed == situator.tally.total:
                    break  # not one context yet: the verdict below fails the file without trying the rest
            vectors = await self.vector_io.embed(record.embedding_model, texts)
            chunks = []
            for offset, (piece, content, vector) in enumerate(zip(batch, texts, vectors, strict=True)):
                chunk_id, chunk_metadata = ingest.chunk_fields(file_id, meta.filename, start + offset, piece, tokenizer)
                chunks.append(
                    NewChunk(
                        chunk_id=chunk_id,
                        content=content,
                        metadata=attributes
                        | {"file_id": file_id, "filename": meta.filename, "chunk_index": start + offset},
                        chunk_metadata=chunk_metadata,
                        embedding=vector,
                        file_id=file_id,
                        filename=meta.filename,
                    )
                )
            with telemetry.inserting(store_id, len(chunks)):
                await provider.insert(store_id, record.embedding_dimension, chunks)
            usage += sum(len(content.encode()) for content in texts)
        if situator is not None:
            try:
                situator.tally.verdict(situator.model)
            except contextual.ContextualError as exc:
                await self._finish(store_id, file_id, "failed", 0, {"code": "server_error", "message": str(exc)})
                return
        latest = await self.store.get(store_id, file_id)
        if latest is not None and latest.attributes != attributes:  # updated while the chunks were being stored
            await provider.set_file_attributes(store_id, file_id, latest.attributes)
        await self._finish(store_id, file_id, "completed", usage, None)

    def _situator(self, document: str, settings: contextual.ContextualSettings) -> contextual.Situator:
        config = self.stack.config.vector_stores
        model = settings.model(config)  # checked at attach; the config may have changed since (a restart)
        if model is None:
            raise contextual.ContextualError(contextual.MISSING_MODEL)
        contextual.check_document(document, config)
        return contextual.Situator(self.vector_io.inference.openai_chat_completion, model, document, settings, config)

    async def _finish(
        self, store_id: str, file_id: str, status: FileStatus, usage: int, error: dict[str, str] | None
    ) -> None:
        await self.store.finish(store_id, file_id, status, usage, error)
        kept = status == "completed" and await self._wanted(store_id, file_id, status)
        if (ingestion := telemetry.ingestion()) is not None:
            ended = status if kept or status != "completed" else telemetry.CANCELLED
            ingestion.finished(ended, usage, error["code"] if error else None)
        if not kept:
            # failed part way, or detached, its store deleted or its batch cancelled meanwhile: leave nothing behind
            for instance in self.stack.providers_of("vector_io"):
                await cast(VectorIOProvider, instance.impl).delete(store_id, file_id)

    async def _fail(self, store_id: str, file_id: str, message: str) -> None:
        """Mark the file failed. On a full disk that write fails too (SQLite needs room even to record a failure):
        try again every second until there is room, rather than leave the file in_progress while the server runs
        (the worker waits meanwhile; every other file would fail alike). Any other failure is logged, and the
        worker lives on: the file stays in_progress and a restart resumes it."""
        for _ in range(FAIL_RETRIES):
            try:
                await self._finish(store_id, file_id, "failed", 0, {"code": "server_error", "message": message})
                return
            except Exception as exc:
                if not disk_full(exc):
                    log.exception("could not mark %s in %s failed", file_id, store_id)
                    return
                await asyncio.sleep(1)
        log.error("could not mark %s in %s failed: the disk stayed full", file_id, store_id)

    async def _wanted(self, store_id: str, file_id: str, status: FileStatus = "in_progress") -> bool:
        return await self.store.has_status(store_id, file_id, status)


def _user(owner: Owner | None) -> User | None:
    return None if owner is None else User(owner.principal, {k: list(v) for k, v in owner.attributes.items()})


async def _situated(
    inference: InferenceApi, situator: contextual.Situator, pieces: list[ingest.TextChunk], embedding_model: str
) -> list[str]:
    """The pieces with their contexts before them, a context cut short where the two would not fit in
    what the embedding model can embed (contexts are counted in the chat model's tokens, not its)."""
    contexts = await situator.contexts([piece.text for piece in pieces])
    spans = [ingest.words(context) for context in contexts]
    vocabulary = sorted({context[a:b] for context, found in zip(contexts, spans, strict=True) for a, b in found})
    counts = await inference.count_tokens(embedding_model, vocabulary) if vocabulary else None
    if counts is None:
        return [contextual.joined(context, piece.text) for context, piece in zip(contexts, pieces, strict=True)]
    sizes = dict(zip(vocabulary, counts.counts, strict=True))
    room = counts.context_length - counts.special_tokens - JOINT_MARGIN_TOKENS
    texts = []
    for context, found, piece in zip(contexts, spans, pieces, strict=True):
        kept, used = 0, piece.tokens
        for a, b in found:
            if used + sizes[context[a:b]] > room:
                break
            used += sizes[context[a:b]]
            kept = b
        texts.append(contextual.joined(context[:kept], piece.text))
    return texts
