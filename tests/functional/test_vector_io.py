"""Vector stores through the official `openai` client and Llama Stack's vector-io routes.

The contract suite: every test runs once per vector_io provider (sqlite-vec, pgvector).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from tests.support.config import edge_with_vector_provider
from tests.support.errors import assert_error_shape

DOCUMENTS = [
    ("lighthouse", "The lighthouse keeper climbs the tower every evening to light the lamp for passing ships.", 1),
    ("bread", "Sourdough bread needs a starter, flour, water and salt, and a long slow rise overnight.", 2),
    ("comet", "A comet is a ball of ice and dust that grows a glowing tail when it nears the sun.", 3),
    ("garden", "Tomatoes in the garden want full sun, deep watering and a stake to climb.", 4),
    ("train", "The night train to the coast leaves the station at eleven and arrives at dawn.", 5),
]


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], stored_embedding: str, vector_provider: dict[str, Any]
) -> TestClient[Any, Any]:
    config = edge_with_vector_provider(vector_provider)
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


@pytest.fixture
async def store(oai: openai.AsyncOpenAI, server: TestClient[Any, Any], stored_embedding: str) -> str:
    created = await oai.vector_stores.create(
        name="facts", metadata={"team": "docs"}, extra_body={"embedding_model": stored_embedding}
    )
    chunks = [
        {"content": text, "metadata": {"document_id": name, "year": year, "kind": "odd" if year % 2 else "even"}}
        for name, text, year in DOCUMENTS
    ]
    response = await server.post("/v1/vector-io/insert", json={"vector_store_id": created.id, "chunks": chunks})
    assert response.status == 204, await response.text()
    return created.id


async def test_create_reports_the_llama_stack_extras(
    oai: openai.AsyncOpenAI, stored_embedding: str, vector_provider: dict[str, Any]
) -> None:
    created = await oai.vector_stores.create(name="empty", extra_body={"embedding_model": stored_embedding})
    assert created.id.startswith("vs_") and created.object == "vector_store" and created.status == "completed"
    assert created.metadata == {
        "provider_id": vector_provider["provider_id"],
        "embedding_model": stored_embedding,
        "embedding_dimension": "384",
    }
    assert created.file_counts.total == 0 and created.usage_bytes == 0
    assert (await oai.vector_stores.retrieve(created.id)).name == "empty"


@pytest.mark.parametrize(
    ("mode", "query", "expected"),
    [
        ("vector", "Who lights the lamp in the tower for the ships?", "lighthouse"),
        ("keyword", "sourdough starter", "bread"),
        ("hybrid", "icy comet tail near the sun", "comet"),
    ],
)
async def test_search_finds_the_right_chunk_in_every_mode(
    oai: openai.AsyncOpenAI, store: str, mode: str, query: str, expected: str
) -> None:
    page = await oai.vector_stores.search(store, query=query, max_num_results=3, extra_body={"search_mode": mode})
    assert page.data, f"{mode} found nothing"
    assert page.data[0].attributes is not None and page.data[0].attributes["document_id"] == expected
    assert (page.model_extra or {})["search_query"] == [query]  # not in the openai page type
    scores = [hit.score for hit in page.data]
    assert scores == sorted(scores, reverse=True)


async def test_filters_apply_before_ranking(oai: openai.AsyncOpenAI, store: str) -> None:
    query = "Who lights the lamp in the tower for the ships?"
    even = await oai.vector_stores.search(store, query=query, filters={"type": "eq", "key": "kind", "value": "even"})
    assert {hit.attributes["document_id"] for hit in even.data if hit.attributes} == {"bread", "garden"}
    compound = {
        "type": "and",
        "filters": [{"type": "gte", "key": "year", "value": 3}, {"type": "in", "key": "kind", "value": ["odd"]}],
    }
    hits = await oai.vector_stores.search(store, query=query, filters=compound)  # type: ignore[arg-type]
    assert {hit.attributes["document_id"] for hit in hits.data if hit.attributes} == {"comet", "train"}


async def test_query_chunks_answers_llama_stack_shape(server: TestClient[Any, Any], store: str) -> None:
    response = await server.post(
        "/v1/vector-io/query",
        json={"vector_store_id": store, "query": "night train to the coast", "params": {"max_chunks": 2}},
    )
    body = await response.json()
    assert response.status == 200, body
    assert len(body["chunks"]) == 2 and len(body["scores"]) == 2
    assert body["chunks"][0]["metadata"]["document_id"] == "train"


async def test_reinserting_a_chunk_replaces_it(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, store: str
) -> None:
    before = (await oai.vector_stores.retrieve(store)).usage_bytes
    chunk = {"content": DOCUMENTS[0][1], "metadata": {"document_id": "lighthouse", "year": 1, "kind": "odd"}}
    response = await server.post("/v1/vector-io/insert", json={"vector_store_id": store, "chunks": [chunk]})
    assert response.status == 204
    assert (await oai.vector_stores.retrieve(store)).usage_bytes == before
    page = await oai.vector_stores.search(store, query="lighthouse keeper lamp", max_num_results=10)
    assert [hit.attributes["document_id"] for hit in page.data if hit.attributes].count("lighthouse") == 1


async def test_update_list_and_delete(oai: openai.AsyncOpenAI, store: str) -> None:
    updated = await oai.vector_stores.update(store, name="renamed", metadata={"team": "ops"})
    assert updated.name == "renamed" and updated.metadata is not None and updated.metadata["team"] == "ops"
    assert store in [s.id async for s in await oai.vector_stores.list()]
    deleted = await oai.vector_stores.delete(store)
    assert deleted.id == store and deleted.deleted
    with pytest.raises(openai.BadRequestError):
        await oai.vector_stores.retrieve(store)


async def test_unknown_store_is_400_as_llama_stack_answers(server: TestClient[Any, Any]) -> None:
    for method, path, body in (
        ("GET", "/v1/vector_stores/vs_nope", None),
        ("POST", "/v1/vector_stores/vs_nope/search", {"query": "x"}),
        ("POST", "/v1/vector-io/query", {"vector_store_id": "vs_nope", "query": "x"}),
    ):
        response = await server.request(method, path, json=body)
        assert response.status == 400
        assert "vs_nope" in assert_error_shape(await response.json())["message"]


@pytest.mark.parametrize(
    "filters",
    [{"type": "eq", "key": "x"}, {"type": "zz", "key": "x", "value": 1}, {"type": "and", "filters": []},
     {"type": "gt", "key": "x", "value": "text"}, {"type": "eq", "key": "bad key'", "value": 1}],
)  # fmt: skip
async def test_malformed_filters_are_400(server: TestClient[Any, Any], store: str, filters: dict[str, Any]) -> None:
    response = await server.post(f"/v1/vector_stores/{store}/search", json={"query": "ships", "filters": filters})
    assert response.status == 400
    assert_error_shape(await response.json())


async def test_wrong_dimension_and_unknown_model_are_400(server: TestClient[Any, Any], store: str) -> None:
    bad = {"vector_store_id": store, "chunks": [{"content": "x", "embedding": [0.1, 0.2]}]}
    response = await server.post("/v1/vector-io/insert", json=bad)
    assert response.status == 400 and "384" in assert_error_shape(await response.json())["message"]
    response = await server.post("/v1/vector_stores", json={"name": "x", "embedding_model": "llama-cpp/nope"})
    assert response.status in (400, 404)
    assert_error_shape(await response.json())
