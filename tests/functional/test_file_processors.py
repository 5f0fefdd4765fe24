"""POST /v1alpha/file-processors/process through the generated SDK: the chunks a vector store holds after
ingesting the same file with the same strategy, and the errors of bad input."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient
from pocketstack_client import Client
from pocketstack_client.api.file_processors import process_file
from pocketstack_client.models import Error, ProcessFileForm, ProcessFileResponse
from pocketstack_client.types import UNSET, File

from pocketstack.app import create_app
from tests.support.config import edge_providers_with, edge_with
from tests.support.documents import pdf, upload

STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}}
WORDS = ["keeper", "lamp", "tower", "harbour", "tide", "pilot", "evening", "ships", "fog", "signal", "beacon",
         "shore", "rocks", "gull", "storm"]  # fmt: skip
MARKDOWN = "# Lighthouse notes\n\n" + "\n\n".join(
    " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(12)) + "." for i in range(60)
)
PDF = pdf([" ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(9)) for i in range(30)])


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any], stored_embedding: str) -> TestClient[Any, Any]:
    """The edge distribution (inline::pypdf) with the default embedding model in the store."""
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


def sdk(server: TestClient[Any, Any]) -> Client:
    return Client(base_url=str(server.make_url("")).rstrip("/"), raise_on_unexpected_status=True)


async def process(server: TestClient[Any, Any], **form: Any) -> ProcessFileResponse | Error:
    if isinstance(form.get("chunking_strategy"), dict):
        form["chunking_strategy"] = json.dumps(form["chunking_strategy"])
    answer = await process_file.asyncio(client=sdk(server), body=ProcessFileForm(**form))
    assert answer is not None
    return answer


def upload_of(name: str, content: bytes, mime_type: str) -> File:
    return File(payload=io.BytesIO(content), file_name=name, mime_type=mime_type)


async def ingested(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, file_id: str, strategy: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The chunks a new vector store (default embedding model) holds after ingesting the file."""
    store = await oai.vector_stores.create(name="same-file")
    extra: dict[str, Any] = {"chunking_strategy": strategy} if strategy is not None else {}
    attached = await oai.vector_stores.files.create_and_poll(
        vector_store_id=store.id, file_id=file_id, poll_interval_ms=50, **extra
    )
    assert attached.status == "completed", attached.last_error
    answer = await server.get(
        f"/v1/vector_stores/{store.id}/files/{file_id}/content", params={"include_metadata": "true"}
    )
    assert answer.status == 200
    return (await answer.json())["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "content", "mime_type", "strategy"),
    [
        ("notes.md", MARKDOWN.encode(), "text/markdown", STATIC),
        ("notes.md", MARKDOWN.encode(), "text/markdown", {"type": "auto"}),
        ("guide.pdf", PDF, "application/pdf", STATIC),
    ],
)
async def test_chunks_are_what_ingestion_stores(
    server: TestClient[Any, Any],
    oai: openai.AsyncOpenAI,
    stored_embedding: str,
    name: str,
    content: bytes,
    mime_type: str,
    strategy: dict[str, Any],
) -> None:
    file_id = await upload(oai, name, content)
    stored = await ingested(server, oai, file_id, strategy)
    by_id = await process(server, file_id=file_id, chunking_strategy=strategy)
    assert isinstance(by_id, ProcessFileResponse)
    assert len(by_id.chunks) == len(stored) > 1
    assert [c.content for c in by_id.chunks] == [s["text"] for s in stored]
    assert [c.chunk_metadata.to_dict() for c in by_id.chunks] == [s["chunk_metadata"] for s in stored]  # type: ignore[union-attr]
    assert all(c.chunk_metadata.to_dict()["chunk_tokenizer"] == stored_embedding for c in by_id.chunks)  # type: ignore[union-attr]
    first = by_id.chunks[0].metadata.to_dict()  # type: ignore[union-attr]
    assert first == {"document_id": file_id, "file_id": file_id, "filename": name, "chunk_index": 0}
    assert {k: stored[0]["metadata"][k] for k in ("file_id", "filename", "chunk_index")} == {
        k: first[k] for k in ("file_id", "filename", "chunk_index")
    }
    # The same bytes uploaded in the form: the same chunks, under a document id of their own.
    direct = await process(server, file=upload_of(name, content, mime_type), chunking_strategy=strategy)
    assert isinstance(direct, ProcessFileResponse)
    assert [c.content for c in direct.chunks] == [s["text"] for s in stored]
    document_id = direct.chunks[0].metadata.to_dict()["document_id"]  # type: ignore[union-attr]
    assert document_id != file_id and "file_id" not in direct.chunks[0].metadata.to_dict()  # type: ignore[union-attr]
    assert direct.chunks[1 if len(direct.chunks) > 1 else 0].chunk_id.startswith(f"{document_id}-")  # type: ignore[union-attr]
    summary = direct.metadata.to_dict()
    assert summary["processor"] == "pypdf" and summary["file_size_bytes"] == len(content)
    assert summary["extraction_method"] == ("pypdf" if name.endswith(".pdf") else "text")
    assert summary.get("page_count") == (1 if name.endswith(".pdf") else None)


async def test_without_a_strategy_the_whole_text_is_one_chunk(server: TestClient[Any, Any]) -> None:
    answer = await process(server, file=upload_of("notes.md", MARKDOWN.encode(), "text/markdown"))
    assert isinstance(answer, ProcessFileResponse)
    (chunk,) = answer.chunks
    assert chunk.content == MARKDOWN.strip()  # longer than the 512 tokens the model embeds: not cut (Llama Stack)
    assert chunk.chunk_metadata.to_dict()["content_token_count"] > 512  # type: ignore[union-attr]
    empty = await process(server, file=upload_of("blank.txt", b"   \n", "text/plain"))
    assert isinstance(empty, ProcessFileResponse) and empty.chunks == []


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"options": "{}"}, 400, "exactly one of `file`"),
        ({"file_id": "file-0", "file": "notes.md"}, 400, "exactly one of `file`"),
        ({"file_id": "file-00000000000000000000000000000000"}, 404, "File 'file-00000000000000000000000000000000'"),
        ({"file": "photo.png"}, 400, "unsupported file type '.png'"),
        ({"file": "broken.pdf"}, 400, "the PDF cannot be read"),
        ({"file": "notes.md", "chunking_strategy": "{not json"}, 400, "Invalid JSON in chunking_strategy"),
        ({"file": "notes.md", "chunking_strategy": "[1]"}, 400, "must be a JSON object"),
        ({"file": "notes.md", "chunking_strategy": {"type": "contextual"}}, 400, "Invalid chunking strategy type"),
        ({"file": "notes.md", "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 5}}},
         400, "max_chunk_size_tokens must be"),
        ({"file": "notes.md", "options": "nope"}, 400, "Invalid JSON in options"),
    ],
)  # fmt: skip
async def test_bad_input(server: TestClient[Any, Any], form: dict[str, Any], status: int, says: str) -> None:
    files = {
        "notes.md": upload_of("notes.md", b"# Notes\n\nSome text.", "text/markdown"),
        "photo.png": upload_of("photo.png", b"\x89PNG\r\n\x1a\n", "image/png"),
        "broken.pdf": upload_of("broken.pdf", b"%PDF-1.4\nnot really a pdf", "application/pdf"),
    }
    if "file" in form:
        form["file"] = files[form["file"]]
    if isinstance(form.get("chunking_strategy"), dict):
        form["chunking_strategy"] = json.dumps(form["chunking_strategy"])
    response = await process_file.asyncio_detailed(client=sdk(server), body=ProcessFileForm(**form))
    assert response.status_code == status
    assert isinstance(response.parsed, Error) and says in response.parsed.error.message


async def test_not_served_without_a_file_processors_provider(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    providers = {api: entries for api, entries in edge_providers_with().items() if api != "file_processors"}
    apis = [api for api in edge_with().apis if api != "file_processors"]
    server = await aiohttp_client(create_app(edge_with(apis=apis, providers=providers)))
    answer = await process(server, file=upload_of("notes.md", b"text", "text/markdown"), file_id=UNSET)
    assert isinstance(answer, Error) and answer.error.code == "service_not_enabled"
    assert "add `file_processors` to `apis`" in answer.error.message and "inline::pypdf" in answer.error.message
