"""File batches, file contents and file-list paging of vector stores, through the `openai` client.

Part of the contract suite: every test runs once per vector_io provider (sqlite-vec, pgvector).
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from tests.support.documents import FILES, upload
from tests.support.errors import assert_error_shape


@pytest.fixture
def server(vector_store_app: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The app on each vector_io provider in turn (conftest), as in the files tests."""
    return vector_store_app


async def _store(oai: openai.AsyncOpenAI, model: str) -> str:
    return (await oai.vector_stores.create(name="batch", extra_body={"embedding_model": model})).id


async def test_a_batch_attaches_its_files_and_counts_them(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    store = await _store(oai, stored_embedding)
    ids = [await upload(oai, name, content) for name, content in FILES.items()]
    bad = await upload(oai, "image.png", b"\x89PNG\r\n\x1a\n")
    batch = await oai.vector_stores.file_batches.create(
        vector_store_id=store, file_ids=[*ids, bad, ids[0]], attributes={"shelf": "b"}
    )
    assert batch.id.startswith("vsfb_") and batch.vector_store_id == store and batch.file_counts.total == 5
    done = await oai.vector_stores.file_batches.poll(batch.id, vector_store_id=store, poll_interval_ms=50)
    assert done.status == "completed"
    assert (done.file_counts.completed, done.file_counts.failed, done.file_counts.in_progress) == (4, 1, 0)
    listed = [f async for f in await oai.vector_stores.file_batches.list_files(batch.id, vector_store_id=store)]
    assert sorted(f.id for f in listed) == sorted([*ids, bad])
    failed = await oai.vector_stores.file_batches.list_files(batch.id, vector_store_id=store, filter="failed")
    assert [f.id for f in failed.data] == [bad]
    assert all(f.attributes == {"shelf": "b"} for f in listed)
    page = await oai.vector_stores.search(store, query="who lights the lamp for the ships?", max_num_results=1)
    assert page.data[0].file_id == ids[0] and page.data[0].attributes is not None
    assert page.data[0].attributes["shelf"] == "b"
    assert (await oai.vector_stores.retrieve(store)).file_counts.total == 5


async def test_files_with_their_own_attributes(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    store = await _store(oai, stored_embedding)
    a = await upload(oai, "lighthouse.md", FILES["lighthouse.md"])
    b = await upload(oai, "trains.csv", FILES["trains.csv"])
    batch = await oai.vector_stores.file_batches.create(
        vector_store_id=store, extra_body={"files": [{"file_id": a, "attributes": {"n": 1}}, {"file_id": b}]}
    )
    await oai.vector_stores.file_batches.poll(batch.id, vector_store_id=store, poll_interval_ms=50)
    assert (await oai.vector_stores.files.retrieve(a, vector_store_id=store)).attributes == {"n": 1}
    assert (await oai.vector_stores.files.retrieve(b, vector_store_id=store)).attributes == {}


async def test_cancel_leaves_no_chunks_of_cancelled_files(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any], stored_embedding: str
) -> None:
    store = await _store(oai, stored_embedding)
    long_text = " ".join(f"Paragraph {i} tells of harbours, tides and the keepers of lights." for i in range(400))
    ids = [await upload(oai, f"doc{i}.txt", long_text.encode()) for i in range(6)]
    from pocketstack.app import STACK

    server.app[STACK].config.vector_stores.attach_wait_s = 0  # answer at once: the batch is cancelled in progress
    batch = await oai.vector_stores.file_batches.create(vector_store_id=store, file_ids=ids)
    cancelled = await oai.vector_stores.file_batches.cancel(batch.id, vector_store_id=store)
    assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled >= 1
    for _ in range(400):  # the worker finishes (or abandons) the file it was on
        files = [f async for f in await oai.vector_stores.file_batches.list_files(batch.id, vector_store_id=store)]
        if all(f.status != "in_progress" for f in files):
            break
        await asyncio.sleep(0.05)
    assert {f.status for f in files} <= {"completed", "cancelled"} and len(files) == 6
    for f in files:
        content = await oai.vector_stores.files.content(f.id, vector_store_id=store)
        assert (f.status == "completed") == bool(content.data), f
    final = await oai.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store)
    assert final.status == "cancelled" and final.file_counts.in_progress == 0
    response = await server.post(f"/v1/vector_stores/{store}/file_batches/{batch.id}/cancel")
    assert response.status == 400 and "cancelled" in assert_error_shape(await response.json())["message"]


async def test_an_unknown_file_fails_alone_and_the_batch_answers_its_counts(
    oai: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    # Llama Stack (v0.7.1, providers/utils/memory/openai_vector_store_mixin.py): openai_create_vector_store_file_batch
    # takes every file id; openai_attach_file_to_vector_store then records the files API's
    # OpenAIFileObjectNotFoundError as the file's `failed` status, last_error code `server_error`, message str(e)
    store = await _store(oai, stored_embedding)
    good = await upload(oai, "a.txt", b"hello there")
    batch = await oai.vector_stores.file_batches.create(vector_store_id=store, file_ids=[good, "file-nope"])
    # answered after the bounded wait (vector_stores.attach_wait_s): a small batch is done within the request
    assert batch.status == "completed"
    counts = batch.file_counts
    assert (counts.completed, counts.failed, counts.in_progress, counts.total) == (1, 1, 0, 2)
    missing = await oai.vector_stores.files.retrieve("file-nope", vector_store_id=store)
    assert missing.status == "failed" and missing.last_error is not None
    assert missing.last_error.code == "server_error"
    message = "File 'file-nope' not found. Use 'client.files.list()' to list available Files."
    assert missing.last_error.message == message
    assert (await oai.vector_stores.files.retrieve(good, vector_store_id=store)).status == "completed"
    assert (await oai.vector_stores.retrieve(store)).file_counts.failed == 1


async def test_batch_errors(oai: openai.AsyncOpenAI, server: TestClient[Any, Any], stored_embedding: str) -> None:
    store = await _store(oai, stored_embedding)
    good = await upload(oai, "a.txt", b"hello there")
    bodies: list[dict[str, Any]] = [{}, {"file_ids": [good], "files": [{"file_id": good}]}, {"file_ids": []}]
    for body in bodies:
        response = await server.post(f"/v1/vector_stores/{store}/file_batches", json=body)
        assert response.status == 400, body
        assert_error_shape(await response.json())
    response = await server.get(f"/v1/vector_stores/{store}/file_batches/vsfb_nope")
    assert response.status == 400 and "vsfb_nope" in assert_error_shape(await response.json())["message"]


async def test_file_content_in_document_order(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any], stored_embedding: str
) -> None:
    store = await _store(oai, stored_embedding)
    text = " ".join(f"Sentence number {i} of the story." for i in range(300))
    file_id = await upload(oai, "story.txt", text.encode())
    await oai.vector_stores.files.create_and_poll(
        file_id=file_id,
        vector_store_id=store,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 0}},
        poll_interval_ms=50,
    )
    page = await oai.vector_stores.files.content(file_id, vector_store_id=store)
    parts = [item.text for item in page.data if item.text is not None]
    # no overlap: the chunks tile the text
    assert len(parts) == len(page.data) > 1 and " ".join(parts).split() == text.split()
    response = await server.get(
        f"/v1/vector_stores/{store}/files/{file_id}/content", params={"include_embeddings": "true"}
    )
    body = await response.json()
    assert response.status == 200 and body["object"] == "vector_store.file_content.page"
    assert len(body["data"][0]["embedding"]) == 384 and "metadata" not in body["data"][0]
    response = await server.get(
        f"/v1/vector_stores/{store}/files/{file_id}/content", params={"include_metadata": "true"}
    )
    first = (await response.json())["data"][0]
    assert first["metadata"]["file_id"] == file_id and first["chunk_metadata"]["chunk_index"] == 0
    response = await server.get(f"/v1/vector_stores/{store}/files/file-nope/content")
    assert response.status == 400
    assert_error_shape(await response.json())


async def test_file_list_pages_forward_and_back(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    store = await _store(oai, stored_embedding)
    ids = [await upload(oai, f"n{i}.txt", f"note {i}".encode()) for i in range(5)]
    for file_id in ids:
        await oai.vector_stores.files.create(vector_store_id=store, file_id=file_id)
    first = await oai.vector_stores.files.list(store, limit=2, order="asc")
    assert [f.id for f in first.data] == ids[:2] and first.has_more
    second = await oai.vector_stores.files.list(store, limit=2, order="asc", after=ids[1])
    assert [f.id for f in second.data] == ids[2:4]
    back = await oai.vector_stores.files.list(store, limit=2, order="asc", before=ids[4])
    assert [f.id for f in back.data] == ids[2:4] and back.has_more
    newest = await oai.vector_stores.files.list(store, limit=2, before=ids[1])  # desc: the newer neighbours
    assert [f.id for f in newest.data] == [ids[3], ids[2]]


async def test_auto_chunks_fit_the_embedding_model(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any], stored_embedding: str
) -> None:
    # auto asks for 800-token chunks; MiniLM embeds at most 512 tokens (2 of them special), so they are capped
    store = await _store(oai, stored_embedding)
    text = " ".join(f"Paragraph {i} tells of harbours, tides and the keepers of lights." for i in range(300))
    file_id = await upload(oai, "long.txt", text.encode())
    done = await oai.vector_stores.files.create_and_poll(file_id=file_id, vector_store_id=store, poll_interval_ms=50)
    assert done.status == "completed", done.last_error
    response = await server.get(
        f"/v1/vector_stores/{store}/files/{file_id}/content", params={"include_metadata": "true"}
    )
    chunks = (await response.json())["data"]
    counts = [c["chunk_metadata"]["content_token_count"] for c in chunks]
    assert len(chunks) > 3 and all(400 < n <= 510 for n in counts[:-1]) and counts[-1] <= 510, counts
    assert {c["chunk_metadata"]["chunk_tokenizer"] for c in chunks} == {stored_embedding}


async def test_llama_stack_client_drives_vector_stores(server: TestClient[Any, Any], stored_embedding: str) -> None:
    import llama_stack_client

    client = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"), max_retries=0)
    store = await client.vector_stores.create(name="ls", extra_body={"embedding_model": stored_embedding})
    uploaded = await client.files.create(file=("lighthouse.md", FILES["lighthouse.md"]), purpose="assistants")
    batch = await client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[uploaded.id])
    for _ in range(400):
        batch = await client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
        if batch.status != "in_progress":
            break
        await asyncio.sleep(0.05)
    assert batch.status == "completed" and batch.file_counts.completed == 1
    content = await client.vector_stores.files.content(uploaded.id, vector_store_id=store.id)
    assert "lights the lamp" in " ".join(item.text for item in content.data)
    found = await client.vector_stores.search(store.id, query="who lights the lamp?", search_mode="hybrid")
    assert found.data[0].file_id == uploaded.id

    # Llama Stack 0.7's chunks: interleaved content, pre-computed embedding, chunk metadata
    text = "Tides turn at noon in the harbour."
    embedding = (await client.embeddings.create(model=stored_embedding, input=text)).data[0].embedding
    await client.vector_io.insert(
        vector_store_id=store.id,
        chunks=[{"chunk_id": "tides-0", "content": [{"type": "text", "text": text}], "metadata": {"document_id": "t"},
                 "chunk_metadata": {"document_id": "t"}, "embedding": embedding,  # type: ignore[typeddict-item]
                 "embedding_model": stored_embedding, "embedding_dimension": 384}],
    )  # fmt: skip
    answer = await client.vector_io.query(
        vector_store_id=store.id, query=[{"type": "text", "text": "when do the tides turn?"}], params={"max_chunks": 2}
    )
    assert answer.chunks[0].chunk_id == "tides-0" and answer.chunks[0].content == text
    with pytest.raises(llama_stack_client.BadRequestError):
        await client.vector_io.query(
            vector_store_id=store.id, query={"type": "image", "image": {"url": {"uri": "http://x/y.png"}}}
        )
    await client.close()
