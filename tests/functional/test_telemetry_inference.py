"""Telemetry of the inference path: GenAI spans under the API span, content only when asked for,
fallbacks named, `traceparent` carried to a remote, and the GenAI, queue and model metrics on /metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families

from pocketstack._generated import models
from pocketstack.app import create_app
from tests.support.config import CHAT_MODEL, edge_providers_with, edge_with
from tests.support.scripted import scripted_entry
from tests.support.spans import StoredSpan, children_of, stored_spans

SAID = "Say hello to the lighthouse keeper."
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": SAID}]
GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 12, "top_p": 0.9, "seed": 7}
CHAT_SPAN = f"chat {CHAT_MODEL}"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any], stored_embedding: str) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


def _only(spans: list[StoredSpan], name: str) -> StoredSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _no_text_anywhere(spans: list[StoredSpan], *texts: str) -> None:
    for span in spans:
        recorded = json.dumps([span.attributes, span.events])
        for text in texts:
            assert text not in recorded, (span.name, text)


async def test_a_chat_is_a_genai_span_under_the_api_span(server: TestClient[Any, Any], oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, **GREEDY)
    spans = await stored_spans(server.app)
    http = _only(spans, "POST /v1/chat/completions")
    (api,) = children_of(spans, http)
    assert api.name == "Inference.openai_chat_completion"
    (chat,) = children_of(spans, api)
    assert chat.name == CHAT_SPAN and chat.kind == "internal"  # llama.cpp runs in the server
    attributes = chat.attributes
    assert completion.usage is not None
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": CHAT_MODEL,
        "gen_ai.response.model": CHAT_MODEL,
        "gen_ai.provider.name": "llama_cpp",
        "pocketstack.provider_id": "llama-cpp",
        "pocketstack.attempt": 1,
        "gen_ai.request.max_tokens": 12,
        "gen_ai.request.temperature": 0,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.seed": 7,
        "gen_ai.response.id": completion.id,
        "gen_ai.response.finish_reasons": [completion.choices[0].finish_reason],
        "gen_ai.usage.input_tokens": completion.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": completion.usage.completion_tokens,
    }
    assert {key: attributes.get(key) for key in expected} == expected
    assert "gen_ai.usage.cache_read.input_tokens" in attributes
    assert "pocketstack.fallback" not in attributes and "error.type" not in attributes
    # a whole answer has a first token too: llama.cpp generates token by token and the provider notes it
    assert 0 < attributes["gen_ai.server.time_to_first_token"] < chat.duration_s
    assert attributes["pocketstack.model.loaded_now"] is True  # the first request waited for the load
    # the default: no prompt or completion text anywhere in what was stored
    assert "gen_ai.input.messages" not in attributes and "gen_ai.output.messages" not in attributes
    _no_text_anywhere(spans, SAID, "lighthouse", str(completion.choices[0].message.content).strip())


async def test_a_stream_span_lasts_to_its_end_with_usage_and_first_token(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI
) -> None:
    stream = await oai.chat.completions.create(
        model=CHAT_MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}, **GREEDY
    )
    chunks = [chunk async for chunk in stream]
    usage = chunks[-1].usage
    assert usage is not None
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    bare = await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, stream=True, **GREEDY)
    content_chunks = len([c async for c in bare if c.choices and c.choices[0].delta.content])
    spans = [s for s in await stored_spans(server.app) if s.name == CHAT_SPAN]
    assert len(spans) == 2
    with_usage, without = spans
    assert with_usage.attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert with_usage.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert with_usage.attributes["gen_ai.response.finish_reasons"] == finish
    assert with_usage.attributes["gen_ai.response.id"] == chunks[0].id
    assert 0 < with_usage.attributes["gen_ai.server.time_to_first_token"] < with_usage.duration_s
    # no usage chunk asked for: the output tokens are the content chunks (one token each), no input count
    assert without.attributes["gen_ai.usage.output_tokens"] == content_chunks
    assert "gen_ai.usage.input_tokens" not in without.attributes
    assert "pocketstack.stream.abandoned" not in with_usage.attributes


async def test_a_client_leaving_a_stream_marks_its_span(server: TestClient[Any, Any]) -> None:
    body = {"model": CHAT_MODEL, "messages": HELLO, "stream": True, "max_tokens": 400,
            "logit_bias": {"0": -100, "2": -100, "4": -100}}  # fmt: skip
    response = await server.post("/v1/chat/completions", json=body)
    assert response.status == 200
    for _ in range(3):
        await response.content.readline()
    response.close()
    for _ in range(100):
        spans = [s for s in await stored_spans(server.app) if s.name == CHAT_SPAN]
        if spans:
            break
        await asyncio.sleep(0.1)
    (chat,) = spans
    assert chat.attributes["pocketstack.stream.abandoned"] is True
    assert chat.attributes["error.type"] == "cancelled"
    assert chat.status != "error"  # the client left; nothing failed


async def test_a_request_that_waited_for_the_model_says_how_long(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI
) -> None:
    await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, **GREEDY)  # loaded
    await asyncio.gather(*(oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, **GREEDY) for _ in range(2)))
    spans = [s for s in await stored_spans(server.app) if s.name == CHAT_SPAN][1:]
    waits = [s.attributes.get("pocketstack.queue.wait_s") for s in spans]
    assert len([w for w in waits if w is not None and w > 0]) == 1, waits  # one ran, the other queued


async def test_embeddings_are_a_span_with_their_token_usage(
    server: TestClient[Any, Any], stored_embedding: str
) -> None:
    texts = ["the first text", "a second one"]
    response = await server.post("/v1/embeddings", json={"model": stored_embedding, "input": texts})
    assert response.status == 200
    usage = (await response.json())["usage"]
    spans = await stored_spans(server.app)
    span = _only(spans, f"embeddings {stored_embedding}")
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert span.attributes["pocketstack.embeddings.count"] == 2
    assert span.attributes["gen_ai.request.encoding_formats"] == ["float"]
    _no_text_anywhere(spans, "the first text")


@pytest.fixture
async def captured(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    config = edge_with(telemetry={"capture_content": True})
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


async def test_content_is_recorded_when_the_config_opts_in(captured: TestClient[Any, Any]) -> None:
    oai = openai.AsyncOpenAI(base_url=str(captured.make_url("/v1")), api_key="unused", max_retries=0)
    async with oai:
        whole = await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, **GREEDY)
        stream = await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, stream=True, **GREEDY)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    first, second = [s for s in await stored_spans(captured.app) if s.name == CHAT_SPAN]
    for span, text in ((first, whole.choices[0].message.content), (second, streamed)):
        inputs = json.loads(span.attributes["gen_ai.input.messages"])
        assert inputs == [{"role": "user", "parts": [{"type": "text", "content": SAID}]}]
        (output,) = json.loads(span.attributes["gen_ai.output.messages"])
        assert output["role"] == "assistant" and output["finish_reason"] in ("stop", "length")
        assert output["parts"] == [{"type": "text", "content": text}]


# -- remotes: the fallback, and the trace carried upstream --------------------------------------------


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[TestServer, dict[str, Any]]]:
    """An OpenAI-compatible stub: records the headers of each chat request; a 500 while `down`."""
    state: dict[str, Any] = {"down": False, "headers": []}

    async def listed(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "upstream", "object": "model"}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        state["headers"].append(dict(request.headers))
        if state["down"]:
            return web.json_response({"error": {"message": "overloaded"}}, status=500)
        body = await request.json()
        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        head = {"id": "up-1", "created": 1, "model": "upstream"}
        if body.get("stream"):
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for delta, finish in (({"role": "assistant", "content": "from"}, None), ({"content": " afar"}, "stop")):
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                chunk = {**head, "object": "chat.completion.chunk", "choices": [choice]}
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            return response
        message = {"role": "assistant", "content": "from afar"}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return web.json_response({**head, "object": "chat.completion", "choices": [choice], "usage": usage})

    app = web.Application()
    app.router.add_get("/v1/models", listed)
    app.router.add_post("/v1/chat/completions", chat)
    stub = TestServer(app)
    async with stub:
        yield stub, state


def _remote_app(remote: TestServer) -> web.Application:
    gpu_box = {"provider_id": "gpu-box", "provider_type": "remote::vllm",
               "config": {"url": str(remote.make_url("/v1")), "health_interval_s": 3600}}  # fmt: skip
    smart = {"model_id": "smart", "provider_id": "gpu-box", "provider_model_id": "upstream", "model_type": "llm",
             "fallbacks": [{"provider_id": "scripted", "provider_model_id": "chat"}]}  # fmt: skip
    config = edge_with(
        providers=edge_providers_with(inference=[gpu_box, scripted_entry()]),
        registered_resources={"models": [smart], "shields": []},
    )
    return create_app(config)


async def test_a_fallback_names_the_provider_that_served(
    aiohttp_client: Callable[..., Any],
    scripted: list[models.ChatCompletionRequest],
    upstream: tuple[TestServer, dict[str, Any]],
) -> None:
    remote, state = upstream
    server = await aiohttp_client(_remote_app(remote))
    state["down"] = True
    response = await server.post("/v1/chat/completions", json={"model": "smart", "messages": HELLO})
    assert response.status == 200 and response.headers["X-PocketStack-Provider"] == "scripted"
    spans = await stored_spans(server.app)
    api = _only(spans, "Inference.openai_chat_completion")
    failed, served = children_of(spans, api)
    assert (failed.name, served.name) == ("chat smart", "chat smart")
    assert failed.kind == "client" and failed.status == "error"  # a remote: a network hop
    assert failed.attributes["gen_ai.provider.name"] == "vllm"
    assert failed.attributes["pocketstack.provider_id"] == "gpu-box"
    assert failed.attributes["error.type"] == "UpstreamStatusError"
    assert served.attributes["pocketstack.provider_id"] == "scripted"
    assert served.attributes["pocketstack.fallback"] is True
    assert served.attributes["pocketstack.attempt"] == 2
    assert "error.type" not in served.attributes


@pytest.mark.parametrize("stream", [False, True])
async def test_the_client_trace_reaches_the_remote(
    aiohttp_client: Callable[..., Any],
    scripted: list[models.ChatCompletionRequest],
    upstream: tuple[TestServer, dict[str, Any]],
    stream: bool,
) -> None:
    remote, state = upstream
    server = await aiohttp_client(_remote_app(remote))
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    body = {"model": "smart", "messages": HELLO, "stream": stream}
    response = await server.post("/v1/chat/completions", json=body, headers={"traceparent": traceparent})
    assert response.status == 200 and "afar" in await response.text()
    spans = await stored_spans(server.app)
    chat = _only(spans, "chat smart")
    assert chat.trace_id == CLIENT_TRACE
    (headers,) = state["headers"]
    assert headers["traceparent"] == f"00-{CLIENT_TRACE}-{chat.span_id}-01"  # the remote's parent: our span
    assert chat.attributes["gen_ai.usage.output_tokens"] == (2 if stream else 3)


# -- metrics -------------------------------------------------------------------------------------------


def _samples(text: str, family_name: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == family_name
        for sample in family.samples
    ]


def _count(text: str, family_name: str, **labels: str) -> float:
    return sum(
        value
        for name, found, value in _samples(text, family_name)
        if name.endswith("_count") and all(found.get(k) == v for k, v in labels.items())
    )


async def test_metrics_move_after_a_chat(server: TestClient[Any, Any], oai: openai.AsyncOpenAI) -> None:
    async def scrape() -> str:
        response = await server.get("/metrics")
        assert response.status == 200
        return await response.text()

    model = {"gen_ai_request_model": CHAT_MODEL, "gen_ai_provider_name": "llama_cpp"}
    before = await scrape()
    await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, **GREEDY)
    after = await scrape()
    for family, labels in (
        ("gen_ai_server_request_duration_seconds", model),
        ("gen_ai_client_operation_duration_seconds", model),
        ("gen_ai_server_time_to_first_token_seconds", model),
        ("gen_ai_server_time_per_output_token_seconds", model),
        ("gen_ai_client_token_usage", {**model, "gen_ai_token_type": "input"}),
        ("gen_ai_client_token_usage", {**model, "gen_ai_token_type": "output"}),
        ("pocketstack_queue_wait_seconds", {}),
    ):
        assert _count(after, family, **labels) == _count(before, family, **labels) + 1, family
    model_file = "SmolLM2-135M-Instruct.Q4_1.gguf"
    loaded = [
        v for _, labels, v in _samples(after, "pocketstack_model_loaded") if labels["pocketstack_model"] == model_file
    ]
    assert loaded == [1.0]
    memory = [
        v
        for _, labels, v in _samples(after, "pocketstack_model_memory_bytes")
        if labels["pocketstack_model"] == model_file
    ]
    assert memory and memory[0] > 90_000_000  # the weights (~97 MB) and the KV cache
    depth = [
        v for _, labels, v in _samples(after, "pocketstack_queue_depth") if labels["pocketstack_model"] == model_file
    ]
    assert depth == [0.0]


async def test_metrics_show_each_remote_breaker(
    aiohttp_client: Callable[..., Any],
    scripted: list[models.ChatCompletionRequest],
    upstream: tuple[TestServer, dict[str, Any]],
) -> None:
    remote, _state = upstream
    server = await aiohttp_client(_remote_app(remote))
    response = await server.post("/v1/chat/completions", json={"model": "smart", "messages": HELLO})
    assert response.status == 200  # the server has started (its providers with it), the remote served
    text = await (await server.get("/metrics")).text()
    states = [
        v
        for _, labels, v in _samples(text, "pocketstack_remote_breaker_state")
        if labels["pocketstack_provider_id"] == "gpu-box"
    ]
    assert states == [0.0]  # closed
