"""A remote with a fallback, against a stub OpenAI-compatible upstream the test turns off and on:
the circuit breaker's half-open trial goes to a real request, whatever polls health meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pocketstack._generated import models
from pocketstack.app import STACK, create_app
from pocketstack.providers.remote.openai_compat import OpenAICompatProvider
from tests.support.config import edge_providers_with, edge_with
from tests.support.scripted import scripted_entry

COOLDOWN_S = 3600.0  # never passes by itself: the test moves the breaker past it
SMART = {"model_id": "smart", "provider_id": "gpu-box", "provider_model_id": "upstream", "model_type": "llm",
         "fallbacks": [{"provider_id": "scripted", "provider_model_id": "chat"}]}  # fmt: skip
HELLO = {"model": "smart", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[TestServer, dict[str, bool]]]:
    """The remote: /models always answers (the probe sees it up); chat fails with a 500 while `down`."""
    state = {"down": False}

    async def listed(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "upstream", "object": "model"}]})

    async def chat(_request: web.Request) -> web.Response:
        if state["down"]:
            return web.json_response({"error": {"message": "overloaded"}}, status=500)
        message = {"role": "assistant", "content": "from the remote"}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        usage = {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
        completion = {"id": "up-1", "object": "chat.completion", "created": 1, "model": "upstream"}
        return web.json_response({**completion, "choices": [choice], "usage": usage})

    app = web.Application()
    app.router.add_get("/v1/models", listed)
    app.router.add_post("/v1/chat/completions", chat)
    server = TestServer(app)
    async with server:
        yield server, state


async def _served_by(server: TestClient[Any, Any]) -> str:
    response = await server.post("/v1/chat/completions", json=HELLO)
    assert response.status == 200, await response.text()
    return response.headers["X-PocketStack-Provider"]


async def test_health_polls_leave_the_half_open_trial_to_a_request(
    aiohttp_client: Callable[..., Any],
    scripted: list[models.ChatCompletionRequest],
    upstream: tuple[TestServer, dict[str, bool]],
) -> None:
    remote, state = upstream
    gpu_box = {"provider_id": "gpu-box", "provider_type": "remote::vllm",
               "config": {"url": str(remote.make_url("/v1")), "health_interval_s": 3600, "failure_threshold": 1,
                          "cooldown_s": COOLDOWN_S}}  # fmt: skip
    config = edge_with(
        providers=edge_providers_with(inference=[gpu_box, scripted_entry()]),
        registered_resources={"models": [SMART], "shields": []},
    )
    server = await aiohttp_client(create_app(config))
    assert await _served_by(server) == "gpu-box"
    provider = server.app[STACK].providers["gpu-box"].impl
    assert isinstance(provider, OpenAICompatProvider)
    for _ in range(500):  # the probe at start: a success later would close the breaker this test opens
        if provider._reachable is not None:
            break
        await asyncio.sleep(0.01)
    assert provider._reachable is True

    state["down"] = True
    assert await _served_by(server) == "scripted"  # the 500 opened the breaker (threshold 1)
    assert provider.breaker.state == "open"
    state["down"] = False
    assert provider.breaker.opened_at is not None
    provider.breaker.opened_at -= COOLDOWN_S  # the cooldown is over: one trial may go through
    assert provider.breaker.state == "half-open"

    for path in ("/v1/providers/gpu-box", "/v1/providers", "/v1/providers/gpu-box"):  # a dashboard polling
        polled = await server.get(path)
        assert polled.status == 200, await polled.text()
    assert await _served_by(server) == "gpu-box"  # the trial was the request's, and it closed the breaker
    assert provider.breaker.state == "closed"
