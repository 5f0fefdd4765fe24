"""server.quota: requests and model tokens per client and period, counted atomically; 429 beyond."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack import cli
from pocketstack._generated import models
from pocketstack.app import create_app
from pocketstack.security.quota import _duration
from tests.support.config import edge_providers_with, edge_with
from tests.support.scripted import CHAT, scripted_entry

KVSTORE = {"backend": "sql_default", "namespace": "quota"}


async def _app(aiohttp_client: Callable[..., Any], quota: dict[str, Any], **server: Any) -> TestClient[Any, Any]:
    config = edge_with(
        providers=edge_providers_with(inference=[scripted_entry(replies={"hi": "Hello there friend."})]),
        registered_resources={"models": [CHAT]},
        server={"quota": {"kvstore": KVSTORE, **quota}, **server},
    )
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


async def test_a_hundred_concurrent_requests_against_ten_give_ten(
    aiohttp_client: Callable[..., Any], scripted: list[Any]
) -> None:
    client = await _app(aiohttp_client, {"anonymous_max_requests": 10, "period": "minute"})
    responses = await asyncio.gather(*(client.get("/v1/models") for _ in range(100)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 10 + [429] * 90
    refused = next(r for r in responses if r.status == 429)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "10"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    error = (await refused.json())["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "quota_exceeded"
    admitted = [r for r in responses if r.status == 200]
    assert sorted(r.headers["x-ratelimit-remaining-requests"] for r in admitted) == [str(n) for n in range(10)]
    assert (await client.get("/v1/health")).status == 200  # monitors are not counted


async def test_each_principal_has_its_own_quota(
    aiohttp_client: Callable[..., Any], capsys: pytest.CaptureFixture[str], scripted: list[Any]
) -> None:
    keys = {}
    for principal in ("alice", "bob"):
        assert await asyncio.to_thread(cli.main, ["keys", "create", "--principal", principal]) == 0
        keys[principal] = capsys.readouterr().out.strip().splitlines()[-1]
    client = await _app(
        aiohttp_client,
        {"anonymous_max_requests": 0, "authenticated_max_requests": 2, "period": "hour"},
        auth={"provider_config": {"type": "api_keys"}},
    )
    base = str(client.make_url("/v1"))
    alice = openai.AsyncOpenAI(base_url=base, api_key=keys["alice"], max_retries=0)
    bob = openai.AsyncOpenAI(base_url=base, api_key=keys["bob"], max_retries=0)
    await alice.models.list()
    await alice.models.list()
    with pytest.raises(openai.RateLimitError) as refused:
        await alice.models.list()
    assert refused.value.response.headers["x-ratelimit-limit-requests"] == "2"
    await bob.models.list()  # alice's use is not bob's
    assert (await client.get("/v1/version")).status == 200


async def test_model_tokens_per_period(aiohttp_client: Callable[..., Any], scripted: list[Any]) -> None:
    """The scripted model reports 10 tokens a call: with 25 a minute, the fourth chat is refused."""
    client = await _app(aiohttp_client, {"anonymous_max_requests": 100, "anonymous_max_tokens": 25, "period": "minute"})
    ai = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)
    chat = await ai.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.headers["x-ratelimit-limit-tokens"] == "25"
    assert chat.headers["x-ratelimit-remaining-tokens"] == "25"  # the standing when the request came in
    stream = await ai.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Hello there friend."
    third = await ai.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert third.headers["x-ratelimit-remaining-tokens"] == "5"
    with pytest.raises(openai.RateLimitError) as refused:
        await ai.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert "tokens" in refused.value.message
    assert len(scripted) == 3
    assert isinstance(scripted[0], models.ChatCompletionRequest)


def test_reset_durations_read_as_openai_writes_them() -> None:
    assert [_duration(s) for s in (0.2, 59, 360, 3723)] == ["0s", "59s", "6m0s", "1h2m3s"]
