"""Telemetry of shields and vector stores: a `run_shield` span per shield run with its verdict (and the
verdicts counter), `search` spans over the query's embedding, `ingest` spans of attached files owned by
whoever attached them, `insert_chunks` spans, and each store's chunks, files and bytes on /metrics."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pocketstack.app import STACK, create_app
from pocketstack.errors import ServiceUnavailableError
from pocketstack.providers.base import ServedShield, Verdict
from pocketstack.providers.inline.pii.provider import PiiShield
from tests.support.config import edge_with
from tests.support.documents import FILES
from tests.support.otlp import otlp_receiver
from tests.support.spans import StoredSpan, children_of, stored_spans
from tests.support.users import As, credentials, with_test_users

SSN = "My SSN is 123-45-6789."
QUERY = "who lights the lamp for the ships?"
STORE_SPAN_FILTER = "gen_ai.data_source.id"


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any], stored_embedding: str) -> TestClient[Any, Any]:
    return await aiohttp_client(with_test_users(create_app(edge_with())))  # type: ignore[no-any-return]


@pytest.fixture
async def alice(server: TestClient[Any, Any]) -> AsyncIterator[openai.AsyncOpenAI]:
    client = As(server, "alice").openai()
    yield client
    await client.close()


@pytest.fixture
async def alice_lls(server: TestClient[Any, Any]) -> AsyncIterator[llama_stack_client.AsyncLlamaStackClient]:
    client = llama_stack_client.AsyncLlamaStackClient(
        base_url=str(server.make_url("")).rstrip("/"), max_retries=0, default_headers=credentials("alice")
    )
    yield client
    await client.close()


def _named(spans: list[StoredSpan], name: str) -> list[StoredSpan]:
    return [span for span in spans if span.name == name]


def _parent(spans: list[StoredSpan], span: StoredSpan) -> StoredSpan:
    (parent,) = [s for s in spans if s.span_id == span.parent_span_id and s.trace_id == span.trace_id]
    return parent


def _nowhere(spans: list[StoredSpan], text: str) -> None:
    for span in spans:
        assert text not in json.dumps([span.attributes, span.events]), span.name


async def _families(server: TestClient[Any, Any]) -> dict[str, list[Any]]:
    text = await (await server.get("/metrics")).text()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _verdicts(families: dict[str, list[Any]], shield: str, verdict: str) -> float:
    return sum(
        float(sample.value)
        for sample in families.get("pocketstack_safety_verdicts", [])
        if sample.name.endswith("_total")
        and sample.labels.get("pocketstack_shield_id") == shield
        and sample.labels.get("pocketstack_safety_verdict") == verdict
    )


def _gauge(families: dict[str, list[Any]], name: str, store_id: str) -> float | None:
    found = [s.value for s in families.get(name, []) if s.labels.get("gen_ai_data_source_id") == store_id]
    assert len(found) <= 1, found
    return found[0] if found else None


async def _owners(server: TestClient[Any, Any], spans: list[StoredSpan]) -> set[str]:
    ids = [span.span_id for span in spans]
    rows = await server.app[STACK].database.fetch(
        f"SELECT owner_principal FROM spans WHERE span_id IN ({', '.join('?' for _ in ids)})", ids
    )
    return {row["owner_principal"] for row in rows}


async def _seen_by(server: TestClient[Any, Any], user: str, key: str, value: str) -> list[str]:
    """The names of the spans `user` finds through the query API with attribute `key` = `value`."""
    body = {"attribute_filters": [{"key": key, "op": "eq", "value": value}], "attributes_to_return": [key]}
    return sorted(span["name"] for span in (await As(server, user).ok("POST", "/v1/telemetry/spans", body))["data"])


async def test_run_shield_verdicts_are_spans_and_counted(
    server: TestClient[Any, Any], alice_lls: llama_stack_client.AsyncLlamaStackClient
) -> None:
    before = await _families(server)
    blocked = await alice_lls.safety.run_shield(shield_id="pii", messages=[{"role": "user", "content": SSN}])
    fine = await alice_lls.safety.run_shield(shield_id="pii", messages=[{"role": "user", "content": "Hello there!"}])
    assert blocked.violation is not None and fine.violation is None
    spans = await stored_spans(server.app)
    violating, allowed = _named(spans, "run_shield pii")
    for span in (violating, allowed):
        assert _parent(spans, span).name == "Safety.run_shield" and span.status != "error"
        assert span.attributes["pocketstack.shield.id"] == "pii"
        assert span.attributes["pocketstack.provider_id"] == "pii"
        assert span.attributes["pocketstack.safety.inputs"] == 1
    assert violating.attributes["pocketstack.safety.verdict"] == "violation"
    assert violating.attributes["pocketstack.safety.violation_level"] == "error"
    assert violating.attributes["pocketstack.safety.categories"] == ["national_id"]
    assert allowed.attributes["pocketstack.safety.verdict"] == "allowed"
    assert "pocketstack.safety.categories" not in allowed.attributes
    # by default neither the checked text nor the shield's message (which may quote it) is recorded
    assert "pocketstack.safety.user_message" not in violating.attributes
    _nowhere(spans, "123-45-6789")
    after = await _families(server)
    assert _verdicts(after, "pii", "violation") == _verdicts(before, "pii", "violation") + 1
    assert _verdicts(after, "pii", "allowed") == _verdicts(before, "pii", "allowed") + 1
    # alice's shield runs are hers: bob's query finds none
    assert await _seen_by(server, "alice", "pocketstack.shield.id", "pii") == ["run_shield pii"] * 2
    assert await _seen_by(server, "bob", "pocketstack.shield.id", "pii") == []


async def test_a_moderation_is_a_shield_run_with_a_verdict_per_text(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI
) -> None:
    before = await _families(server)
    texts = ["write to ana@example.com", "a harmless sentence", "and another one"]
    moderation = await oai.moderations.create(input=texts, model="pii")
    assert [r.flagged for r in moderation.results] == [True, False, False]
    spans = await stored_spans(server.app)
    (run,) = _named(spans, "run_shield pii")
    assert _parent(spans, run).name == "Safety.run_moderation"
    expected = {
        "pocketstack.safety.verdict": "violation",
        "pocketstack.safety.inputs": 3,
        "pocketstack.safety.flagged_inputs": 1,
        "pocketstack.safety.categories": ["email"],
        "pocketstack.safety.violation_level": "error",
    }
    assert {key: run.attributes.get(key) for key in expected} == expected
    after = await _families(server)
    assert _verdicts(after, "pii", "violation") == _verdicts(before, "pii", "violation") + 1
    assert _verdicts(after, "pii", "allowed") == _verdicts(before, "pii", "allowed") + 2


async def test_a_failing_shield_marks_its_span_and_answers_as_before(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(self: PiiShield, shield: ServedShield, texts: list[str]) -> list[Verdict]:
        raise ServiceUnavailableError("the detectors are not loaded")

    monkeypatch.setattr(PiiShield, "run_moderation", down)
    with pytest.raises(openai.InternalServerError) as failed:
        await oai.moderations.create(input="anything", model="pii")
    assert failed.value.status_code == 503
    (run,) = _named(await stored_spans(server.app), "run_shield pii")
    assert run.status == "error" and run.attributes["error.type"] == "ServiceUnavailableError"
    assert "pocketstack.safety.verdict" not in run.attributes


async def test_a_guardrail_of_a_response_is_a_shield_run_in_its_trace(responses_app: TestClient[Any, Any]) -> None:
    oai = As(responses_app, None).openai()
    response = await oai.responses.create(
        model="chat", input="my card is 4111 1111 1111 1111", extra_body={"guardrails": ["pii"]}
    )
    await oai.close()
    assert (response.model_extra or {})["guardrail_violations"]
    spans = await stored_spans(responses_app.app)
    (run,) = _named(spans, "run_shield pii")
    assert run.attributes["pocketstack.safety.verdict"] == "violation"
    assert run.attributes["pocketstack.safety.categories"] == ["payment_card"]
    top = run
    while top.parent_span_id is not None:
        top = _parent(spans, top)
    assert top.name == "POST /v1/responses"  # the response's own trace


async def _store_with(oai: openai.AsyncOpenAI, model: str, *names: str) -> tuple[str, dict[str, str]]:
    """A store with FILES' `names` attached one by one and ingested; its id and the files' ids."""
    store = await oai.vector_stores.create(name="docs", extra_body={"embedding_model": model})
    ids = {}
    for name in names:
        ids[name] = (await oai.files.create(file=(name, io.BytesIO(FILES[name])), purpose="assistants")).id
        attached = await oai.vector_stores.files.create_and_poll(
            file_id=ids[name], vector_store_id=store.id, poll_interval_ms=50
        )
        assert attached.status == "completed", attached.last_error
    return store.id, ids


async def _ingest_spans(server: TestClient[Any, Any], count: int) -> list[StoredSpan]:
    """The spans once `count` ingestions ended (the worker may end one after the attach request answered)."""
    for _ in range(100):
        spans = await stored_spans(server.app)
        if len([s for s in spans if s.name.startswith("ingest ")]) >= count:
            return spans
        await asyncio.sleep(0.05)
    raise AssertionError("no ingest span")


async def test_an_attached_file_is_an_ingest_span_of_its_user(
    server: TestClient[Any, Any], alice: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    store_id, ids = await _store_with(alice, stored_embedding, "lighthouse.md")
    file_id = ids["lighthouse.md"]
    spans = await _ingest_spans(server, 1)
    (ingest,) = _named(spans, f"ingest {file_id}")
    # a background run: a trace of its own (its link to the attaching request: the test below)
    (attach,) = _named(spans, "VectorIO.openai_attach_file_to_vector_store")
    assert ingest.parent_span_id is None and ingest.trace_id != attach.trace_id
    chunks = (await alice.vector_stores.files.content(file_id=file_id, vector_store_id=store_id)).data
    stored = await alice.vector_stores.files.retrieve(file_id=file_id, vector_store_id=store_id)
    attributes = ingest.attributes
    assert attributes["gen_ai.data_source.id"] == store_id and attributes["pocketstack.file.id"] == file_id
    assert attributes["pocketstack.ingest.chunking_strategy"] == "auto"
    assert attributes["pocketstack.vector_store.chunks"] == len(chunks) >= 1
    assert attributes["pocketstack.ingest.tokens"] > 0  # counted by the embedding model's tokenizer
    assert attributes["pocketstack.ingest.bytes"] == stored.usage_bytes > 0
    assert attributes["pocketstack.ingest.status"] == "completed" and ingest.status != "error"
    below = children_of(spans, ingest)
    assert f"embeddings {stored_embedding}" in [s.name for s in below]
    (insert,) = [s for s in below if s.name == f"insert_chunks {store_id}"]
    assert insert.attributes["pocketstack.vector_store.chunks"] == len(chunks)
    # alice's, all of it; bob sees none of it
    assert await _owners(server, [ingest, *below]) == {"alice"}
    assert f"ingest {file_id}" in await _seen_by(server, "alice", "pocketstack.file.id", file_id)
    assert await _seen_by(server, "bob", "pocketstack.file.id", file_id) == []
    assert await _seen_by(server, "bob", STORE_SPAN_FILTER, store_id) == []


async def test_an_ingestion_that_outlives_its_request_is_still_its_users_and_links_to_it(
    aiohttp_client: Callable[..., Any], stored_embedding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        config = edge_with(vector_stores={"attach_wait_s": 0})  # the attach answers at once: ingestion comes after
        server: TestClient[Any, Any] = await aiohttp_client(with_test_users(create_app(config)))
        alice = As(server, "alice").openai()
        store = await alice.vector_stores.create(name="later", extra_body={"embedding_model": stored_embedding})
        upload = await alice.files.create(
            file=("lighthouse.md", io.BytesIO(FILES["lighthouse.md"])), purpose="assistants"
        )
        attached = await alice.vector_stores.files.create(file_id=upload.id, vector_store_id=store.id)
        assert attached.status == "in_progress"
        spans = await _ingest_spans(server, 1)
        await alice.close()
        (ingest,) = _named(spans, f"ingest {upload.id}")
        assert ingest.parent_span_id is None
        assert await _owners(server, [ingest, *children_of(spans, ingest)]) == {"alice"}
        assert await _seen_by(server, "bob", "pocketstack.file.id", upload.id) == []
        (api,) = receiver.wait_for("VectorIO.openai_attach_file_to_vector_store")
        (sent,) = receiver.wait_for(f"ingest {upload.id}")
        assert sent.links == ((api.trace_id, api.span_id),)
        await server.close()  # while the collector still listens


async def test_an_ingestion_resumed_at_start_is_its_stores_owners(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    first: TestClient[Any, Any] = await aiohttp_client(with_test_users(create_app(edge_with())))
    alice = As(first, "alice").openai()
    store_id, ids = await _store_with(alice, stored_embedding, "lighthouse.md")
    await alice.close()
    # as if the server had stopped mid-way: the next one resumes the file, with no request behind it
    await first.app[STACK].database.execute("UPDATE vector_store_files SET status = 'in_progress'")
    await first.close()
    second: TestClient[Any, Any] = await aiohttp_client(with_test_users(create_app(edge_with())))
    spans = await _ingest_spans(second, 2)
    first_run, resumed = _named(spans, f"ingest {ids['lighthouse.md']}")  # oldest first
    assert resumed.parent_span_id is None and resumed.trace_id != first_run.trace_id
    assert resumed.attributes["pocketstack.ingest.status"] == "completed"
    assert await _owners(second, [resumed, *children_of(spans, resumed)]) == {"alice"}
    assert await _seen_by(second, "bob", STORE_SPAN_FILTER, store_id) == []


async def test_a_file_that_cannot_be_read_fails_its_ingest_span(
    server: TestClient[Any, Any], alice: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    store = await alice.vector_stores.create(name="bad", extra_body={"embedding_model": stored_embedding})
    upload = await alice.files.create(file=("photo.png", io.BytesIO(b"\x89PNG\r\n\x1a\n")), purpose="assistants")
    attached = await alice.vector_stores.files.create_and_poll(
        file_id=upload.id, vector_store_id=store.id, poll_interval_ms=50
    )
    assert attached.status == "failed" and attached.last_error is not None
    (ingest,) = _named(await _ingest_spans(server, 1), f"ingest {upload.id}")
    assert ingest.status == "error" and ingest.attributes["error.type"] == attached.last_error.code
    assert ingest.attributes["pocketstack.ingest.status"] == "failed"


async def test_a_search_is_a_span_over_its_embedding(
    server: TestClient[Any, Any], alice: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    store_id, _ = await _store_with(alice, stored_embedding, "lighthouse.md", "bread.html")
    page = await alice.vector_stores.search(store_id, query=QUERY, max_num_results=3)
    spans = await stored_spans(server.app)
    (search,) = _named(spans, f"search {store_id}")
    api = _parent(spans, search)
    assert api.name == "VectorIO.openai_search_vector_store"
    assert _parent(spans, api).name == "POST /v1/vector_stores/{vector_store_id}/search"
    (embedding,) = children_of(spans, search)  # the query's embedding, in the same tree
    assert embedding.name == f"embeddings {stored_embedding}"
    expected = {
        "gen_ai.data_source.id": store_id,
        "pocketstack.vector_store.search_mode": "vector",
        "pocketstack.vector_store.max_results": 3,
        "pocketstack.vector_store.results": len(page.data),
        "pocketstack.vector_store.ranker": "rrf",
        "pocketstack.vector_store.rewrite_query": False,
    }
    assert {key: search.attributes.get(key) for key in expected} == expected and len(page.data) >= 1
    _nowhere(spans, "lights the lamp")  # the query is not recorded by default
    assert await _owners(server, [search, embedding]) == {"alice"}
    assert f"search {store_id}" in await _seen_by(server, "alice", STORE_SPAN_FILTER, store_id)
    assert await _seen_by(server, "bob", STORE_SPAN_FILTER, store_id) == []


async def test_raw_chunks_inserted_and_queried_are_spans(
    server: TestClient[Any, Any],
    alice: openai.AsyncOpenAI,
    alice_lls: llama_stack_client.AsyncLlamaStackClient,
    stored_embedding: str,
) -> None:
    store = await alice.vector_stores.create(name="raw", extra_body={"embedding_model": stored_embedding})
    chunks = [{"content": f"fact number {i} about lighthouses", "metadata": {"document_id": "d"}} for i in range(3)]
    await alice_lls.vector_io.insert(vector_store_id=store.id, chunks=chunks)  # type: ignore[arg-type]
    answer = await alice_lls.vector_io.query(
        vector_store_id=store.id, query="about lighthouses", params={"mode": "keyword", "max_chunks": 2}
    )
    spans = await stored_spans(server.app)
    (insert,) = _named(spans, f"insert_chunks {store.id}")
    assert insert.attributes["pocketstack.vector_store.chunks"] == 3
    assert _parent(spans, insert).name == "VectorIO.insert_chunks"
    (search,) = _named(spans, f"search {store.id}")
    assert _parent(spans, search).name == "VectorIO.query_chunks"
    assert search.attributes["pocketstack.vector_store.search_mode"] == "keyword"
    assert search.attributes["pocketstack.vector_store.max_results"] == 2
    assert search.attributes["pocketstack.vector_store.results"] == len(answer.chunks) == 2
    assert children_of(spans, search) == []  # a keyword search embeds nothing


async def test_metrics_show_each_stores_chunks_files_and_bytes(
    server: TestClient[Any, Any], alice: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    store_id, ids = await _store_with(alice, stored_embedding, "lighthouse.md", "comets.json")
    chunks = 0
    for file_id in ids.values():
        chunks += len((await alice.vector_stores.files.content(file_id=file_id, vector_store_id=store_id)).data)
    usage = (await alice.vector_stores.retrieve(store_id)).usage_bytes
    empty = await alice.vector_stores.create(name="empty", extra_body={"embedding_model": stored_embedding})
    families = await _families(server)
    assert _gauge(families, "pocketstack_vector_store_size", store_id) == chunks >= 2
    assert _gauge(families, "pocketstack_vector_store_files", store_id) == 2
    assert _gauge(families, "pocketstack_vector_store_usage_bytes", store_id) == usage > 0
    assert _gauge(families, "pocketstack_vector_store_files", empty.id) == 0
    assert _gauge(families, "pocketstack_vector_store_size", empty.id) is None  # no chunks: no row to count
    # detaching a file moves them
    await alice.vector_stores.files.delete(file_id=ids["comets.json"], vector_store_id=store_id)
    left = len((await alice.vector_stores.files.content(file_id=ids["lighthouse.md"], vector_store_id=store_id)).data)
    families = await _families(server)
    assert _gauge(families, "pocketstack_vector_store_size", store_id) == left < chunks
    assert _gauge(families, "pocketstack_vector_store_files", store_id) == 1


async def test_capture_content_records_the_query_and_the_shields_message(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    server: TestClient[Any, Any] = await aiohttp_client(create_app(edge_with(telemetry={"capture_content": True})))
    oai = As(server, None).openai()
    store_id, _ = await _store_with(oai, stored_embedding, "lighthouse.md")
    await oai.vector_stores.search(store_id, query=QUERY)
    blocked = await oai.moderations.create(input=SSN, model="pii")
    await oai.close()
    spans = await stored_spans(server.app)
    (search,) = _named(spans, f"search {store_id}")
    assert search.attributes["pocketstack.vector_store.query"] == QUERY
    (run,) = _named(spans, "run_shield pii")
    said = (blocked.results[0].model_extra or {})["user_message"]
    assert said and run.attributes["pocketstack.safety.user_message"] == said
