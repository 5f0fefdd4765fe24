"""An answer ends with its last token: no evaluation runs between it and the client's end of the answer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from tests.support.config import CHAT_MODEL, edge_with

NO_END = {"0": -100, "2": -100, "4": -100}  # SmolLM2's end-of-generation tokens: every answer has max_tokens
TOKENS = 12


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch llama.cpp decodes, in order."""
    from llama_cpp._internals import LlamaContext

    sizes: list[int] = []
    lock = threading.Lock()
    original = LlamaContext.decode

    def decode(self: LlamaContext, batch: Any) -> None:
        with lock:
            sizes.append(int(batch.batch.n_tokens))
        original(self, batch)

    monkeypatch.setattr(LlamaContext, "decode", decode)
    return sizes


def _answer_decodes(sizes: list[int]) -> list[int]:
    """The decodes after the prompt's: the answer's tokens, one by one."""
    first = sizes.index(1)
    return sizes[first:]


def _messages(turn: int) -> Any:  # the client's TypedDicts are plain dicts
    return [{"role": "user", "content": f"Tell me fact number {turn} about lighthouses."}]


async def test_stream_ends_without_evaluating_the_answer_again(oai: openai.AsyncOpenAI, decoded: list[int]) -> None:
    """Issue 15: re-evaluating the answer as a batch ("settling", for reuse) ran between the last token and
    the final chunk, ~0.9 s for 128 tokens on 2 cores. The answer's decodes when the final chunk comes:
    one token each, the last sampled token not evaluated at all."""
    for turn in range(2):  # the second turn also starts from the state the first left
        stream = await oai.chat.completions.create(
            model=CHAT_MODEL, messages=_messages(turn), max_tokens=TOKENS, temperature=0, logit_bias=NO_END,
            stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        at_finish: list[int] | None = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason is not None:
                at_finish = list(decoded)
        assert at_finish is not None
        assert _answer_decodes(at_finish) == [1] * (TOKENS - 1), at_finish
        decoded.clear()


async def test_answer_returns_without_evaluating_it_again(oai: openai.AsyncOpenAI, decoded: list[int]) -> None:
    for turn in range(2):
        completion = await oai.chat.completions.create(
            model=CHAT_MODEL,
            messages=_messages(turn),
            max_tokens=TOKENS,
            temperature=0,
            logit_bias=NO_END,
        )
        at_return = list(decoded)
        assert completion.usage is not None and completion.usage.completion_tokens == TOKENS
        assert _answer_decodes(at_return) == [1] * (TOKENS - 1), at_return
        decoded.clear()
