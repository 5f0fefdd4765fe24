"""Vector stores where Llama Stack 0.7.1 goes beyond (or differs from) OpenAI: contextual chunking, query rewriting,
what its search pages say, store creation with unknown files, attribute updates, listing stores `before` an id, and
chunks inserted with a ttl (PocketStack enforces it). Each test goes through the official clients and names the
Llama Stack source it pins (issue 16). The scripted model (tests/support/scripted.py) plays the chat model, so what
it writes is known."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.apis.vector_io import contextual
from pocketstack.apis.vector_io.api import VectorIOApi
from pocketstack.app import STACK, create_app
from tests.support.config import CHAT_MODEL, edge_providers_with, edge_with
from tests.support.errors import assert_error_shape
from tests.support.scripted import scripted_entry

CHAT = {"model_id": "scripted/chat", "provider_id": "scripted", "provider_model_id": "chat", "model_type": "llm"}
CONTEXTUAL: Any = {"type": "contextual", "contextual": {}}  # the OpenAI client's types know auto and static only
CONFIGURED = {"provider_id": "scripted", "model_id": "chat"}  # a QualifiedModel naming CHAT
DOCUMENT = "The lighthouse keeper logs every ship that passes the northern reef at night."
CONTEXT = "From the harbour chronicle, about maritime safety."
# Llama Stack 0.7.1 llama_stack_api/vector_io/models.py DEFAULT_CONTEXT_PROMPT, split where the chunk goes
# (providers/utils/memory/openai_vector_store_mixin.py _execute_contextual_chunk_transformation).
SYSTEM = f"<document>\n{DOCUMENT}\n</document>\nHere is the chunk we want to situate within the whole document\n<chunk>"
USER = (
    f"{DOCUMENT}\n</chunk>\n"
    "Please give a short succinct description to situate this chunk of text within the overall document "
    "for the purposes of improving search retrieval of the chunk. "
    "Answer only with the succinct description and nothing else."
)
# core/datatypes.py RewriteQueryParams.prompt
REWRITE = "Expand this query with relevant synonyms and related terms. Return only the improved query, no explanations:\n\n{query}\n\nImproved query:"  # noqa: E501


async def _server(
    aiohttp_client: Callable[..., Any], vector_stores: dict[str, Any] | None = None, **scripted: Any
) -> TestClient[Any, Any]:
    llama_cpp = edge_providers_with()["inference"]
    config = edge_with(
        providers=edge_providers_with(inference=[*llama_cpp, scripted_entry(**scripted)]),
        registered_resources={"models": [CHAT]},
        vector_stores=vector_stores or {},
    )
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


def _oai(server: TestClient[Any, Any]) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)


async def _store(oai: openai.AsyncOpenAI, embedding: str) -> str:
    return (await oai.vector_stores.create(name="harbour", extra_body={"embedding_model": embedding})).id


async def _upload(oai: openai.AsyncOpenAI, text: str, name: str = "log.txt") -> str:
    return (await oai.files.create(file=(name, text.encode()), purpose="assistants")).id


def _message(error: openai.APIStatusError | llama_stack_client.APIStatusError) -> str:
    assert isinstance(error.body, dict)
    return str(assert_error_shape({"error": error.body.get("error", error.body)})["message"])


async def test_contextual_chunking_prepends_the_models_context_to_each_chunk(
    aiohttp_client: Callable[..., Any], stored_embedding: str, scripted: list[Any]
) -> None:
    # openai_vector_store_mixin.py openai_attach_file_to_vector_store + _execute_contextual_chunk_transformation:
    # the configured model (vector_stores.contextual_retrieval_params.model) gets the document as a system message
    # and the chunk as a user message (temperature 0, 256 tokens); the chunk becomes f"{context}\n\n{chunk}" before
    # it is embedded. The file's chunking_strategy is the whole contextual config, its defaults filled.
    section = {"contextual_retrieval_params": {"model": CONFIGURED}}
    server = await _server(aiohttp_client, section, replies={USER: f"  {CONTEXT}\n"})
    async with _oai(server) as oai:
        store_id = await _store(oai, stored_embedding)
        file_id = await _upload(oai, DOCUMENT)
        attached = await oai.vector_stores.files.create_and_poll(
            file_id=file_id,
            vector_store_id=store_id,
            chunking_strategy=CONTEXTUAL,
            poll_interval_ms=50,
        )
        assert attached.status == "completed", attached.last_error
        assert attached.chunking_strategy is not None
        assert attached.chunking_strategy.model_dump()["contextual"] == {
            "model_id": None,
            "context_prompt": contextual.DEFAULT_CONTEXT_PROMPT,
            "max_chunk_size_tokens": 700,
            "chunk_overlap_tokens": 400,
            "timeout_seconds": None,
            "max_concurrency": None,
        }
        (asked,) = scripted
        assert asked.model == "scripted/chat" and (asked.temperature, asked.max_tokens) == (0.0, 256)
        assert [(m.role, m.content) for m in asked.messages] == [("system", SYSTEM), ("user", USER)]
        content = await oai.vector_stores.files.content(file_id, vector_store_id=store_id)
        assert [part.text for part in content.data] == [f"{CONTEXT}\n\n{DOCUMENT}"]
        # the context is searchable: "chronicle" is in it, not in the file
        found = await oai.vector_stores.search(store_id, query="chronicle", extra_body={"search_mode": "keyword"})
        assert [hit.file_id for hit in found.data] == [file_id]
        # internal calls are not stored chat completions
        assert (await oai.chat.completions.list()).data == []


async def test_contextual_chunking_takes_the_model_from_the_request(
    aiohttp_client: Callable[..., Any], stored_embedding: str, scripted: list[Any]
) -> None:
    # VectorStoreChunkingStrategyContextualConfig.model_id wins over the config's default; file batches and
    # store creation take the strategy too (mixin _process_files_with_concurrency).
    server = await _server(aiohttp_client, replies={USER: CONTEXT})
    strategy: Any = {"type": "contextual", "contextual": {"model_id": "scripted/chat", "max_concurrency": 2}}
    async with _oai(server) as oai:
        file_id = await _upload(oai, DOCUMENT)
        store = await oai.vector_stores.create(
            name="at creation",
            file_ids=[file_id],
            chunking_strategy=strategy,
            extra_body={"embedding_model": stored_embedding},
        )
        other = await _store(oai, stored_embedding)
        batch = await oai.vector_stores.file_batches.create_and_poll(
            vector_store_id=other,
            file_ids=[file_id],
            chunking_strategy=strategy,
            poll_interval_ms=50,
        )
        assert batch.file_counts.completed == 1
        for store_id in (store.id, other):
            attached = await oai.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
            assert attached.status == "completed"
            content = await oai.vector_stores.files.content(file_id, vector_store_id=store_id)
            assert [part.text for part in content.data] == [f"{CONTEXT}\n\n{DOCUMENT}"]
        assert {request.model for request in scripted} == {"scripted/chat"}


async def test_contextual_chunking_with_the_built_in_chat_model(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    # The same through llama.cpp: SmolLM2 writes the context, MiniLM embeds context and chunk together.
    server = await aiohttp_client(create_app(edge_with()))
    strategy: Any = {"type": "contextual", "contextual": {"model_id": CHAT_MODEL}}
    async with _oai(server) as oai:
        store_id = await _store(oai, stored_embedding)
        file_id = await _upload(oai, DOCUMENT)
        attached = await oai.vector_stores.files.create_and_poll(
            file_id=file_id, vector_store_id=store_id, chunking_strategy=strategy, poll_interval_ms=100
        )
        assert attached.status == "completed", attached.last_error
        (chunk,) = (await oai.vector_stores.files.content(file_id, vector_store_id=store_id)).data
        context, _, text = str(chunk.text).rpartition("\n\n")
        assert text == DOCUMENT and context.strip()


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({}, "configure a default in contextual_retrieval_params.model"),  # no model given nor configured
        ({"model_id": ""}, "contextual.model_id"),
        ({"model_id": "scripted/chat", "max_chunk_size_tokens": 50}, "max_chunk_size_tokens"),
        ({"model_id": "scripted/chat", "chunk_overlap_tokens": 700}, "less than max_chunk_size_tokens"),
        ({"model_id": "scripted/chat", "timeout_seconds": 0}, "timeout_seconds"),
        ({"model_id": "scripted/chat", "max_concurrency": 0}, "max_concurrency"),
        ({"model_id": "scripted/chat", "context_prompt": "{{CHUNK_CONTENT}}"}, "{{WHOLE_DOCUMENT}} placeholder"),
        ({"model_id": "scripted/chat", "context_prompt": "{{CHUNK_CONTENT}} {{WHOLE_DOCUMENT}}"}, "before"),
        ({"model_id": "nope/nope"}, "Model 'nope/nope' not found"),
    ],
)
async def test_contextual_settings_are_checked_up_front(
    aiohttp_client: Callable[..., Any],
    stored_embedding: str,
    scripted: list[Any],
    settings: dict[str, Any],
    fragment: str,
) -> None:
    # VectorStoreChunkingStrategyContextualConfig's validators, and the mixin's "model_id is required" ValueError
    # (a 400, llama_stack/core/exceptions/mapping.py): on attach, on file batches and on store creation alike.
    server = await _server(aiohttp_client)
    strategy: Any = {"type": "contextual", "contextual": settings}
    async with _oai(server) as oai:
        store_id = await _store(oai, stored_embedding)
        file_id = await _upload(oai, DOCUMENT)
        calls = [
            oai.vector_stores.files.create(vector_store_id=store_id, file_id=file_id, chunking_strategy=strategy),
            oai.vector_stores.file_batches.create(store_id, file_ids=[file_id], chunking_strategy=strategy),
            oai.vector_stores.create(
                file_ids=[file_id],
                chunking_strategy=strategy,
                extra_body={"embedding_model": stored_embedding},
            ),
        ]
        for call in calls:
            with pytest.raises(openai.BadRequestError) as refused:
                await call
            assert fragment in _message(refused.value)
        assert [store.id for store in (await oai.vector_stores.list()).data] == [store_id]
        assert (await oai.vector_stores.files.list(store_id)).data == []
    assert scripted == []


async def test_a_refused_chunking_strategy_leaves_no_store_behind(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    # Bug: creating a store with file_ids and bad static chunking answered 400 after the store was made.
    server = await aiohttp_client(create_app(edge_with()))
    async with _oai(server) as oai:
        file_id = await _upload(oai, DOCUMENT)
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.vector_stores.create(
                file_ids=[file_id],
                chunking_strategy={
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
                },
                extra_body={"embedding_model": stored_embedding},
            )
        assert "max_chunk_size_tokens" in _message(refused.value)
        assert (await oai.vector_stores.list()).data == []


async def test_a_file_fails_when_no_chunk_gets_a_context(
    aiohttp_client: Callable[..., Any], stored_embedding: str, scripted: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # _execute_contextual_chunk_transformation: every chunk failed (here: timed out), every context empty, or the
    # document over contextual_retrieval_params.max_document_tokens (len // 4) -> the file is failed, server_error.
    monkeypatch.setattr(contextual, "RETRIES", 0)
    long_text = "harbour " * 600
    silent = USER.replace(DOCUMENT, "Nothing to say about this.")
    slow = USER.replace(DOCUMENT, "A slow tide.")
    section = {"contextual_retrieval_params": {"model": CONFIGURED, "max_document_tokens": 1000}}
    server = await _server(aiohttp_client, section, replies={silent: ""}, slow={slow: 30})
    strategy: Any = {"type": "contextual", "contextual": {"timeout_seconds": 1}}
    async with _oai(server) as oai:
        store_id = await _store(oai, stored_embedding)
        expected = {
            "A slow tide.": "Failed to contextualize any chunks for model scripted/chat",
            "Nothing to say about this.": "Failed to generate context using model scripted/chat: empty context for all",
            long_text: "Failed to process document for contextual retrieval: size (~1200 tokens) exceeds maximum "
            "allowed (1000 tokens)",
        }
        for text, message in expected.items():
            file_id = await _upload(oai, text)
            attached = await oai.vector_stores.files.create_and_poll(
                file_id=file_id,
                vector_store_id=store_id,
                chunking_strategy=strategy,
                poll_interval_ms=50,
            )
            assert attached.status == "failed" and attached.last_error is not None
            assert attached.last_error.code == "server_error" and attached.last_error.message.startswith(message)
            assert (await oai.vector_stores.files.content(file_id, vector_store_id=store_id)).data == []


async def test_rewrite_query_searches_what_the_model_wrote(
    aiohttp_client: Callable[..., Any], stored_embedding: str, scripted: list[Any]
) -> None:
    # core/routers/vector_io.py _rewrite_query_for_search: rewrite_query_params.prompt.format(query=...) as one user
    # message, its max_tokens (100) and temperature (0.3); the provider is asked the rewritten query, and the page's
    # search_query is that query (the mixin answers search_query=[request.query]).
    section = {"rewrite_query_params": {"model": CONFIGURED}}
    server = await _server(aiohttp_client, section, replies={REWRITE.format(query="boat night"): " reef ship\n"})
    async with _oai(server) as oai:
        store_id = await _store(oai, stored_embedding)
        file_id = await _upload(oai, DOCUMENT)
        await oai.vector_stores.files.create_and_poll(file_id=file_id, vector_store_id=store_id, poll_interval_ms=50)
        page = await oai.vector_stores.search(
            store_id, query=["boat", "night"], rewrite_query=True, extra_body={"search_mode": "keyword"}
        )
        assert page.model_extra is not None and page.model_extra["search_query"] == ["reef ship"]
        assert [hit.file_id for hit in page.data] == [file_id]  # "boat" alone is not in the file
        (asked,) = scripted
        assert asked.model == "scripted/chat" and (asked.max_tokens, asked.temperature) == (100, 0.3)
        assert [(m.role, m.content) for m in asked.messages] == [("user", REWRITE.format(query="boat night"))]
        plain = await oai.vector_stores.search(store_id, query="boat")
        assert plain.model_extra is not None and plain.model_extra["search_query"] == ["boat"]
        assert len(scripted) == 1


async def test_rewrite_query_without_a_configured_model_is_refused(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    # _rewrite_query_for_search raises ValueError("Query rewriting is not available") -> 400.
    server = await aiohttp_client(create_app(edge_with()))
    async with _oai(server) as oai:
        store_id = await _store(oai, stored_embedding)
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.vector_stores.search(store_id, query="ship", rewrite_query=True)
        message = _message(refused.value)
        assert message.startswith("Query rewriting is not available")
        assert "vector_stores.rewrite_query_params.model" in message


async def test_search_answers_one_page(aiohttp_client: Callable[..., Any], stored_embedding: str) -> None:
    # openai_vector_store_mixin.py openai_search_vector_store: has_more=False, next_page=None, always (OpenAI's
    # search request has no cursor to ask for a next page with); max_num_results cuts the list.
    server = await aiohttp_client(create_app(edge_with()))
    async with _oai(server) as oai:
        store_id = await _store(oai, stored_embedding)
        response = await server.post(
            "/v1/vector-io/insert",
            json={"vector_store_id": store_id, "chunks": [{"content": f"Ship number {i} passed."} for i in range(3)]},
        )
        assert response.status == 204
        page = await oai.vector_stores.search(store_id, query="ship", max_num_results=1)
        assert len(page.data) == 1 and not page.has_next_page()
        assert page.model_extra is not None and (page.model_extra["has_more"], page.model_extra["next_page"]) == (
            False,
            None,
        )
        assert (
            len([hit async for hit in await oai.vector_stores.search(store_id, query="ship", max_num_results=1)]) == 1
        )


async def test_inserted_chunks_take_a_ttl_and_are_served(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    # core/routers/vector_io.py insert_chunks logs ttl_seconds and hands the request on; no provider in 0.7.1
    # (faiss, sqlite-vec, ..., infinispan) reads it: the chunks are kept and served like any other (PocketStack's
    # chunks expire once the ttl ran out: test_inserted_chunks_expire_after_their_ttl).
    server = await aiohttp_client(create_app(edge_with()))
    async with _oai(server) as oai:
        store_id = await _store(oai, stored_embedding)
    chunk = {"content": DOCUMENT, "metadata": {"document_id": "log"}}
    response = await server.post(
        "/v1/vector-io/insert", json={"vector_store_id": store_id, "chunks": [chunk], "ttl_seconds": 60}
    )
    assert response.status == 204
    answer = await server.post("/v1/vector-io/query", json={"vector_store_id": store_id, "query": "reef"})
    assert [c["content"] for c in (await answer.json())["chunks"]] == [DOCUMENT]


async def test_a_store_created_with_an_unknown_file_records_it_failed(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    # openai_vector_store_mixin.py openai_create_vector_store attaches each file_id through
    # openai_attach_file_to_vector_store and logs a failure instead of failing the create; the attach records the
    # files API's error as the file's `failed` state (server_error). Its
    # tests/integration/vector_io/test_openai_vector_stores.py test_openai_vector_store_attach_files_on_creation
    # counts the file failed, lists it under filter="failed", and deletes it. A single attach of an unknown file
    # stays OpenAI's 404 (test_vector_store_files).
    server = await aiohttp_client(create_app(edge_with()))
    async with _oai(server) as oai:
        good = await _upload(oai, DOCUMENT)
        store = await oai.vector_stores.create(
            name="with a bad file",
            file_ids=[good, "invalid_file_id"],
            extra_body={"embedding_model": stored_embedding},
        )
        counts = store.file_counts
        assert (counts.completed, counts.failed, counts.in_progress, counts.cancelled, counts.total) == (1, 1, 0, 0, 2)
        listed = {f.id: f.status async for f in await oai.vector_stores.files.list(store.id)}
        assert listed == {good: "completed", "invalid_file_id": "failed"}
        (failed,) = (await oai.vector_stores.files.list(store.id, filter="failed")).data
        assert failed.id == "invalid_file_id" and failed.last_error is not None
        assert failed.last_error.code == "server_error" and "invalid_file_id" in failed.last_error.message
        assert (await oai.vector_stores.files.delete("invalid_file_id", vector_store_id=store.id)).deleted
        after = (await oai.vector_stores.retrieve(store.id)).file_counts
        assert (after.completed, after.failed, after.total) == (1, 0, 1)
        found = await oai.vector_stores.search(store.id, query="reef", extra_body={"search_mode": "keyword"})
        assert [hit.file_id for hit in found.data] == [good]


async def test_updating_a_files_attributes_changes_them_in_place(
    vector_store_app: TestClient[Any, Any], stored_embedding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # openai_vector_store_mixin.py openai_update_vector_store_file stores the new attributes and nothing else;
    # test_openai_vector_store_update_file asserts the answer is still `completed`. Here the chunks' attributes
    # change with them (search results and filters see the new ones), without embedding anything again.
    async with _oai(vector_store_app) as oai:
        store_id = await _store(oai, stored_embedding)
        file_id = await _upload(oai, DOCUMENT)
        attached = await oai.vector_stores.files.create(
            vector_store_id=store_id, file_id=file_id, attributes={"foo": "bar", "year": 2023}
        )
        assert attached.status == "completed"
        embedded: list[str] = []
        embed = VectorIOApi.embed

        async def counted(self: VectorIOApi, model: str, texts: list[str]) -> list[list[float]]:
            embedded.extend(texts)
            return await embed(self, model, texts)

        monkeypatch.setattr(VectorIOApi, "embed", counted)
        updated = await oai.vector_stores.files.update(
            file_id, vector_store_id=store_id, attributes={"foo": "baz", "rank": 2}
        )
        assert updated.status == "completed" and updated.attributes == {"foo": "baz", "rank": 2}
        retrieved = await oai.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
        assert retrieved.status == "completed" and retrieved.attributes == {"foo": "baz", "rank": 2}
        await asyncio.sleep(0.2)  # nothing was queued: a re-ingestion would show up here
        assert embedded == []

        async def found(where: Any) -> list[Any]:
            page = await oai.vector_stores.search(
                store_id, query="reef", filters=where, extra_body={"search_mode": "keyword"}
            )
            return page.data

        (hit,) = await found({"type": "eq", "key": "foo", "value": "baz"})
        assert hit.attributes is not None and (hit.attributes["foo"], hit.attributes["rank"]) == ("baz", 2)
        assert "year" not in hit.attributes and hit.attributes["file_id"] == file_id
        assert hit.attributes["filename"] == "log.txt"
        assert len(await found({"type": "gt", "key": "rank", "value": 1})) == 1
        assert await found({"type": "eq", "key": "foo", "value": "bar"}) == []
        assert await found({"type": "eq", "key": "year", "value": 2023}) == []
        assert embedded == []


async def test_attributes_updated_during_ingestion_reach_every_chunk(
    vector_store_app: TestClient[Any, Any], stored_embedding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The update lands after the ingestion read the old attributes and before it stored the chunks made with them.
    async with _oai(vector_store_app) as oai:
        store_id = await _store(oai, stored_embedding)
        file_id = await _upload(oai, DOCUMENT)
        embed = VectorIOApi.embed

        async def update_first(self: VectorIOApi, model: str, texts: list[str]) -> list[list[float]]:
            if DOCUMENT in texts:
                monkeypatch.setattr(VectorIOApi, "embed", embed)
                await self.files.update(store_id, file_id, {"foo": "new"})
            return await embed(self, model, texts)

        monkeypatch.setattr(VectorIOApi, "embed", update_first)
        attached = await oai.vector_stores.files.create(
            vector_store_id=store_id, file_id=file_id, attributes={"foo": "old"}
        )
        assert attached.status == "completed" and attached.attributes == {"foo": "new"}
        page = await oai.vector_stores.search(
            store_id,
            query="reef",
            filters={"type": "eq", "key": "foo", "value": "new"},
            extra_body={"search_mode": "keyword"},
        )
        assert [hit.file_id for hit in page.data] == [file_id]


async def test_stores_list_before_an_id(aiohttp_client: Callable[..., Any], stored_embedding: str) -> None:
    # Llama Stack's vector_io fastapi_routes.py list route takes `before`, and openai_vector_store_mixin.py
    # openai_list_vector_stores keeps the stores ahead of it in the listing order.
    server = await aiohttp_client(create_app(edge_with()))
    async with _oai(server) as oai:
        ids = [await _store(oai, stored_embedding) for _ in range(4)]  # oldest first
        newer = await oai.vector_stores.list(before=ids[1])  # newest first: those listed ahead of ids[1]
        assert [s.id for s in newer.data] == [ids[3], ids[2]] and not newer.has_more
        older = await oai.vector_stores.list(before=ids[2], order="asc")
        assert [s.id for s in older.data] == [ids[0], ids[1]] and not older.has_more
        # with a limit, the page just before the cursor (OpenAI's previous page), and has_more when more lie beyond
        back = await oai.vector_stores.list(before=ids[0], limit=2)
        assert [s.id for s in back.data] == [ids[2], ids[1]] and back.has_more
        extra = back.model_extra or {}
        assert (extra.get("first_id"), extra.get("last_id")) == (ids[2], ids[1])
    async with llama_stack_client.AsyncLlamaStackClient(
        base_url=str(server.make_url("")).rstrip("/"), max_retries=0
    ) as lls:
        listed = await lls.vector_stores.list(before=ids[1])
        assert [s.id for s in listed.data] == [ids[3], ids[2]]


async def test_inserted_chunks_expire_after_their_ttl(
    vector_store_app: TestClient[Any, Any], stored_embedding: str, vector_provider: dict[str, Any]
) -> None:
    # PocketStack's addition: Llama Stack 0.7.1's core/routers/vector_io.py insert_chunks accepts ttl_seconds and
    # no provider reads it. Here a chunk inserted with one is never found once that many seconds passed, and the
    # next search deletes it. The provider's clock is moved a minute on instead of waiting.
    server = vector_store_app
    kept = "The harbour master keeps the tide tables for the reef."
    async with (
        _oai(server) as oai,
        llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"), max_retries=0) as lls,
    ):
        store_id = await _store(oai, stored_embedding)
        provider = server.app[STACK].providers[vector_provider["provider_id"]].impl
        for chunk_id, text, ttl in (("log", DOCUMENT, 60), ("tides", kept, None)):
            embedding = (await oai.embeddings.create(model=stored_embedding, input=text)).data[0].embedding
            chunk: Any = {"chunk_id": chunk_id, "content": text, "metadata": {"document_id": chunk_id},
                          "chunk_metadata": {"document_id": chunk_id}, "embedding": embedding,
                          "embedding_model": stored_embedding, "embedding_dimension": len(embedding)}  # fmt: skip
            await lls.vector_io.insert(
                vector_store_id=store_id,
                chunks=[chunk],
                ttl_seconds=ttl if ttl is not None else llama_stack_client.omit,
            )

        async def contents(mode: str) -> list[str]:
            answer = await lls.vector_io.query(vector_store_id=store_id, query="reef", params={"mode": mode})
            return sorted(str(chunk.content) for chunk in answer.chunks)

        both = sorted([DOCUMENT, kept])
        for mode in ("vector", "keyword", "hybrid"):
            assert await contents(mode) == both, mode
        assert await provider.usage_bytes(store_id) == len(DOCUMENT.encode()) + len(kept.encode())
        provider.clock = lambda: time.time() + 61
        for mode in ("vector", "keyword", "hybrid"):
            assert await contents(mode) == [kept], mode
            page = await oai.vector_stores.search(store_id, query="reef", extra_body={"search_mode": mode})
            assert [hit.content[0].text for hit in page.data] == [kept], mode
        assert await provider.usage_bytes(store_id) == len(kept.encode())  # the expired chunk is gone
        assert (await oai.vector_stores.retrieve(store_id)).usage_bytes == len(kept.encode())
