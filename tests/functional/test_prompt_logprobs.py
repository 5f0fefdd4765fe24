"""Prompt logprobs on /v1/completions (`echo` with `logprobs`, OpenAI's legacy format) on the real default
model, through the official `openai` client: what lm-evaluation-harness scores multiple choice with
(tests/process/test_lm_eval.py runs the harness itself)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient
from openai.types.completion_choice import Logprobs

from pocketstack.app import create_app
from tests.support.config import CHAT_MODEL, edge_with

STORY = "Once upon a time, in a small village by the sea, there lived"
SCORE: dict[str, Any] = {"echo": True, "logprobs": 1, "max_tokens": 0, "temperature": 0}
END = {"2": 100}  # SmolLM2's <|im_end|>: the answer ends at its first token


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


def _logprobs(choice: Any) -> Logprobs:
    assert choice.logprobs is not None
    return choice.logprobs  # type: ignore[no-any-return]


async def _scored(oai: openai.AsyncOpenAI, prompt: str, **extra: Any) -> Logprobs:
    """The prompt's own logprobs (echoed, nothing generated)."""
    return _logprobs((await oai.completions.create(model=CHAT_MODEL, prompt=prompt, **SCORE, **extra)).choices[0])


async def test_the_prompt_comes_back_with_each_tokens_logprob(oai: openai.AsyncOpenAI) -> None:
    scored = await oai.completions.create(model=CHAT_MODEL, prompt=STORY, **{**SCORE, "logprobs": 3})
    choice = scored.choices[0]
    assert choice.text == STORY and choice.finish_reason == "length"
    logprobs = _logprobs(choice)
    # The openai package types these lists as never null; OpenAI's first prompt token has nulls all the same.
    tokens, offsets = logprobs.tokens or [], logprobs.text_offset or []
    values: list[float | None] = list(logprobs.token_logprobs or [])
    tops: list[dict[str, float] | None] = list(logprobs.top_logprobs or [])
    assert "".join(tokens) == STORY and len(tokens) == len(values) == len(tops) == len(offsets) > 5
    assert values[0] is None and tops[0] is None  # nothing comes before the first token
    for token, value, top, offset in zip(tokens[1:], values[1:], tops[1:], offsets[1:], strict=True):
        assert value is not None and value <= 0 and top is not None and len(top) == 3
        assert max(top.values()) >= value - 1e-6  # the likeliest tokens in its place are at least as likely
        assert STORY[offset : offset + len(token)] == token
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert scored.usage is not None
    assert (scored.usage.prompt_tokens, scored.usage.completion_tokens) == (len(tokens), 0)


async def test_echo_scores_a_text_as_its_generation_did(oai: openai.AsyncOpenAI) -> None:
    """A greedy continuation's logprobs, and those of the same tokens read back in the prompt, agree (decoding
    one token at a time differs from a batch in the last bits of llama.cpp's arithmetic, hence the tolerance);
    the prompt's own logprobs are the same with or without the continuation after it (the model is causal)."""
    generated = await oai.completions.create(
        model=CHAT_MODEL, prompt=STORY, max_tokens=8, temperature=0, logprobs=1, logit_bias={"0": -100, "2": -100}
    )
    continuation = _logprobs(generated.choices[0])
    assert "".join(continuation.tokens or []) == generated.choices[0].text and len(continuation.tokens or []) == 8
    whole, alone = await _scored(oai, STORY + generated.choices[0].text), await _scored(oai, STORY)
    size = len(alone.tokens or [])
    assert (whole.tokens or [])[:size] == alone.tokens and (whole.tokens or [])[size:] == continuation.tokens
    assert (whole.token_logprobs or [])[:size] == alone.token_logprobs
    read_back = (whole.token_logprobs or [])[size:]
    assert read_back == pytest.approx(continuation.token_logprobs, abs=0.1)
    # The continuation's loglikelihood: the whole text's sum minus the prompt's (how a harness scores a choice).
    total = sum(v for v in whole.token_logprobs or [] if v is not None)
    prompt_part = sum(v for v in alone.token_logprobs or [] if v is not None)
    assert total - prompt_part == pytest.approx(sum(continuation.token_logprobs or []), abs=0.3)
    # Greedy: each generated token was the likeliest, so it is its own top-1 when read back too.
    for value, top in zip(read_back, (whole.top_logprobs or [])[size:], strict=True):
        assert top is not None and value == max(top.values())


async def test_a_list_of_prompts_answers_n_choices_each_in_order(oai: openai.AsyncOpenAI) -> None:
    prompts = ["The capital of France is Paris", "Two plus two is four", "Cats have four legs"]
    batched = await oai.completions.create(model=CHAT_MODEL, prompt=prompts, n=2, **SCORE)
    assert [c.index for c in batched.choices] == list(range(6))
    assert [c.text for c in batched.choices] == [p for p in prompts for _ in range(2)]
    one = await oai.completions.create(model=CHAT_MODEL, prompt=prompts[1], **SCORE)
    assert _logprobs(batched.choices[2]) == _logprobs(batched.choices[3]) == _logprobs(one.choices[0])
    assert batched.usage is not None and one.usage is not None
    counts = [len(_logprobs(batched.choices[i]).tokens or []) for i in (0, 2, 4)]
    assert batched.usage.prompt_tokens == sum(counts) and batched.usage.completion_tokens == 0

    # Token ids (what lm-evaluation-harness sends): spelled out by echo, scored the same.
    ids = await oai.completions.create(model=CHAT_MODEL, prompt=[[504, 3575, 282, 4649, 314]], **SCORE)
    text = ids.choices[0].text
    assert text and await _scored(oai, text) == _logprobs(ids.choices[0])

    generated = await oai.completions.create(model=CHAT_MODEL, prompt=prompts[:2], max_tokens=3, temperature=0)
    assert [c.index for c in generated.choices] == [0, 1]
    assert [c.text for c in generated.choices] == [
        (await oai.completions.create(model=CHAT_MODEL, prompt=p, max_tokens=3, temperature=0)).choices[0].text
        for p in prompts[:2]
    ]


async def test_every_sampled_token_has_its_logprob_even_the_end(oai: openai.AsyncOpenAI) -> None:
    """lm-evaluation-harness asks for one token after the echoed prompt and drops the last entry as that token:
    an answer that ends at once still reports it (its text, <|im_end|>, is not in the answer's)."""
    prompt = "Question: What is the capital of France?\nAnswer: Paris"
    prompt_only = await _scored(oai, prompt)
    ended = await oai.completions.create(model=CHAT_MODEL, prompt=prompt, **{**SCORE, "max_tokens": 1}, logit_bias=END)
    choice = ended.choices[0]
    assert choice.text == prompt and choice.finish_reason == "stop"
    logprobs = _logprobs(choice)
    assert logprobs.tokens == [*(prompt_only.tokens or []), "<|im_end|>"]
    assert (logprobs.token_logprobs or [])[:-1] == prompt_only.token_logprobs
    assert (logprobs.text_offset or [])[-1] == len(prompt)


async def test_the_stream_carries_the_same_logprobs(oai: openai.AsyncOpenAI) -> None:
    whole = await oai.completions.create(model=CHAT_MODEL, prompt=STORY, **{**SCORE, "max_tokens": 4})
    stream = await oai.completions.create(model=CHAT_MODEL, prompt=STORY, stream=True, **{**SCORE, "max_tokens": 4})
    text, tokens, values, offsets = "", list[str](), list[float](), list[int]()
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.text
            if choice.logprobs is not None:
                tokens += choice.logprobs.tokens or []
                values += choice.logprobs.token_logprobs or []
                offsets += choice.logprobs.text_offset or []
    expected = _logprobs(whole.choices[0])
    assert text == whole.choices[0].text and text.startswith(STORY)
    # Scoring the prompt first changes nothing of what is generated after it.
    plain = await oai.completions.create(
        model=CHAT_MODEL, prompt=STORY, max_tokens=4, temperature=0, extra_body={"cache_prompt": False}
    )
    assert text == STORY + plain.choices[0].text
    assert (tokens, values, offsets) == (expected.tokens, expected.token_logprobs, expected.text_offset)


@pytest.mark.parametrize(
    ("call", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),  # nothing to generate and nothing echoed
        ({"echo": True, "logprobs": 6}, "logprobs"),  # OpenAI's limit
        ({"echo": True, "max_tokens": -1}, "max_tokens"),
    ],
)
async def test_bad_scoring_requests_are_400(oai: openai.AsyncOpenAI, call: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.completions.create(model=CHAT_MODEL, prompt=STORY, **call)
    assert param in str(caught.value.param or caught.value.message)
