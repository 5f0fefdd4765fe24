"""Continuous batching in inline::llama-cpp (`parallel` > 1): answers decoded together, one batch per token.

Every answer must be what it would be alone (greedy and seeded, logprobs and grammars too), a client
that leaves frees its slot for a waiting request, the queue limit holds, and a conversation's next
turn reuses its slot's or a saved prompt state. Driven by the official `openai` client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import openai
import pytest
from aiohttp.test_utils import TestClient
from openai.types.chat import ChatCompletionMessageParam

from pocketstack.app import STACK, create_app
from tests.support.config import CHAT_MODEL, edge_providers_with, edge_with

NO_END = {"0": -100, "2": -100, "4": -100}  # SmolLM2's end-of-generation tokens: banned, an answer runs long
TOPICS = ["the sea", "a lighthouse", "the moon", "a forest", "a city", "a river"]


def _server_config(**config: Any) -> Any:
    entry = {"provider_id": "llama-cpp", "provider_type": "inline::llama-cpp", "config": config}
    return edge_with(providers=edge_providers_with(inference=[entry]))


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(_server_config(parallel=4)))  # type: ignore[no-any-return]


def _ask(topic: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": f"Write two sentences about {topic}."}]


async def _streamed(oai: openai.AsyncOpenAI, messages: list[ChatCompletionMessageParam], **options: Any) -> str:
    stream = await oai.chat.completions.create(model=CHAT_MODEL, messages=messages, stream=True, **options)
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


def _scheduler(server: TestClient[Any, Any]) -> Any:
    provider = server.app[STACK].providers["llama-cpp"].impl
    (resident,) = [r for r in provider.pool._resident.values() if not r.key.embedding]
    return resident.scheduler


async def test_concurrent_streams_each_get_their_own_greedy_answer(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any]
) -> None:
    """Six streams at once on four slots (two wait for a slot): each text is the one it gets alone."""
    options = {"temperature": 0, "max_tokens": 24}
    alone = [await _streamed(oai, _ask(topic), **options) for topic in TOPICS]
    together = await asyncio.gather(*(_streamed(oai, _ask(topic), **options) for topic in TOPICS))
    assert list(together) == alone
    assert len(set(alone)) == len(alone) and all(alone)  # six different answers, not one repeated
    assert _scheduler(server) is not None  # they went through the batch loop


async def test_a_seeded_answer_is_the_same_alone_and_beside_others(oai: openai.AsyncOpenAI) -> None:
    seeded = {"temperature": 1.0, "max_tokens": 32, "seed": 42}
    alone = await _streamed(oai, _ask("the sea"), **seeded)
    others = [
        _streamed(oai, _ask(topic), temperature=1.0, max_tokens=40, seed=i) for i, topic in enumerate(TOPICS[1:4])
    ]
    beside, *_ = await asyncio.gather(_streamed(oai, _ask("the sea"), **seeded), *others)
    assert beside == alone


async def test_batched_answers_match_the_one_at_a_time_path(aiohttp_client: Callable[..., Any]) -> None:
    """`parallel: 1` (one answer at a time, llama-cpp-python's own loop) gives the same seeded text."""
    seeded = {"temperature": 0.8, "max_tokens": 32, "seed": 3, "presence_penalty": 0.5, "logit_bias": {"13": 2}}
    answers = []
    for parallel in (1, 4):  # one server after the other: they share the test's home
        server = await aiohttp_client(create_app(_server_config(parallel=parallel)))
        client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
        answers.append(
            list(await asyncio.gather(*(_streamed(client, _ask("a lighthouse"), **seeded) for _ in range(3))))
        )
        await client.close()
        await server.close()
    assert answers[1] == answers[0] and answers[0][0]


async def test_a_client_leaving_frees_its_slot_for_a_waiting_request(aiohttp_client: Callable[..., Any]) -> None:
    server = await aiohttp_client(create_app(_server_config(parallel=2)))
    long = {"model": CHAT_MODEL, "messages": _ask("the sea"), "max_tokens": 3000, "stream": True, "logit_bias": NO_END}
    first = await server.post("/v1/chat/completions", json=long)
    second = await server.post("/v1/chat/completions", json=long)
    await first.content.readline()
    await second.content.readline()
    body = {"model": CHAT_MODEL, "messages": _ask("a river"), "max_tokens": 4}
    waiting = asyncio.create_task(server.post("/v1/chat/completions", json=body))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # both slots are taken by answers 3000 tokens long
    first.close()  # the client goes away mid-stream
    answered = await asyncio.wait_for(waiting, timeout=30)  # 3000 tokens would take minutes
    assert answered.status == 200 and (await answered.json())["choices"][0]["message"]["content"]
    second.close()
    scheduler = _scheduler(server)
    for _ in range(200):
        if not scheduler._running:
            break
        await asyncio.sleep(0.05)
    assert not scheduler._running and scheduler.slots.count == 2


async def test_the_queue_limit_still_answers_429(aiohttp_client: Callable[..., Any]) -> None:
    server = await aiohttp_client(create_app(_server_config(parallel=2, max_waiting=0)))
    long = {"model": CHAT_MODEL, "messages": _ask("the sea"), "max_tokens": 200, "stream": True, "logit_bias": NO_END}
    streams = [await server.post("/v1/chat/completions", json=long) for _ in range(2)]  # both slots
    for response in streams:
        await response.content.readline()
    third = await server.post(
        "/v1/chat/completions", json={"model": CHAT_MODEL, "messages": _ask("x"), "max_tokens": 1}
    )
    assert third.status == 429 and third.headers["Retry-After"] == "1"
    assert (await third.json())["error"]["type"] == "rate_limit_error"
    for response in streams:
        response.close()


async def test_json_schema_output_inside_a_batch(oai: openai.AsyncOpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"], "additionalProperties": False}  # fmt: skip
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}
    ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Give a city and its country."}]

    async def structured() -> str:
        completion = await oai.chat.completions.create(
            model=CHAT_MODEL, messages=ask, max_tokens=60, seed=5, response_format=fmt
        )
        return completion.choices[0].message.content or ""

    alone = await structured()
    beside, *free = await asyncio.gather(
        structured(), *(_streamed(oai, _ask(t), max_tokens=40, seed=1) for t in TOPICS[:2])
    )
    assert beside == alone
    jsonschema.validate(json.loads(beside), schema)
    assert all(not text.lstrip().startswith("{") for text in free)  # the grammar held only its own answer


async def test_logprobs_inside_a_batch(oai: openai.AsyncOpenAI) -> None:
    async def scored() -> Any:
        completion = await oai.chat.completions.create(
            model=CHAT_MODEL, messages=_ask("the moon"), max_tokens=12, temperature=0, logprobs=True, top_logprobs=3
        )
        assert completion.choices[0].logprobs is not None
        return completion.choices[0].logprobs.content

    alone = await scored()
    beside, *_ = await asyncio.gather(scored(), *(_streamed(oai, _ask(t), max_tokens=30) for t in TOPICS[:3]))
    assert alone and [e.model_dump() for e in beside] == [e.model_dump() for e in alone]
    assert all(len(e.top_logprobs) == 3 and e.logprob <= 0 for e in beside)


async def test_prompt_logprobs_of_text_completions_beside_a_stream(oai: openai.AsyncOpenAI) -> None:
    """echo + logprobs evaluate the prompt on the raw context (slot 0) between batch steps."""

    async def echoed() -> Any:
        return await oai.completions.create(model=CHAT_MODEL, prompt="The sea is deep and", max_tokens=4,
                                            temperature=0, echo=True, logprobs=2)  # fmt: skip

    alone = await echoed()
    beside, _ = await asyncio.gather(echoed(), _streamed(oai, _ask("a forest"), max_tokens=40))
    assert beside.choices[0].text == alone.choices[0].text
    assert beside.choices[0].logprobs == alone.choices[0].logprobs
    assert alone.choices[0].logprobs is not None and alone.choices[0].logprobs.token_logprobs is not None
    assert alone.choices[0].logprobs.token_logprobs[0] is None


async def _turns(oai: openai.AsyncOpenAI, topic: str, turns: int, **extra: Any) -> tuple[list[str], list[int]]:
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": "You are a helpful assistant."}]
    answers, cached = [], []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"Tell me fact number {turn} about {topic}, and why."})
        completion = await oai.chat.completions.create(
            model=CHAT_MODEL, messages=messages, temperature=0.8, max_tokens=30, seed=7, extra_body=extra
        )
        answer = completion.choices[0].message.content or ""
        answers.append(answer)
        details = completion.usage.prompt_tokens_details if completion.usage is not None else None
        cached.append((details.cached_tokens or 0) if details is not None else 0)
        messages.append({"role": "assistant", "content": answer})
    return answers, cached


async def test_conversations_in_parallel_reuse_their_prompt_state(oai: openai.AsyncOpenAI) -> None:
    """Six conversations at once on four slots: each turn finds its history in a slot or a saved state,
    and answers as a full evaluation does."""
    topics = TOPICS
    fresh = await asyncio.gather(*(_turns(oai, t, 3, cache_prompt=False) for t in topics))
    reused = await asyncio.gather(*(_turns(oai, t, 3) for t in topics))
    assert [answers for answers, _ in reused] == [answers for answers, _ in fresh]
    assert all(cached == [0, 0, 0] for _, cached in fresh)
    for _, cached in reused:
        assert cached[1] > 20 and cached[2] > cached[1], cached  # the history before the new question


async def test_a_failing_request_leaves_the_others_in_the_batch_alone(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any]
) -> None:
    """A prompt without tokens cannot be continued: that request fails, the stream beside it goes on."""
    options = {"temperature": 0, "max_tokens": 40}
    alone = await _streamed(oai, _ask("a river"), **options)
    beside = asyncio.create_task(_streamed(oai, _ask("a river"), **options))
    await asyncio.sleep(0.3)
    empty = await server.post("/v1/completions", json={"model": CHAT_MODEL, "prompt": "", "max_tokens": 3})
    assert empty.status != 200
    assert await beside == alone
