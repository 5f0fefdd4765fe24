"""Concurrent embedding requests decoded together (inline::llama-cpp, embed_batch.py), on the real MiniLM.

A text's vector must not depend on what it was decoded with: grouped vectors equal llama-cpp-python's own
one-at-a-time embed() (cosine >= 0.9999), each back in its own request and place. A one-text search query
must not wait behind an ingestion's long request, nor behind a long chat generation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from pocketstack.errors import BadRequestError
from pocketstack.providers.inline.llama_cpp.embed_batch import SEQUENCES_PER_DECODE, EmbeddingBatcher
from pocketstack.providers.threads import CallThreads
from tests.support.config import CHAT_MODEL, edge_with

TEXTS = [
    "the sea at night",
    "a lighthouse keeper writes letters to nobody in particular",
    "the moon",
    "How does the harbour meet the storm?",
    "forests grow slowly, then all at once, and the river remembers every flood it carried",
    "a city",
    "bread, salt and olive oil",
    "Where is the nearest train station?",
    "twelve",
    "the quick brown fox jumps over the lazy dog near the riverbank at dawn",
]
NO_END = {"0": -100, "2": -100, "4": -100}  # SmolLM2's end-of-generation tokens: banned, the answer runs long


@pytest.fixture(scope="module")
def llm(embedding_gguf: Path) -> Iterator[Any]:
    from llama_cpp import Llama

    # As the provider loads an embedding model (provider.py _load)
    model = Llama(str(embedding_gguf), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2, verbose=False)
    yield model
    model.close()


@pytest.fixture
async def batcher(llm: Any) -> AsyncIterator[EmbeddingBatcher]:
    executor = CallThreads("llama-test")

    async def run(function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)

    yield EmbeddingBatcher(llm, run)
    executor.shutdown(wait=True)


def _alone(llm: Any, texts: list[str]) -> np.ndarray:
    """llama-cpp-python's embed(), one text per call: the reference."""
    return np.array([llm.embed(text, normalize=True) for text in texts], dtype=np.float64)


def _assert_same(got: list[list[float]], want: np.ndarray) -> None:
    vectors = np.array(got, dtype=np.float64)
    assert vectors.shape == want.shape
    cosines = np.sum(vectors * want, axis=1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(want, axis=1))
    assert cosines.min() >= 0.9999, cosines


async def test_concurrent_requests_share_decodes_and_get_their_own_vectors(batcher: EmbeddingBatcher, llm: Any) -> None:
    requests = [TEXTS[0:1], TEXTS[1:4], TEXTS[4:5], TEXTS[5:9], TEXTS[9:10]]
    answers = await asyncio.gather(*(batcher.embed(list(texts)) for texts in requests))
    assert batcher.largest_group == len(requests)  # all five in one decode or more, not one after another
    assert batcher.decodes == -(-len(TEXTS) // SEQUENCES_PER_DECODE)
    for texts, (vectors, tokens) in zip(requests, answers, strict=True):
        _assert_same(vectors, _alone(llm, list(texts)))
        assert tokens == sum(len(llm.tokenize(t.encode())) for t in texts)


async def test_a_short_request_is_not_queued_behind_a_long_one(batcher: EmbeddingBatcher, llm: Any) -> None:
    long = asyncio.ensure_future(batcher.embed([f"{text} ({n})" for n in range(4) for text in TEXTS]))
    short = asyncio.ensure_future(batcher.embed(["a one-line search query"]))
    done, _ = await asyncio.wait([long, short], return_when=asyncio.FIRST_COMPLETED)
    assert done == {short}  # it joined the first decode, beside the long request's first sequences
    assert len((await long)[0]) == 4 * len(TEXTS)  # (the model is free again: the reference may use it)
    _assert_same((await short)[0], _alone(llm, ["a one-line search query"]))


async def test_a_too_long_input_fails_its_request_only(batcher: EmbeddingBatcher, llm: Any) -> None:
    too_long = " ".join(["word"] * 600)
    results = await asyncio.gather(
        batcher.embed(["fine", too_long]), batcher.embed(["also fine"]), return_exceptions=True
    )
    assert isinstance(results[0], BadRequestError) and "Input 1 has" in results[0].message
    assert not isinstance(results[1], BaseException)
    _assert_same(results[1][0], _alone(llm, ["also fine"]))


async def test_a_cancelled_request_leaves_the_others_whole(batcher: EmbeddingBatcher, llm: Any) -> None:
    leaving = asyncio.ensure_future(batcher.embed(TEXTS * 3))
    staying = asyncio.ensure_future(batcher.embed(TEXTS[:3]))
    await asyncio.sleep(0)  # both waiting
    leaving.cancel()
    vectors, _ = await staying
    await asyncio.sleep(0.5)  # the decode the leaving request was in (if any) ends: the model is free again
    _assert_same(vectors, _alone(llm, TEXTS[:3]))
    assert batcher.waiting() == 0


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any], stored_embedding: str) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


async def test_concurrent_requests_over_http_match_one_at_a_time(
    oai: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    alone = [(await oai.embeddings.create(model=stored_embedding, input=text)).data[0].embedding for text in TEXTS]
    answers = await asyncio.gather(
        *(oai.embeddings.create(model=stored_embedding, input=TEXTS[i : i + 2]) for i in range(0, len(TEXTS), 2)),
        *(oai.embeddings.create(model=stored_embedding, input=text) for text in TEXTS),
    )
    grouped = [item.embedding for answer in answers[: len(TEXTS) // 2] for item in answer.data]
    single = [answer.data[0].embedding for answer in answers[len(TEXTS) // 2 :]]
    _assert_same(grouped, np.array(alone))
    _assert_same(single, np.array(alone))


async def test_an_embedding_does_not_wait_for_a_long_chat_generation(
    oai: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    """The chat and embedding models have their own places and threads: a search's query embedding is
    answered while a long generation is still streaming."""
    await oai.embeddings.create(model=stored_embedding, input="load the model first")
    stream = await oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_tokens=400,
        logit_bias=NO_END,
        stream=True,
    )
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, Any]] = []

    async def read() -> None:
        async for chunk in stream:
            arrivals.append((loop.time(), chunk))

    reader = asyncio.create_task(read())
    while not arrivals:  # generating now
        await asyncio.sleep(0.01)
    embedded = await oai.embeddings.create(model=stored_embedding, input="Where is the dragon?")
    answered = loop.time()
    await reader
    assert len(embedded.data[0].embedding) == 384
    assert [c.choices[0].finish_reason for _, c in arrivals if c.choices and c.choices[0].finish_reason] == ["length"]
    later = [chunk for at, chunk in arrivals if at > answered]
    assert len(later) > 100  # the answer went on streaming after the embedding was answered
