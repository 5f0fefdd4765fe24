"""What the remote base does to upstream answers: our ids, tolerated finish reasons, garbage -> fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pocketstack._generated import models
from pocketstack.errors import UpstreamError
from pocketstack.providers.base import ProviderContext, ServedModel
from pocketstack.providers.remote.config import OpenAICompatConfig, Quirks
from pocketstack.providers.remote.openai_compat import OpenAICompatProvider

SERVED = ServedModel("smart", "upstream-model", "llm", {})


def _provider(url: str = "http://127.0.0.1:9/v1") -> OpenAICompatProvider:
    config = OpenAICompatConfig(url=url, failure_threshold=5)
    return OpenAICompatProvider(config, ProviderContext("remote", Path(".")), Quirks())


def test_ids_are_ours_and_unknown_finish_reasons_are_mapped() -> None:
    upstream: dict[str, Any] = {
        "id": "up-1",
        "object": "chat.completion",
        "created": 1,
        "model": "upstream-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi", "reasoning_content": "hmm"},
             "finish_reason": "eos_token", "logprobs": None}
        ],
        "service_tier": "default",
    }  # fmt: skip
    completion = _provider()._validate(models.ChatCompletion, upstream, SERVED, "chatcmpl-ours")
    assert (completion.id, completion.model) == ("chatcmpl-ours", "smart")
    assert completion.choices[0].finish_reason == models.FinishReason.stop
    dumped = completion.model_dump(mode="json")
    assert dumped["upstream_id"] == "up-1" and dumped["service_tier"] == "default"
    assert dumped["choices"][0]["message"]["reasoning_content"] == "hmm"  # extra fields travel through


async def test_a_non_json_answer_is_an_upstream_error() -> None:
    async def html(_request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy login</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", html)
    app.router.add_get("/v1/models", html)
    async with TestServer(app) as upstream:
        provider = _provider(str(upstream.make_url("/v1")))
        await provider.initialize()
        try:
            request = models.ChatCompletionRequest.model_validate(
                {"model": "smart", "messages": [{"role": "user", "content": "x"}]}
            )
            with pytest.raises(UpstreamError, match="not JSON"):
                await provider.chat_completion(SERVED, request)
            assert await provider.probe() is False
            assert provider.breaker.failures >= 2
        finally:
            await provider.shutdown()


def test_the_body_sent_upstream_keeps_grammar_and_leaves_out_what_the_server_acts_on() -> None:
    request = models.ChatCompletionRequest.model_validate(
        {
            "model": "smart",
            "messages": [{"role": "user", "content": "x"}],
            "grammar": 'root ::= "a"',
            "guardrails": ["pii"],  # an OpenAI upstream would refuse an unknown field
            "guided_choice": ["a", "b"],  # extra_body for vLLM travels as it is
        }
    )
    body = _provider()._body(request, SERVED)
    assert body["model"] == "upstream-model" and body["grammar"] == 'root ::= "a"'
    assert body["guided_choice"] == ["a", "b"] and "guardrails" not in body
