"""Vector stores (OpenAI-compatible) and raw chunk insert/query (Llama Stack): records, embedding, search.

The vector_io provider stores and searches chunks; this module keeps the stores' records in the
state database, embeds text through the Inference API with each store's embedding model, and
answers in OpenAI's and Llama Stack's shapes.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, cast

from pydantic import MISSING, ValidationError

from pocketstack._generated import models, protocols
from pocketstack.apis.files import FilesApi
from pocketstack.apis.inference.api import InferenceApi
from pocketstack.apis.vector_io.file_batches import FileBatches
from pocketstack.apis.vector_io.files import VectorStoreFiles
from pocketstack.config import ConfigError
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, PocketStackError, not_found_message
from pocketstack.modelstore.store import DEFAULT_EMBEDDING_NAME
from pocketstack.providers.vector_search import Hit, NewChunk, SearchQuery, VectorIOProvider, parse_filter
from pocketstack.security.access import VECTOR_STORE, Action
from pocketstack.storage.vector_stores import Source, StoredVectorStore, VectorStoreStore
from pocketstack.telemetry import vector_stores as telemetry
from pocketstack.wire.fields import given, plain

DEFAULT_EMBEDDING_MODEL = f"llama-cpp/{DEFAULT_EMBEDDING_NAME}"
EMBED_BATCH = 32
ACTIVITY_RESOLUTION_S = 60  # last_active_at moves at most this often on searches (a write per search costs)


def _expires_after(raw: Any) -> dict[str, Any]:
    """An update's `expires_after` (the spec leaves it a loose object so null can clear it), held to
    OpenAI's {anchor, days}: a 400 naming the field at fault, as the request's own fields get."""
    try:
        return models.VectorStoreExpiresAfter.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        found = [(".".join(["expires_after", *map(str, e["loc"])]), e["msg"]) for e in exc.errors(include_url=False)]
        problems = "; ".join(f"body field '{field}': {message}" for field, message in found)
        raise BadRequestError(f"Invalid request: {problems}", code="invalid_request", param=found[0][0]) from None


class VectorIOApi(protocols.VectorIO):
    def __init__(self, stack: Stack, inference: InferenceApi, files: FilesApi) -> None:
        self.stack = stack
        self.access = stack.access
        self.inference = inference
        self.files = VectorStoreFiles(stack, self, files)
        self.batches = FileBatches(stack, self)

    def provider(self, provider_id: str | None = None) -> tuple[str, VectorIOProvider]:
        default = self.stack.config.vector_stores.default_provider_id
        instance = self.stack.provider_for("vector_io", provider_id or default)
        return instance.config.provider_id, cast(VectorIOProvider, instance.impl)

    def default_embedding_model(self) -> str:
        """A new store's embedding model when none is named: vector_stores.default_embedding_model, else the
        bundled all-MiniLM-L6-v2."""
        default = self.stack.config.vector_stores.default_embedding_model
        return default.identifier if default is not None else DEFAULT_EMBEDDING_MODEL

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            answer = await self.inference.openai_embeddings(models.EmbeddingsRequest(model=model, input=batch))
            vectors += [cast(list[float], item.embedding) for item in answer.data]
        return vectors

    @property
    def store(self) -> VectorStoreStore:
        return VectorStoreStore(self.stack.database)

    async def record(self, store_id: str, action: Action | None = Action.READ) -> StoredVectorStore:
        """The store's record, if the request may do `action` to it (None: the server's own work, no
        check). One it may not see is as unknown as a missing one; Llama Stack answers an unknown store
        on these routes with 400 (OpenAI's BadRequestError)."""
        record = await self.store.get(store_id)
        missing = BadRequestError(not_found_message("vector store", store_id), code="vector_store_not_found")
        if record is None:
            raise missing
        if action is not None:
            self.access.check(action, VECTOR_STORE, store_id, record.owner, missing)
        return record

    async def usable(self, store_id: str, action: Action = Action.READ) -> StoredVectorStore:
        """The record of a store that may be searched or written: an expired one is refused."""
        record = await self.record(store_id, action)
        if record.expires_at is not None and record.expires_at <= time.time():
            raise BadRequestError(
                f"Vector store '{store_id}' expired (unused since {record.last_active_at}); it can only be read "
                "or deleted.",
                code="vector_store_expired",
            )
        return record

    async def touch(self, record: StoredVectorStore) -> None:
        """Move last_active_at (what expiry counts from), at most once a minute per store."""
        now = int(time.time())
        if now - record.last_active_at >= ACTIVITY_RESOLUTION_S:
            await self.store.touch(record.id, now)

    async def _object(self, record: StoredVectorStore) -> models.VectorStoreObject:
        _, provider = self.provider(record.provider_id)
        metadata = record.metadata | {
            "provider_id": record.provider_id,
            "embedding_model": record.embedding_model,
            "embedding_dimension": str(record.embedding_dimension),
        }
        expires_at = record.expires_at
        counts = await self.files.counts(record.id)
        status = "in_progress" if counts.in_progress else "completed"
        if expires_at is not None and expires_at <= time.time():
            status = "expired"
        return models.VectorStoreObject(
            id=record.id,
            created_at=record.created_at,
            name=record.name,
            usage_bytes=await provider.usage_bytes(record.id),
            file_counts=counts,
            status=status,
            expires_after=models.VectorStoreExpiresAfter(**record.expires_after) if record.expires_after else MISSING,
            expires_at=expires_at,
            last_active_at=record.last_active_at,
            metadata=metadata,
        )

    async def openai_create_vector_store(self, request: models.CreateVectorStoreRequest) -> models.VectorStoreObject:
        file_ids = list(dict.fromkeys(given(request.file_ids, [])))  # a file named twice is attached once
        self.access.check_create(VECTOR_STORE, "")
        strategy = await self.files.checked_strategy(request.chunking_strategy)  # bad chunking: no store is made
        expires = given(request.expires_after)
        store_id = await self._create(
            store_id=f"vs_{uuid.uuid4().hex}",
            name=given(request.name),
            provider_id=given(request.provider_id),
            model=given(request.embedding_model),
            dimension=given(request.embedding_dimension),
            metadata=plain(given(request.metadata, {})),
            expires_after=expires.model_dump(mode="json") if expires is not None else None,
            source="api",
        )
        # An unknown file is attached `failed` and the store made all the same (Llama Stack's openai_create_vector_store
        # attaches each file and logs a failure; the attach records the files API's error as the file's last_error).
        queued = []
        for file_id in file_ids:
            attachment = await self.files.attachment(store_id, file_id, None, strategy, missing_fails=True)
            await self.files.store.attach(attachment)
            if attachment.error is None:
                self.files.enqueue(store_id, [file_id])
                queued.append(file_id)
        await self.files.settle(store_id, queued)  # all together, at most attach_wait_s
        return await self._object(await self.record(store_id))

    async def _create(
        self,
        *,
        store_id: str,
        name: str | None,
        provider_id: str | None,
        model: str | None,
        dimension: int | None,
        metadata: dict[str, Any],
        expires_after: dict[str, Any] | None,
        source: Source,
    ) -> str:
        provider_id, _ = self.provider(provider_id)
        model = model or self.default_embedding_model()
        (probe,) = await self.embed(model, ["dimension probe"])
        if dimension is not None and dimension != len(probe):
            raise BadRequestError(
                f"embedding_dimension {dimension} does not match {model}, which makes {len(probe)}-dimensional "
                "vectors.",
                param="embedding_dimension",
            )
        now = int(time.time())
        await self.store.add(
            StoredVectorStore(
                id=store_id,
                provider_id=provider_id,
                name=name or store_id,
                created_at=now,
                last_active_at=now,
                embedding_model=model,
                embedding_dimension=len(probe),
                metadata=metadata,
                expires_after=expires_after,
                source=source,
                owner=self.access.owner() if source == "api" else None,
            )
        )
        return store_id

    async def sync_from_config(self) -> None:
        """Create the run config's `registered_resources.vector_stores` that do not exist yet."""
        for index, entry in enumerate(self.stack.config.registered_resources.vector_stores):
            existing = await self.store.get(entry.vector_store_id)
            where = f"registered_resources.vector_stores[{index}] ({entry.vector_store_id})"
            if existing is not None:
                model, provider_id = existing.embedding_model, existing.provider_id
                if entry.embedding_model not in (None, model) or entry.provider_id not in (None, provider_id):
                    raise ConfigError(
                        f"{where}: the store exists with embedding model {model} on provider {provider_id}; "
                        "a store cannot change either (delete it, or use another id)"
                    )
                await self.store.mark_from_config(entry.vector_store_id)
                continue
            try:
                await self._create(
                    store_id=entry.vector_store_id,
                    name=entry.vector_store_name,
                    provider_id=entry.provider_id,
                    model=entry.embedding_model,
                    dimension=entry.embedding_dimension,
                    metadata={},
                    expires_after=None,
                    source="config",
                )
            except PocketStackError as exc:
                raise ConfigError(f"{where}: {exc.message}") from exc

    async def openai_list_vector_stores(
        self, request: models.OpenaiListVectorStoresRequest
    ) -> models.ListVectorStoresResponse:
        order = given(request.order)
        records, has_more = await self.store.page(
            after=given(request.after),
            before=given(request.before),
            limit=request.limit,
            descending=order is None or order.value == "desc",
            visible=self.access.visibility(VECTOR_STORE),
        )
        data = [await self._object(record) for record in records]
        return models.ListVectorStoresResponse(
            data=data, first_id=data[0].id if data else "", last_id=data[-1].id if data else "", has_more=has_more
        )

    async def openai_retrieve_vector_store(
        self, request: models.OpenaiRetrieveVectorStoreRequest
    ) -> models.VectorStoreObject:
        return await self._object(await self.record(request.vector_store_id))

    async def openai_update_vector_store(
        self, request: models.OpenaiUpdateVectorStoreRequest
    ) -> models.VectorStoreObject:
        record = await self.record(request.vector_store_id, Action.UPDATE)
        metadata = record.metadata if request.metadata is MISSING else plain(request.metadata or {})
        expires = record.expires_after
        if request.expires_after is not MISSING:
            expires = None if request.expires_after is None else _expires_after(request.expires_after)
        await self.store.update(
            record.id,
            name=given(request.name, record.name),
            metadata=metadata,
            expires_after=expires,
            last_active_at=int(time.time()),
        )
        return await self._object(await self.record(record.id))

    async def openai_delete_vector_store(
        self, request: models.OpenaiDeleteVectorStoreRequest
    ) -> models.VectorStoreDeleteResponse:
        record = await self.record(request.vector_store_id, Action.DELETE)
        if record.source == "config":
            raise BadRequestError(
                f"Vector store '{record.id}' comes from the run config's registered_resources; remove it there "
                "(it would be created again at the next start).",
                code="config_resource",
            )
        _, provider = self.provider(record.provider_id)
        await provider.delete(record.id)  # chunks and vectors first: a crash leaves a store, never orphans
        await self.store.delete(record.id)
        return models.VectorStoreDeleteResponse(id=record.id, deleted=True)

    async def openai_search_vector_store(
        self, request: models.OpenaiSearchVectorStoreRequest
    ) -> models.VectorStoreSearchResponsePage:
        record = await self.usable(request.vector_store_id)
        raw = plain(request.query)
        queries = [raw] if isinstance(raw, str) else list(raw)
        text = " ".join(queries)
        rewrite = bool(given(request.rewrite_query, False))
        options = given(request.ranking_options)
        mode = request.search_mode.value if hasattr(request.search_mode, "value") else str(request.search_mode)
        k = request.max_num_results
        with telemetry.searching(
            record.id, text, mode=mode, max_results=k, ranker=_ranker(options), rewrite_query=rewrite
        ) as search:
            if rewrite:  # under the search's span: the chat call that rewrites is part of the search
                text = await self._rewritten(text)
                queries = [text]  # the answer's search_query is what was searched (Llama Stack's router)
                search.rewritten(text)
            hits = await self._search(record, text, mode=mode, k=k, where=given(request.filters), options=options)
            search.found(len(hits))
        data = [
            models.SearchResult(
                file_id=hit.chunk.file_id or "",
                filename=hit.chunk.filename or "",
                score=hit.score,
                attributes=hit.chunk.metadata,
                content=[models.SearchResultText(text=hit.chunk.content)],
            )
            for hit in hits
        ]
        return models.VectorStoreSearchResponsePage(search_query=queries, data=data, has_more=False, next_page=None)

    async def _rewritten(self, query: str) -> str:
        """The query as the configured chat model rewrites it (Llama Stack's core/routers/vector_io.py
        _rewrite_query_for_search: its prompt, one user message, max_tokens and temperature from the config)."""
        params = self.stack.config.vector_stores.rewrite_query_params
        if params is None or params.model is None:
            raise BadRequestError(
                "Query rewriting is not available: configure vector_stores.rewrite_query_params.model in the run "
                "config.",
                param="rewrite_query",
            )
        chat = models.ChatCompletionRequest.model_validate(
            {
                "model": params.model.identifier,
                "messages": [{"role": "user", "content": params.prompt.format(query=query)}],
                "max_tokens": params.max_tokens,
                "temperature": params.temperature,
                "stream": False,
                "store": False,  # internal calls stay out of the stored chat completions
            }
        )
        try:
            answer = await self.inference.openai_chat_completion(chat)
        except PocketStackError as exc:  # the request was fine, the server's setting or model was not: a 5xx
            failed = PocketStackError(
                f"Query rewrite failed: {params.model.identifier} (vector_stores.rewrite_query_params.model): "
                f"{exc.message}",
                code="query_rewrite_failed",
            )
            failed.status = max(exc.status, 500)  # a busy or unreachable model keeps its 503 / 504
            raise failed from exc
        content = answer.choices[0].message.content if isinstance(answer, models.ChatCompletion) else None
        rewritten = content.strip() if isinstance(content, str) else ""
        if not rewritten:
            raise PocketStackError(
                f"Query rewrite failed: {params.model.identifier} answered with no text.", code="query_rewrite_failed"
            )
        return rewritten

    async def _search(
        self, record: StoredVectorStore, text: str, *, mode: str, k: int, where: Any, options: Any
    ) -> list[Hit]:
        _, provider = self.provider(record.provider_id)
        if mode not in ("vector", "keyword", "hybrid"):
            raise BadRequestError("search_mode must be vector, keyword or hybrid", param="search_mode")
        ranker = _ranker(options)
        if ranker not in ("rrf", "weighted", "auto", "default-2024-11-15"):
            raise BadRequestError(
                f"ranking_options.ranker must be rrf or weighted, not '{ranker}'", param="ranking_options"
            )
        parsed = None if where is None else parse_filter(plain(where))
        vector = None
        if mode in ("vector", "hybrid"):
            (vector,) = await self.embed(record.embedding_model, [text])
        query = SearchQuery(
            vector=vector,
            text=text,
            mode=cast(Any, mode),
            k=k,
            where=parsed,
            ranker="weighted" if ranker == "weighted" else "rrf",
            alpha=given(getattr(options, "alpha", None), 0.5),
            impact_factor=given(getattr(options, "impact_factor", None), 60.0),
        )
        hits = await provider.search(record.id, query)
        await self.touch(record)
        threshold = given(getattr(options, "score_threshold", None))
        return [hit for hit in hits if threshold is None or hit.score >= threshold]

    async def insert_chunks(self, request: models.InsertChunksRequest) -> None:
        record = await self.usable(request.vector_store_id, Action.UPDATE)
        _, provider = self.provider(record.provider_id)
        chunks = list(request.chunks)
        texts = [content_text(chunk.content, f"chunks[{i}].content") for i, chunk in enumerate(chunks)]
        missing = [i for i, chunk in enumerate(chunks) if given(chunk.embedding) is None]
        embedded = await self.embed(record.embedding_model, [texts[i] for i in missing])
        vectors: dict[int, list[float]] = dict(zip(missing, embedded, strict=True))
        ttl = given(request.ttl_seconds)  # PocketStack's addition: Llama Stack 0.7.1's providers ignore it
        expires_at = time.time() + ttl if ttl is not None else None
        new = []
        for index, chunk in enumerate(chunks):
            metadata = plain(given(chunk.metadata, {}))
            content = texts[index]
            chunk_id = given(chunk.chunk_id) or _chunk_id(content, metadata.get("document_id"))
            new.append(
                NewChunk(
                    chunk_id=chunk_id,
                    content=content,
                    metadata=metadata,
                    chunk_metadata=plain(given(chunk.chunk_metadata, {})),
                    embedding=vectors.get(index) or list(given(chunk.embedding)),
                    file_id=metadata.get("file_id") if isinstance(metadata.get("file_id"), str) else None,
                    expires_at=expires_at,
                )
            )
        with telemetry.inserting(record.id, len(new)):
            await provider.insert(record.id, record.embedding_dimension, new)
        await self.touch(record)

    async def query_chunks(self, request: models.QueryChunksRequest) -> models.QueryChunksResponse:
        record = await self.usable(request.vector_store_id)
        params = plain(given(request.params, {}))
        mode = params.get("mode", "vector")
        if mode not in ("vector", "keyword", "hybrid"):
            raise BadRequestError("params.mode must be vector, keyword or hybrid", param="params")
        k = params.get("max_chunks", 10)
        if not isinstance(k, int) or not 1 <= k <= 1000:
            raise BadRequestError("params.max_chunks must be an integer from 1 to 1000", param="params")
        options = models.SearchRankingOptions(
            ranker=params.get("ranker", "rrf"), score_threshold=params.get("score_threshold", MISSING)
        )
        text = content_text(request.query, "query")
        if not text.strip():
            raise BadRequestError("query is empty", param="query")
        with telemetry.searching(record.id, text, mode=mode, max_results=k, ranker=_ranker(options)) as search:
            hits = await self._search(record, text, mode=mode, k=k, where=params.get("filters"), options=options)
            search.found(len(hits))
        chunks = [
            models.Chunk(
                content=hit.chunk.content,
                chunk_id=hit.chunk.chunk_id,
                metadata=hit.chunk.metadata,
                chunk_metadata=hit.chunk.chunk_metadata,
            )
            for hit in hits
        ]
        return models.QueryChunksResponse(chunks=chunks, scores=[hit.score for hit in hits])

    # Files attached to stores (files.py does the work, storage/vector_store_files.py keeps the rows).

    async def openai_attach_file_to_vector_store(
        self, request: models.OpenaiAttachFileToVectorStoreRequest
    ) -> models.VectorStoreFileObject:
        return await self.files.attach(
            request.vector_store_id, request.file_id, request.attributes, request.chunking_strategy
        )

    async def openai_list_files_in_vector_store(
        self, request: models.OpenaiListFilesInVectorStoreRequest
    ) -> models.ListVectorStoreFilesResponse:
        order, status = given(request.order), given(request.filter)
        return await self.files.list(
            request.vector_store_id,
            after=given(request.after),
            before=given(request.before),
            limit=request.limit,
            descending=order is None or order.value == "desc",
            status=status.value if status is not None else None,
        )

    async def openai_retrieve_vector_store_file(
        self, request: models.OpenaiRetrieveVectorStoreFileRequest
    ) -> models.VectorStoreFileObject:
        return await self.files.get(request.vector_store_id, request.file_id)

    async def openai_update_vector_store_file(
        self, request: models.OpenaiUpdateVectorStoreFileRequest
    ) -> models.VectorStoreFileObject:
        return await self.files.update(request.vector_store_id, request.file_id, request.attributes)

    async def openai_delete_vector_store_file(
        self, request: models.OpenaiDeleteVectorStoreFileRequest
    ) -> models.VectorStoreFileDeleteResponse:
        return await self.files.detach(request.vector_store_id, request.file_id)

    async def openai_retrieve_vector_store_file_contents(
        self, request: models.OpenaiRetrieveVectorStoreFileContentsRequest
    ) -> models.VectorStoreFileContentResponse:
        return await self.files.content(
            request.vector_store_id,
            request.file_id,
            with_embeddings=bool(request.include_embeddings),
            with_metadata=bool(request.include_metadata),
        )

    # File batches (file_batches.py).

    async def openai_create_vector_store_file_batch(
        self, request: models.OpenaiCreateVectorStoreFileBatchRequest
    ) -> models.VectorStoreFileBatchObject:
        return await self.batches.create(request.vector_store_id, request)

    async def openai_retrieve_vector_store_file_batch(
        self, request: models.OpenaiRetrieveVectorStoreFileBatchRequest
    ) -> models.VectorStoreFileBatchObject:
        return await self.batches.get(request.vector_store_id, request.batch_id)

    async def openai_cancel_vector_store_file_batch(
        self, request: models.OpenaiCancelVectorStoreFileBatchRequest
    ) -> models.VectorStoreFileBatchObject:
        return await self.batches.cancel(request.vector_store_id, request.batch_id)

    async def openai_list_files_in_vector_store_file_batch(
        self, request: models.OpenaiListFilesInVectorStoreFileBatchRequest
    ) -> models.ListVectorStoreFilesResponse:
        return await self.batches.list_files(request.vector_store_id, request.batch_id, request)


def content_text(value: Any, param: str) -> str:
    """The text of a string or of Llama Stack's interleaved content (text items joined by spaces)."""
    value = plain(value)
    if isinstance(value, str):
        return value
    texts = []
    for item in value if isinstance(value, list) else [value]:
        kind = getattr(item, "type", None)
        text = given(getattr(item, "text", None))
        if getattr(kind, "value", kind) != "text" or not isinstance(text, str):
            raise BadRequestError(
                f"{param}: only text can be embedded here (items of type text with a `text`)", param=param
            )
        texts.append(text)
    return " ".join(texts)


def _ranker(options: Any) -> str:
    """ranking_options.ranker as asked (rrf unless named)."""
    return str(given(getattr(options, "ranker", None), "rrf"))


def _chunk_id(content: str, document_id: Any) -> str:
    digest = hashlib.sha256(f"{document_id}\x00{content}".encode()).hexdigest()
    return str(uuid.UUID(digest[:32]))
