"""File processors: a file (uploaded in the form, or an uploaded file's id) into text chunks, nothing stored.

One code path with vector-store ingestion: the text comes from the same extractor
(providers/file_processing.py, behind the file_processors provider) and is cut by the same chunker
(apis/vector_io/ingest.py: `chunk_document`, `chunk_fields`), so a file processed here with a strategy
gives the chunks a vector store holds after attaching it with that strategy.

Sizes are counted in the tokens of the default embedding model, the one a new vector store gets when none
is named (vector_stores.default_embedding_model, else the bundled all-MiniLM-L6-v2): the chunks fit what it
embeds, as ingestion's do. Without it (not registered), words are estimated at 1.3 tokens, as for a remote
model that cannot count. As in Llama Stack: no chunking_strategy means the whole text in one chunk;
`auto` and `static` are the strategies this route takes (`contextual` needs a vector store's ingestion).
The API is served when the run config lists `file_processors` with a provider (Llama Stack's `inline::pypdf`,
in the edge distribution); without one, the route answers 503 saying how to enable it.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, cast

from pocketstack._generated import models, protocols
from pocketstack.apis.files import FilesApi
from pocketstack.apis.vector_io import ingest
from pocketstack.apis.vector_io.api import VectorIOApi
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, NotFoundError, PayloadTooLargeError
from pocketstack.providers.file_processing import FileProcessorProvider, InvalidFileError, UnsupportedFileError
from pocketstack.web.uploads import Upload
from pocketstack.wire.fields import given


def _json_object(text: str | None, param: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadRequestError(f"Invalid JSON in {param}: {exc}", param=param) from exc
    if not isinstance(value, dict):
        raise BadRequestError(f"{param} must be a JSON object, not a list, string, or other type", param=param)
    return value


def chunking_plan(strategy: dict[str, Any] | None, auto: ingest.ChunkingPlan) -> ingest.ChunkingPlan:
    """The form's chunking_strategy: none, the whole text; `auto` or `static`, as ingestion reads them."""
    if strategy is None:
        return ingest.WHOLE
    if strategy.get("type") not in ("auto", "static"):
        raise BadRequestError(
            f"Invalid chunking strategy type: {strategy.get('type')} (auto or static)", param="chunking_strategy"
        )
    try:
        return ingest.chunking_plan(strategy, auto)
    except ValueError as exc:
        raise BadRequestError(f"Invalid chunking strategy: {exc}", param="chunking_strategy") from exc


class FileProcessorsApi(protocols.FileProcessors):
    def __init__(self, stack: Stack, files: FilesApi, vector_io: VectorIOApi) -> None:
        self.stack = stack
        self.files = files
        self.vector_io = vector_io

    async def process_file(self, request: models.ProcessFileForm, file: Upload | None) -> models.ProcessFileResponse:
        started = time.monotonic()
        file_id: str | None = given(request.file_id) or None
        if (file is None) == (file_id is None):
            raise BadRequestError(
                "Give exactly one of `file` (a multipart file part) and `file_id` (an uploaded file).",
                code="invalid_request",
                param="file",
            )
        auto = ingest.auto_plan(self.stack.config.vector_stores.file_ingestion_params)
        plan = chunking_plan(_json_object(given(request.chunking_strategy), "chunking_strategy"), auto)
        _json_object(given(request.options), "options")  # checked; inline::pypdf takes none
        instance = self.stack.provider_for("file_processors", None, example="inline::pypdf")
        processor = cast(FileProcessorProvider, instance.impl)
        if file is not None:
            path, filename, media_type, size = file.path, file.filename, file.content_type, file.size
        else:
            assert file_id is not None
            found = await self.files.checked(file_id)  # an unknown (or unreadable) file: 404
            body = await self.files.provider().content(file_id)
            path, filename, media_type, size = body.path, found.filename, body.media_type, found.bytes
        if size > processor.max_file_size_bytes:
            raise PayloadTooLargeError(
                f"The file is {size} bytes; the file processor takes at most {processor.max_file_size_bytes}.",
                code="file_too_large",
            )
        param = "file" if file is not None else "file_id"
        try:
            extracted = await processor.extract(path, filename, media_type)
        except UnsupportedFileError as exc:
            raise BadRequestError(str(exc), code="unsupported_file", param=param) from exc
        except InvalidFileError as exc:
            raise BadRequestError(str(exc), code="invalid_file", param=param) from exc
        document_id = file_id or str(uuid.uuid4())  # a stored file's chunks are named as ingestion names them
        pieces, tokenizer = await ingest.chunk_document(
            self.vector_io.inference, extracted.text, await self._tokenizer_model(), plan
        )
        chunks = []
        for index, piece in enumerate(pieces):
            chunk_id, chunk_metadata = ingest.chunk_fields(document_id, filename, index, piece, tokenizer)
            metadata: dict[str, Any] = {"document_id": document_id, "filename": filename, "chunk_index": index}
            if file_id is not None:
                metadata["file_id"] = file_id
            chunks.append(
                models.Chunk(content=piece.text, chunk_id=chunk_id, metadata=metadata, chunk_metadata=chunk_metadata)
            )
        summary: dict[str, Any] = {
            "processor": instance.config.provider_type.split("::")[-1],
            "extraction_method": extracted.method,
            "processing_time_ms": round((time.monotonic() - started) * 1000),
            "file_size_bytes": size,
            "chunk_tokenizer": tokenizer,
        }
        if extracted.page_count is not None:
            summary["page_count"] = extracted.page_count
        return models.ProcessFileResponse(chunks=chunks, metadata=summary)

    async def _tokenizer_model(self) -> str | None:
        """The default embedding model when it is registered, else None (sizes estimated)."""
        model = self.vector_io.default_embedding_model()
        try:
            await self.vector_io.inference.models.lookup(model)
        except NotFoundError:
            return None
        return model
