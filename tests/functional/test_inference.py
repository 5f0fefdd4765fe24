"""Inference through the official `openai` client (async) on the real default models, in-process.

Structured output (JSON, grammars) and tool calls: test_structured_output.py.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import struct
from collections.abc import Callable
from typing import Any

import llama_stack_client
import numpy as np
import openai
import pytest
from aiohttp.test_utils import TestClient
from openai.types.chat import ChatCompletionMessageParam

from pocketstack.app import STACK, create_app
from tests.support.config import CHAT_MODEL, edge_providers_with, edge_with

GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 24}
NO_END = {"0": -100, "2": -100, "4": -100}  # SmolLM2's end-of-generation tokens: banned, an answer runs long
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any], stored_embedding: str) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


async def test_chat(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, **GREEDY)
    choice = completion.choices[0]
    assert completion.model == CHAT_MODEL and completion.object == "chat.completion"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert 0 < completion.usage.completion_tokens <= GREEDY["max_tokens"]
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


async def test_stream_matches_the_whole_answer(oai: openai.AsyncOpenAI) -> None:
    whole = await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, **GREEDY)
    stream = await oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        **GREEDY,
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and whole.usage is not None
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")  # cached_tokens: the second reuses the first's
    assert [getattr(chunks[-1].usage, c) for c in counts] == [getattr(whole.usage, c) for c in counts]
    assert len({c.id for c in chunks}) == 1


async def test_seed_makes_sampling_repeatable(oai: openai.AsyncOpenAI) -> None:
    answers = [
        (await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, temperature=1.0, max_tokens=16, seed=42))
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert answers[0] == answers[1]


async def _conversation(oai: openai.AsyncOpenAI, turns: int, **extra: Any) -> tuple[list[str], list[int]]:
    """A seeded multi-turn chat: each turn's answer joins the history of the next."""
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": "You are a helpful assistant."}]
    answers, cached = [], []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"Tell me fact number {turn} about the sea, and why."})
        completion = await oai.chat.completions.create(
            model=CHAT_MODEL,
            messages=messages,
            temperature=0.8,
            max_tokens=40,
            seed=7,
            extra_body=extra,
        )
        answer = completion.choices[0].message.content or ""
        answers.append(answer)
        assert completion.usage is not None
        details = completion.usage.prompt_tokens_details
        cached.append(details.cached_tokens or 0 if details is not None else 0)
        messages.append({"role": "assistant", "content": answer})
    return answers, cached


async def test_reused_prompt_state_keeps_seeded_answers(oai: openai.AsyncOpenAI) -> None:
    """Each turn reuses the state its history left (answer included), and samples what a full evaluation does."""
    fresh, none_cached = await _conversation(oai, 4, cache_prompt=False)
    assert none_cached == [0, 0, 0, 0]
    reused, cached = await _conversation(oai, 4)
    assert reused == fresh
    assert all(later > earlier for earlier, later in itertools.pairwise(cached[1:])), cached
    assert cached[3] > 100  # the system prompt, three questions and three answers


async def test_interleaved_conversations_each_find_their_saved_state(oai: openai.AsyncOpenAI) -> None:
    first = [{"role": "user", "content": "Name a colour and say why you like it."}]
    second = [{"role": "user", "content": "Name an animal and say where it lives."}]
    for messages in (first, second):
        answer = await oai.chat.completions.create(model=CHAT_MODEL, messages=messages, max_tokens=30, seed=1)  # type: ignore[arg-type]
        messages += [{"role": "assistant", "content": answer.choices[0].message.content or ""},
                     {"role": "user", "content": "Tell me more."}]  # fmt: skip
    # The live context holds the second conversation now; the first one's state comes from the saved states.
    again = await oai.chat.completions.create(model=CHAT_MODEL, messages=first, max_tokens=8, seed=1)  # type: ignore[arg-type]
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    assert (again.usage.prompt_tokens_details.cached_tokens or 0) > 20


async def test_cache_prompt_must_be_a_boolean(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="cache_prompt"):
        await oai.chat.completions.create(
            model=CHAT_MODEL, messages=HELLO, max_tokens=4, extra_body={"cache_prompt": "yes"}
        )


async def test_stop_sequence_ends_the_answer(oai: openai.AsyncOpenAI) -> None:
    free = await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, temperature=0, max_tokens=40)
    text = free.choices[0].message.content or ""
    word = text.split()[1] if len(text.split()) > 1 else text[-1]
    stopped = await oai.chat.completions.create(
        model=CHAT_MODEL, messages=HELLO, temperature=0, max_tokens=40, stop=[word]
    )
    assert stopped.choices[0].message.content == text[: text.index(word)]
    assert stopped.choices[0].finish_reason == "stop"


async def test_logprobs(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(
        model=CHAT_MODEL, messages=HELLO, logprobs=True, top_logprobs=2, temperature=0, max_tokens=5
    )
    entries = completion.choices[0].logprobs.content  # type: ignore[union-attr]
    assert entries and len(entries) == completion.usage.completion_tokens  # type: ignore[union-attr]
    for entry in entries:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob, abs=1e-4)  # greedy picks the best


async def test_text_completion_and_stream(oai: openai.AsyncOpenAI) -> None:
    whole = await oai.completions.create(
        model=CHAT_MODEL, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert whole.object == "text_completion" and whole.choices[0].text
    assert whole.usage is not None and whole.usage.completion_tokens <= 8
    stream = await oai.completions.create(
        model=CHAT_MODEL, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True
    )
    assert "".join([c.choices[0].text async for c in stream]) == whole.choices[0].text
    with_usage = await oai.completions.create(
        model=CHAT_MODEL, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = [c async for c in with_usage]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")  # cached_tokens: later ones reuse the first's
    assert [getattr(chunks[-1].usage, c) for c in counts] == [getattr(whole.usage, c) for c in counts]
    assert all(c.usage is None for c in chunks[:-1])
    echoed = await oai.completions.create(model=CHAT_MODEL, prompt="Hi", max_tokens=2, temperature=0, echo=True)
    assert echoed.choices[0].text.startswith("Hi")


async def test_embeddings_match_the_reference(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    sentences = ["A man is eating food.", "A man is eating a piece of bread."]
    result = await oai.embeddings.create(model=stored_embedding, input=sentences)
    a, b = (np.array(item.embedding) for item in result.data)
    assert a.shape == (384,) and [item.index for item in result.data] == [0, 1]
    assert float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) == pytest.approx(0.755, abs=0.01)
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0

    encoded = await oai.embeddings.create(model=stored_embedding, input=sentences, encoding_format="base64")
    for plain, packed in zip(result.data, encoded.data, strict=True):
        raw = base64.b64decode(packed.embedding)  # type: ignore[arg-type]
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert np.allclose(decoded, plain.embedding, atol=1e-6)

    same = await oai.embeddings.create(model=stored_embedding, input=sentences[0], dimensions=384)
    assert np.allclose(same.data[0].embedding, a, atol=1e-3)  # alone vs in a batch: float noise only


@pytest.mark.parametrize(
    ("call", "status", "fragment"),
    [
        ({"model": "llama-cpp/nope", "messages": HELLO}, 404, "not found"),
        ({"model": CHAT_MODEL, "messages": []}, 400, "messages"),
        ({"model": CHAT_MODEL, "messages": HELLO, "temperature": 3}, 400, "temperature"),
        ({"model": CHAT_MODEL, "messages": HELLO, "n": 129}, 400, "128"),
        (
            {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hello " * 6000}]},
            400,
            "maximum context length",
        ),
        ({"model": CHAT_MODEL, "messages": HELLO, "max_tokens": 100000}, 400, "maximum context length"),
        ({"model": "llama-cpp/all-MiniLM-L6-v2", "messages": HELLO}, 400, "embedding model"),
        ({"model": CHAT_MODEL, "messages": HELLO, "tool_choice": "required"}, 400, "only allowed when 'tools'"),
    ],
)
async def test_bad_chat_requests(oai: openai.AsyncOpenAI, call: dict[str, Any], status: int, fragment: str) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await oai.chat.completions.create(**call)
    assert caught.value.status_code == status
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        ({"input": []}, "input"),
        ({"input": ""}, "input"),
        ({"input": "x", "dimensions": 100}, "384-dimensional"),
        ({"input": "x", "model": CHAT_MODEL}, "llm model"),
        ({"input": "word " * 600}, "maximum context length"),
    ],
)
async def test_bad_embedding_requests(
    oai: openai.AsyncOpenAI, stored_embedding: str, call: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.embeddings.create(**{"model": stored_embedding, **call})
    assert fragment in caught.value.message


async def test_stream_errors_before_the_first_token_keep_their_status(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "hello " * 6000}], stream=True
        )
    assert "maximum context length" in caught.value.message


async def test_streams_carry_the_request_id(server: TestClient[Any, Any]) -> None:
    body = {"model": CHAT_MODEL, "messages": HELLO, "max_tokens": 2, "stream": True}
    response = await server.post("/v1/chat/completions", json=body, headers={"X-Request-ID": "stream-1"})
    assert response.headers["X-Request-ID"] == "stream-1"
    assert (await response.text()).endswith("data: [DONE]\n\n")


async def test_disconnect_stops_generation(server: TestClient[Any, Any], caplog: pytest.LogCaptureFixture) -> None:
    body = {"model": CHAT_MODEL, "messages": HELLO, "max_tokens": 3000, "stream": True, "temperature": 1.0,
            "logit_bias": NO_END}  # fmt: skip
    response = await server.post("/v1/chat/completions", json=body)
    assert response.status == 200
    await response.content.readline()
    response.close()  # the client goes away mid-stream
    provider = server.app[STACK].providers["llama-cpp"].impl
    for _ in range(300):  # 3000 tokens take 45 s or more here; a cancelled stream frees the model at once
        if not any(r.busy for r in provider.pool._resident.values()):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the model stayed busy after the client left")
    quick = await server.post("/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO, "max_tokens": 1})
    assert quick.status == 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a client leaving is not a server error"


async def test_busy_model_answers_429_with_retry_after(aiohttp_client: Callable[..., Any]) -> None:
    providers = edge_providers_with(
        inference=[{"provider_id": "llama-cpp", "provider_type": "inline::llama-cpp", "config": {"max_waiting": 0}}]
    )
    server = await aiohttp_client(create_app(edge_with(providers=providers)))
    long = {"model": CHAT_MODEL, "messages": HELLO, "max_tokens": 200, "stream": True, "logit_bias": NO_END}
    first = await server.post("/v1/chat/completions", json=long)
    await first.content.readline()
    second = await server.post("/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO, "max_tokens": 1})
    assert second.status == 429
    assert second.headers["Retry-After"] == "1"
    assert (await second.json())["error"]["type"] == "rate_limit_error"
    first.close()


async def test_completions_are_stored_and_paged(oai: openai.AsyncOpenAI, server: TestClient[Any, Any]) -> None:
    ids = []
    for word in ("one", "two", "three"):
        messages = [{"role": "user", "content": f"Say {word}."}]
        ids.append((await oai.chat.completions.create(model=CHAT_MODEL, messages=messages, max_tokens=3)).id)  # type: ignore[arg-type]
    stream = await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, max_tokens=3, stream=True)
    streamed = [c async for c in stream]
    ids.append(streamed[0].id)
    await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, max_tokens=3, store=False)

    client = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"))
    page = await client.chat.completions.list(limit=2)
    assert [c.id for c in page.data] == ids[::-1][:2] and page.has_more
    assert (page.first_id, page.last_id) == (ids[3], ids[2])
    rest = await client.chat.completions.list(limit=10, after=page.last_id)
    assert [c.id for c in rest.data] == ids[::-1][2:] and not rest.has_more
    ascending = await client.chat.completions.list(order="asc", model=CHAT_MODEL)
    assert [c.id for c in ascending.data] == ids

    first = await client.chat.completions.retrieve(ids[0])
    assert first.input_messages[0].content == "Say one."
    assert first.model == CHAT_MODEL and first.choices[0].message.content
    assert (first.model_extra or {}).get("served_by") == "llama-cpp"
    whole_stream = await client.chat.completions.retrieve(ids[3])
    assert whole_stream.choices[0].message.content == "".join(
        c.choices[0].delta.content or "" for c in streamed if c.choices
    )

    with pytest.raises(llama_stack_client.NotFoundError):
        await client.chat.completions.retrieve("chatcmpl-nope")
    with pytest.raises(llama_stack_client.BadRequestError):
        await client.chat.completions.list(after="chatcmpl-nope")
    empty = await client.chat.completions.list(model="llama-cpp/other")
    assert empty.data == [] and (empty.first_id, empty.last_id, empty.has_more) == ("", "", False)
    await client.close()


async def test_generated_sdk_streams_typed_chunks(server: TestClient[Any, Any]) -> None:
    from pocketstack_client import Client
    from pocketstack_client.models import ChatCompletionChunk, ChatCompletionRequest
    from pocketstack_client.streaming import (
        PocketStackError,
        astream_openai_chat_completion,
        stream_openai_chat_completion,
    )

    api = Client(base_url=str(server.make_url("")).rstrip("/"))
    body = ChatCompletionRequest.from_dict({"model": CHAT_MODEL, "messages": HELLO, "max_tokens": 6, "temperature": 0})
    chunks = [chunk async for chunk in astream_openai_chat_completion(client=api, body=body)]
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks) and len(chunks) > 3
    text = "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices and isinstance(c.choices[0].delta.content, str)
    )
    sync_chunks = await asyncio.to_thread(lambda: list(stream_openai_chat_completion(client=api, body=body)))
    assert (
        "".join(
            c.choices[0].delta.content or ""
            for c in sync_chunks
            if c.choices and isinstance(c.choices[0].delta.content, str)
        )
        == text
    )
    bad = ChatCompletionRequest.from_dict({"model": "llama-cpp/nope", "messages": HELLO})
    with pytest.raises(PocketStackError) as caught:
        [c async for c in astream_openai_chat_completion(client=api, body=bad)]
    assert caught.value.status == 404 and "not found" in caught.value.message


async def test_rerank_with_a_gguf_cross_encoder(
    aiohttp_client: Callable[..., Any], home: Any, reranker_gguf: Any
) -> None:
    import os

    (home / "models").mkdir(parents=True, exist_ok=True)
    os.link(reranker_gguf, home / "models" / reranker_gguf.name)
    server = await aiohttp_client(create_app(edge_with()))
    client = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"))
    items = ["The sea is calm tonight.", "A recipe for bread.", "Lighthouses guide ships.", "Stock prices fell."]
    ranked = await client.alpha.inference.rerank(
        model="llama-cpp/tiny-reranker", query="lighthouse at sea", items=items
    )
    assert sorted(r.index for r in ranked) == [0, 1, 2, 3]
    scores = [r.relevance_score for r in ranked]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
    again = await client.alpha.inference.rerank(
        model="llama-cpp/tiny-reranker",
        query={"type": "text", "text": "lighthouse at sea"},
        items=items,
        max_num_results=2,
    )
    assert [r.index for r in again] == [r.index for r in ranked[:2]]
    assert [r.relevance_score for r in again] == pytest.approx([r.relevance_score for r in ranked[:2]], abs=1e-5)
    reference = await asyncio.to_thread(_reference_scores, reranker_gguf, "lighthouse at sea", items)
    by_index = {r.index: r.relevance_score for r in ranked}
    assert [by_index[i] for i in range(4)] == pytest.approx(reference, abs=1e-3)
    with pytest.raises(llama_stack_client.BadRequestError) as caught:
        await client.alpha.inference.rerank(model=CHAT_MODEL, query="q", items=["a"])
    assert "rerank needs a rerank model" in str(caught.value)
    await client.close()


def _reference_scores(reranker: Any, query: str, items: list[str]) -> list[float]:
    """tanh(pooler · h_CLS) · classifier in numpy, h_CLS from the same encoder with CLS pooling."""
    import llama_cpp

    head = np.load(reranker.with_name("head.npz"))
    llm = llama_cpp.Llama(
        str(reranker.with_name("cls-encoder.gguf")), embedding=True, n_ctx=512, n_batch=512, verbose=False
    )
    vocab = llm._model.vocab
    cls, sep = llama_cpp.llama_vocab_bos(vocab), llama_cpp.llama_vocab_sep(vocab)
    # The importer's flags for a BERT vocabulary: [CLS] added, "EOS" (absent, so [SEP]) added, no extra [SEP].
    assert llama_cpp.llama_vocab_get_add_bos(vocab) and llama_cpp.llama_vocab_get_add_eos(vocab)
    assert (
        not llama_cpp.llama_vocab_get_add_sep(vocab) and llama_cpp.llama_vocab_eos(vocab) == llama_cpp.LLAMA_TOKEN_NULL
    )
    scores = []
    for item in items:
        # so llama.cpp's pair format (BOS q EOS SEP d EOS) is BERT's own: [CLS] q [SEP] d [SEP]
        q = llm.tokenize(query.encode(), add_bos=False, special=False)
        d = llm.tokenize(item.encode(), add_bos=False, special=False)
        tokens = [cls, *q, sep, *d, sep]
        # llama-cpp-python leaves these internal helpers unannotated.
        llm._batch.reset()  # type: ignore[no-untyped-call]
        llm._batch.add_sequence(tokens, 0, True)
        llm._ctx.kv_cache_clear()  # type: ignore[no-untyped-call]
        llm._ctx.decode(llm._batch)
        hidden = np.array(llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, 0)[:384])
        pooled = np.tanh(head["pooler.dense.weight"] @ hidden + head["pooler.dense.bias"])
        scores.append(float(head["classifier.weight"][0] @ pooled + head["classifier.bias"][0]))
    llm.close()
    return scores


async def test_unknown_token_ids_are_400_not_a_crash(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.completions.create(model=CHAT_MODEL, prompt=[99999999], max_tokens=2)
    assert "Token ids" in caught.value.message
    with pytest.raises(openai.BadRequestError):
        await oai.embeddings.create(model=stored_embedding, input=[[1, 2, -5]])
    still_alive = await oai.completions.create(model=CHAT_MODEL, prompt=[1, 2, 3], max_tokens=2)
    assert still_alive.choices[0].text is not None


@pytest.mark.parametrize("bias", [{"²": 1}, {"-1": 5}, {"x": 1}])
async def test_bad_logit_bias_keys_are_400(oai: openai.AsyncOpenAI, bias: dict[str, int]) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, logit_bias=bias, max_tokens=2)
    assert "logit_bias" in caught.value.message


async def test_models_run_side_by_side(server: TestClient[Any, Any], stored_embedding: str) -> None:
    """An embedding is answered while a long chat stream is still running: one thread per model."""
    body = {"model": CHAT_MODEL, "messages": HELLO, "max_tokens": 400, "stream": True, "logit_bias": NO_END}
    stream = await server.post("/v1/chat/completions", json=body)
    await stream.content.readline()
    embedded = await server.post("/v1/embeddings", json={"model": stored_embedding, "input": "hello"})
    assert embedded.status == 200
    assert not stream.content.at_eof(), "the stream should still be running"
    stream.close()
