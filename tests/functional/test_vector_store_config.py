"""What the run config says about vector stores: registered stores, defaults, auto chunking; and expiry."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import STACK, create_app
from tests.support.config import edge_with
from tests.support.errors import assert_error_shape


async def _client(aiohttp_client: Callable[..., Any], **overrides: Any) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with(**overrides)))  # type: ignore[no-any-return]


def _oai(server: TestClient[Any, Any]) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)


async def test_registered_stores_exist_and_stay(aiohttp_client: Callable[..., Any], stored_embedding: str) -> None:
    resources = {
        "models": [],
        "vector_stores": [{"vector_store_id": "vs_handbook", "embedding_model": stored_embedding,
                           "vector_store_name": "Handbook", "embedding_dimension": 384}],
    }  # fmt: skip
    server = await _client(aiohttp_client, registered_resources=resources)
    async with _oai(server) as oai:
        store = await oai.vector_stores.retrieve("vs_handbook")
        assert store.name == "Handbook" and store.metadata is not None
        assert store.metadata["embedding_model"] == stored_embedding
        response = await server.delete("/v1/vector_stores/vs_handbook")
        assert response.status == 400 and "registered_resources" in assert_error_shape(await response.json())["message"]
        assert (await oai.vector_stores.retrieve("vs_handbook")).id == "vs_handbook"


@pytest.mark.parametrize(
    ("entry", "reason"),
    [({"vector_store_id": "vs_x", "provider_id": "nope"}, "No vector_io provider 'nope'"),
     ({"vector_store_id": "vs_x", "embedding_dimension": 7}, "embedding_dimension 7")],
)  # fmt: skip
async def test_a_bad_registered_store_stops_start_up(
    aiohttp_client: Callable[..., Any], stored_embedding: str, entry: dict[str, Any], reason: str
) -> None:
    server = await _client(aiohttp_client, registered_resources={"models": [], "vector_stores": [entry]})
    response = await server.get("/v1/vector_stores")
    message = assert_error_shape(await response.json())["message"]
    assert response.status == 503 and "registered_resources.vector_stores[0] (vs_x)" in message and reason in message


async def test_config_defaults_apply_to_new_stores(aiohttp_client: Callable[..., Any], stored_embedding: str) -> None:
    provider_id, model_id = stored_embedding.split("/", 1)
    section = {
        "default_provider_id": "sqlite-vec",
        "default_embedding_model": {"provider_id": provider_id, "model_id": model_id},
        "file_ingestion_params": {"default_chunk_size_tokens": 100, "default_chunk_overlap_tokens": 0},
    }
    server = await _client(aiohttp_client, vector_stores=section)
    async with _oai(server) as oai:
        store = await oai.vector_stores.create(name="defaults")  # no embedding_model: the config's
        assert store.metadata is not None and store.metadata["embedding_model"] == stored_embedding
        text = " ".join(f"Line {i} of the harbour log." for i in range(100))
        file_id = (await oai.files.create(file=("log.txt", text.encode()), purpose="assistants")).id
        await oai.vector_stores.files.create_and_poll(file_id=file_id, vector_store_id=store.id, poll_interval_ms=50)
        response = await server.get(
            f"/v1/vector_stores/{store.id}/files/{file_id}/content", params={"include_metadata": "true"}
        )
        counts = [c["chunk_metadata"]["content_token_count"] for c in (await response.json())["data"]]
        assert len(counts) > 3 and max(counts) <= 100 and counts[0] > 90


async def test_an_expired_store_can_be_read_and_deleted_only(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    server = await _client(aiohttp_client)
    async with _oai(server) as oai:
        store = await oai.vector_stores.create(
            name="brief",
            expires_after={"anchor": "last_active_at", "days": 1},
            extra_body={"embedding_model": stored_embedding},
        )
        assert store.status == "completed" and store.last_active_at is not None
        assert store.expires_at == store.last_active_at + 86400
        await server.app[STACK].database.execute(
            "UPDATE vector_stores SET last_active_at = ? WHERE id = ?", (int(time.time()) - 2 * 86400, store.id)
        )
        assert (await oai.vector_stores.retrieve(store.id)).status == "expired"
        response = await server.post(f"/v1/vector_stores/{store.id}/search", json={"query": "tides"})
        assert response.status == 400
        assert assert_error_shape(await response.json())["code"] == "vector_store_expired"
        response = await server.post(
            "/v1/vector-io/insert", json={"vector_store_id": store.id, "chunks": [{"content": "late"}]}
        )
        assert response.status == 400
        assert (await oai.vector_stores.delete(store.id)).deleted


async def test_searching_keeps_a_store_alive(aiohttp_client: Callable[..., Any], stored_embedding: str) -> None:
    server = await _client(aiohttp_client)
    async with _oai(server) as oai:
        store = await oai.vector_stores.create(
            name="kept",
            expires_after={"anchor": "last_active_at", "days": 2},
            extra_body={"embedding_model": stored_embedding},
        )
        old = int(time.time()) - 86400
        await server.app[STACK].database.execute(
            "UPDATE vector_stores SET last_active_at = ? WHERE id = ?", (old, store.id)
        )
        await oai.vector_stores.search(store.id, query="anything")
        touched = (await oai.vector_stores.retrieve(store.id)).last_active_at
        assert touched is not None and touched >= old + 86400 - 5
