"""Files in vector stores through the `openai` client: upload, attach, poll, search, attributes, detach.

Part of the contract suite: every test runs once per vector_io provider (sqlite-vec, pgvector).
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from tests.support.documents import FILES, upload


@pytest.fixture
def server(vector_store_app: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The app on each vector_io provider in turn (conftest)."""
    return vector_store_app


async def _settled(oai: openai.AsyncOpenAI, store_id: str) -> Any:
    for _ in range(600):
        store = await oai.vector_stores.retrieve(store_id)
        if store.file_counts.in_progress == 0:
            return store
        await asyncio.sleep(0.05)
    raise AssertionError("ingestion did not finish")


async def test_a_store_made_from_files_finds_the_right_file(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    ids = {name: await upload(oai, name, content) for name, content in FILES.items()}
    store = await oai.vector_stores.create(
        name="docs", file_ids=list(ids.values()), extra_body={"embedding_model": stored_embedding}
    )
    settled = await _settled(oai, store.id)
    assert settled.file_counts.completed == 4 and settled.file_counts.total == 4 and settled.status == "completed"
    assert settled.usage_bytes > 0
    for query, name in (
        ("who lights the lamp for the ships?", "lighthouse.md"),
        ("what does sourdough need?", "bread.html"),
        ("glowing tail near the sun", "comets.json"),
        ("when does the night train leave?", "trains.csv"),
    ):
        page = await oai.vector_stores.search(store.id, query=query, max_num_results=2)
        assert page.data[0].file_id == ids[name] and page.data[0].filename == name, (query, page.data)
    bread = await oai.vector_stores.search(store.id, query="var x", extra_body={"search_mode": "keyword"})
    assert all(hit.file_id != ids["bread.html"] for hit in bread.data)  # scripts are not text


async def test_attach_poll_attributes_and_detach(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    store = await oai.vector_stores.create(name="one", extra_body={"embedding_model": stored_embedding})
    file_id = await upload(oai, "lighthouse.md", FILES["lighthouse.md"])
    attached = await oai.vector_stores.files.create(
        vector_store_id=store.id,
        file_id=file_id,
        attributes={"team": "ops"},
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}},
    )
    assert attached.status in ("in_progress", "completed") and attached.vector_store_id == store.id
    done = await oai.vector_stores.files.poll(file_id, vector_store_id=store.id, poll_interval_ms=50)
    assert done.status == "completed" and done.last_error is None and done.usage_bytes > 0
    assert [f.id async for f in await oai.vector_stores.files.list(store.id)] == [file_id]
    hits = await oai.vector_stores.search(store.id, query="lamp", filters={"type": "eq", "key": "team", "value": "ops"})
    assert hits.data and hits.data[0].attributes is not None and hits.data[0].attributes["team"] == "ops"
    await oai.vector_stores.files.update(file_id, vector_store_id=store.id, attributes={"team": "dev"})
    await oai.vector_stores.files.poll(file_id, vector_store_id=store.id, poll_interval_ms=50)
    moved = await oai.vector_stores.search(
        store.id, query="lamp", filters={"type": "eq", "key": "team", "value": "ops"}
    )
    assert moved.data == []
    deleted = await oai.vector_stores.files.delete(file_id, vector_store_id=store.id)
    assert deleted.deleted
    after = await oai.vector_stores.retrieve(store.id)
    assert after.file_counts.total == 0 and after.usage_bytes == 0
    assert (await oai.vector_stores.search(store.id, query="lamp")).data == []
    assert (await oai.files.retrieve(file_id)).id == file_id  # detaching keeps the file


async def test_attaching_answers_the_status_ingestion_reached(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any], stored_embedding: str
) -> None:
    # Llama Stack's OpenAIVectorStoreMixin.openai_attach_file_to_vector_store (v0.7.1,
    # providers/utils/memory/openai_vector_store_mixin.py) ingests within the request and answers
    # `completed` (or `failed` with last_error); openai_create_vector_store attaches its file_ids the same way.
    from pocketstack.app import STACK

    small = await upload(oai, "lighthouse.md", FILES["lighthouse.md"])
    store = await oai.vector_stores.create(
        name="now", file_ids=[small], extra_body={"embedding_model": stored_embedding}
    )
    assert (store.file_counts.completed, store.file_counts.in_progress) == (1, 0) and store.status == "completed"
    other = await oai.vector_stores.create(name="now2", extra_body={"embedding_model": stored_embedding})
    attached = await oai.vector_stores.files.create(vector_store_id=other.id, file_id=small)
    assert attached.status == "completed" and attached.last_error is None and attached.usage_bytes > 0
    assert (await oai.vector_stores.search(other.id, query="who lights the lamp?")).data[0].file_id == small
    bad = await upload(oai, "image.png", b"\x89PNG\r\n\x1a\n")
    failed = await oai.vector_stores.files.create(vector_store_id=other.id, file_id=bad)
    assert failed.status == "failed" and failed.last_error is not None
    assert failed.last_error.code == "unsupported_file"

    # a file that outlasts vector_stores.attach_wait_s is answered in_progress; its ingestion goes on
    server.app[STACK].config.vector_stores.attach_wait_s = 0.05
    text = " ".join(f"Paragraph {i} tells of harbours, tides and the keepers of lights." for i in range(400))
    long = await upload(oai, "long.txt", text.encode())
    pending = await oai.vector_stores.files.create(vector_store_id=other.id, file_id=long)
    assert pending.status == "in_progress"
    done = await oai.vector_stores.files.poll(long, vector_store_id=other.id, poll_interval_ms=50)
    assert done.status == "completed" and done.usage_bytes > 0


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [("image.png", b"\x89PNG\r\n\x1a\n", "unsupported_file"), ("broken.json", b"{not json", "invalid_file"),
     ("latin.txt", "caf\u00e9".encode("latin-1"), "invalid_file")],
)  # fmt: skip
async def test_unusable_files_fail_with_a_reason(
    oai: openai.AsyncOpenAI, stored_embedding: str, name: str, content: bytes, code: str
) -> None:
    store = await oai.vector_stores.create(name="bad", extra_body={"embedding_model": stored_embedding})
    file_id = await upload(oai, name, content)
    await oai.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
    done = await oai.vector_stores.files.poll(file_id, vector_store_id=store.id, poll_interval_ms=50)
    assert done.status == "failed" and done.last_error is not None and done.last_error.code == code
    assert (await oai.vector_stores.retrieve(store.id)).file_counts.failed == 1


async def test_unknown_file_or_bad_chunking_is_refused(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    store = await oai.vector_stores.create(name="x", extra_body={"embedding_model": stored_embedding})
    with pytest.raises(openai.NotFoundError):
        await oai.vector_stores.files.create(vector_store_id=store.id, file_id="file-nope")
    file_id = await upload(oai, "a.txt", b"hello there")
    with pytest.raises(openai.BadRequestError):
        await oai.vector_stores.files.create(
            vector_store_id=store.id,
            file_id=file_id,
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 90}},
        )
    # creating a store with one is not refused: the store is made and the file recorded failed, as Llama Stack
    # does (test_llama_stack_vector_behaviour)
    made = await oai.vector_stores.create(
        name="y", file_ids=["file-nope"], extra_body={"embedding_model": stored_embedding}
    )
    assert (made.file_counts.failed, made.file_counts.total) == (1, 1)
    (failed,) = (await oai.vector_stores.files.list(made.id)).data
    assert failed.id == "file-nope" and failed.status == "failed" and failed.last_error is not None


async def test_deleting_a_store_leaves_no_chunks(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any], stored_embedding: str, vector_provider: dict[str, Any]
) -> None:
    file_id = await upload(oai, "lighthouse.md", FILES["lighthouse.md"])
    store = await oai.vector_stores.create(
        name="gone", file_ids=[file_id], extra_body={"embedding_model": stored_embedding}
    )
    await _settled(oai, store.id)
    await oai.vector_stores.delete(store.id)
    from pocketstack.app import STACK

    provider = server.app[STACK].providers[vector_provider["provider_id"]].impl
    assert await provider.usage_bytes(store.id) == 0
    rows = await server.app[STACK].database.fetch("SELECT COUNT(*) AS n FROM vector_store_files")
    assert rows[0]["n"] == 0


async def test_deleting_or_expiring_a_file_detaches_it_everywhere(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any], stored_embedding: str
) -> None:
    from pocketstack.app import STACK

    stores = [
        (await oai.vector_stores.create(name=f"s{i}", extra_body={"embedding_model": stored_embedding})).id
        for i in range(2)
    ]
    deleted = await upload(oai, "lighthouse.md", FILES["lighthouse.md"])
    expiring = (
        await oai.files.create(
            file=("trains.csv", io.BytesIO(FILES["trains.csv"])),
            purpose="assistants",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
    ).id
    for store in stores:
        for file_id in (deleted, expiring):
            await oai.vector_stores.files.create_and_poll(file_id=file_id, vector_store_id=store, poll_interval_ms=50)
    await oai.files.delete(deleted)
    for store in stores:
        assert [f.id async for f in await oai.vector_stores.files.list(store)] == [expiring]
        hits = await oai.vector_stores.search(store, query="who lights the lamp for the ships?")
        assert all(hit.file_id != deleted for hit in hits.data)

    stack = server.app[STACK]
    await stack.database.execute("UPDATE files SET expires_at = 1 WHERE id = ?", (expiring,))
    stack.providers["localfs"].impl._next_expiry = 1  # as if the hour had passed
    with pytest.raises(openai.NotFoundError):
        await oai.files.retrieve(expiring)  # the sweep runs
    for store in stores:
        after = await oai.vector_stores.retrieve(store)
        assert after.file_counts.total == 0 and after.usage_bytes == 0
        assert (await oai.vector_stores.search(store, query="night train")).data == []
