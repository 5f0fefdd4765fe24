"""Issue 20's acceptance: a real OTLP receiver gets the spans of a chat, a stream, a RAG response with
file_search and a shielded request, and the local query API returns the very same trees."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import STACK, create_app
from tests.support.config import edge_providers_with, edge_with
from tests.support.documents import store_of
from tests.support.otlp import Receiver, otlp_receiver
from tests.support.scripted import CHAT, scripted_entry

COMET = "What does a comet grow near the sun?"
CALLS = {COMET: [{"name": "file_search", "arguments": json.dumps({"query": "comet tail near the sun"})}]}
Edge = tuple[str, str, str]  # (span id, parent span id or "", name)


def _trace_of(headers: Any) -> str:
    version, trace_id, _span, _flags = headers["traceresponse"].split("-")
    assert version == "00"
    return str(trace_id)


def _received(receiver: Receiver, trace_id: str) -> set[Edge]:
    with receiver.lock:
        return {(s.span_id, s.parent_span_id, s.name) for s in receiver.spans if s.trace_id == trace_id}


async def _queried(server: TestClient[Any, Any], root: str) -> set[Edge]:
    async with server.post(f"/v1/telemetry/spans/{root}/tree", json={}) as answer:
        assert answer.status == 200, await answer.text()
        tree = (await answer.json())["data"]
    return {(span_id, span.get("parent_span_id") or "", span["name"]) for span_id, span in tree.items()}


async def test_the_collector_and_the_query_api_see_the_same_trees(
    aiohttp_client: Callable[..., Any],
    scripted: list[models.ChatCompletionRequest],
    stored_embedding: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = edge_with(
        providers=edge_providers_with(
            inference=[*edge_providers_with()["inference"], scripted_entry(replies={"capital?": "Paris."}, calls=CALLS)]
        ),
        registered_resources={"models": [CHAT], "shields": [{"shield_id": "pii", "provider_id": "pii"}]},
    )
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        server: TestClient[Any, Any] = await aiohttp_client(create_app(config))
        oai = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
        store = await store_of(oai, stored_embedding)
        ask = [{"role": "user", "content": "The capital?"}]
        traces: dict[str, str] = {}

        chat = await oai.chat.completions.with_raw_response.create(model="chat", messages=ask)  # type: ignore[arg-type]
        traces["chat"] = _trace_of(chat.headers)
        async with oai.chat.completions.with_streaming_response.create(
            model="chat",
            messages=ask,  # type: ignore[arg-type]
            stream=True,
        ) as stream:
            traces["stream"] = _trace_of(stream.headers)
            assert [line async for line in stream.iter_lines() if line][-1] == "data: [DONE]"
        tools: Any = [{"type": "file_search", "vector_store_ids": [store]}]
        rag = await oai.responses.with_raw_response.create(model="chat", input=COMET, tools=tools)
        traces["rag"] = _trace_of(rag.headers)
        assert rag.parse().output[0].type == "file_search_call"
        shielded = await oai.chat.completions.with_raw_response.create(
            model="chat",
            messages=[{"role": "user", "content": "my card is 4111 1111 1111 1111"}],
            extra_body={"guardrails": ["pii"]},
        )
        traces["shielded"] = _trace_of(shielded.headers)
        await oai.close()

        telemetry = server.app[STACK].telemetry
        assert telemetry is not None and telemetry.flush()
        expected_below = {
            "chat": {"POST /v1/chat/completions", "chat chat"},
            "stream": {"POST /v1/chat/completions", "chat chat"},
            "rag": {"POST /v1/responses", "invoke_agent", "execute_tool file_search", f"search {store}"},
            "shielded": {"POST /v1/chat/completions", "run_shield pii"},
        }
        for kind, trace_id in traces.items():
            received = _received(receiver, trace_id)
            names = {name for _, _, name in received}
            assert expected_below[kind] <= names, (kind, sorted(names))
            (root,) = [span_id for span_id, parent, _ in received if not parent]
            assert await _queried(server, root) == received, kind
        (embedding,) = [
            (span_id, parent)
            for span_id, parent, name in _received(receiver, traces["rag"])
            if name.startswith("embeddings ")
        ]
        (search,) = [span_id for span_id, _, name in _received(receiver, traces["rag"]) if name.startswith("search ")]
        assert embedding[1] == search  # the query's embedding ran inside the search
        await server.close()  # while the collector still listens
