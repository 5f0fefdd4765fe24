"""`n` choices on chat completions, on the real default model (issue 16: Llama Stack passes `n` to its
providers, OpenAI answers `n` choices; inline::llama-cpp generates them one after another)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from pocketstack.app import create_app
from tests.support.config import CHAT_MODEL, edge_with

STORY: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Write a long story about a dragon."}]
SAMPLED: dict[str, Any] = {"temperature": 1.0, "max_tokens": 6, "seed": 11}
NO_END = {"0": -100, "2": -100, "4": -100}  # SmolLM2's end-of-generation tokens: banned, every choice runs long


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


async def test_n_choices_each_sampled_on_their_own(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(model=CHAT_MODEL, messages=STORY, n=3, logit_bias=NO_END, **SAMPLED)
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    texts = [choice.message.content for choice in completion.choices]
    assert all(text and text.strip() for text in texts)
    assert len(set(texts)) > 1, texts  # each choice has its own seed: the set is not one answer three times
    assert {choice.finish_reason for choice in completion.choices} == {"length"}
    single = await oai.chat.completions.create(model=CHAT_MODEL, messages=STORY, logit_bias=NO_END, **SAMPLED)
    assert completion.usage is not None and single.usage is not None
    # OpenAI's accounting: the prompt once, the tokens of every choice.
    assert completion.usage.prompt_tokens == single.usage.prompt_tokens
    assert completion.usage.completion_tokens == 3 * SAMPLED["max_tokens"]
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    again = await oai.chat.completions.create(model=CHAT_MODEL, messages=STORY, n=3, logit_bias=NO_END, **SAMPLED)
    assert [choice.message.content for choice in again.choices] == texts  # a seed reproduces the whole set
    # Choice 0 of a set is the answer the same seed gives alone.
    assert single.choices[0].message.content == texts[0]


async def test_n_choices_stream_with_their_index(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=STORY,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
        logit_bias=NO_END,
        **SAMPLED,
    )
    texts: dict[int, str] = defaultdict(str)
    roles: dict[int, str] = {}
    finishes: dict[int, str] = {}
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            assert choice.index not in finishes, "nothing of a choice comes after its finish_reason"
            if choice.delta.role:
                roles[choice.index] = choice.delta.role
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert roles == {0: "assistant", 1: "assistant"}
    assert finishes == {0: "length", 1: "length"}
    assert all(text.strip() for text in texts.values())
    whole = await oai.chat.completions.create(model=CHAT_MODEL, messages=STORY, n=2, logit_bias=NO_END, **SAMPLED)
    assert [texts[0], texts[1]] == [choice.message.content for choice in whole.choices]
    assert usage is not None and usage.completion_tokens == 2 * SAMPLED["max_tokens"]


LOOKUP: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def test_n_forced_tool_calls_are_each_a_valid_call(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[LOOKUP],
        tool_choice="required",
        n=2,
        temperature=0.7,
        seed=3,
        max_tokens=40,
    )
    assert len(completion.choices) == 2
    for choice in completion.choices:  # the grammar holds every choice, not only the first
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls or []
        assert call.type == "function"
        assert call.function.name == "lookup" and '"city"' in call.function.arguments


async def test_stored_completions_keep_every_choice(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(
        model=CHAT_MODEL, messages=STORY, n=2, store=True, logit_bias=NO_END, **SAMPLED
    )
    stored = await oai.chat.completions.retrieve(completion.id)
    assert [choice.message.content for choice in stored.choices] == [c.message.content for c in completion.choices]
    streamed = await oai.chat.completions.create(
        model=CHAT_MODEL, messages=STORY, n=2, store=True, stream=True, logit_bias=NO_END, **SAMPLED
    )
    chunk_id = ""
    async for chunk in streamed:
        chunk_id = chunk.id
    assert [choice.index for choice in (await oai.chat.completions.retrieve(chunk_id)).choices] == [0, 1]


async def test_text_completions_answer_n_choices_too(oai: openai.AsyncOpenAI) -> None:
    whole = await oai.completions.create(
        model=CHAT_MODEL, prompt="Once upon a time", n=2, logprobs=1, logit_bias=NO_END, **SAMPLED
    )
    assert [choice.index for choice in whole.choices] == [0, 1]
    assert len({choice.text for choice in whole.choices}) == 2
    for choice in whole.choices:  # offsets count within each choice's own text
        assert choice.logprobs is not None and (choice.logprobs.text_offset or [None])[0] == 0
    stream = await oai.completions.create(
        model=CHAT_MODEL, prompt="Once upon a time", n=2, stream=True, logit_bias=NO_END, **SAMPLED
    )
    texts: dict[int, str] = defaultdict(str)
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    assert [texts[0], texts[1]] == [choice.text for choice in whole.choices]
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.completions.create(model=CHAT_MODEL, prompt="x", best_of=2)
    assert caught.value.param == "best_of"
