"""A remote OpenAI-compatible provider that misbehaves (tests/support/fault_server.py, real sockets),
through the real app and the official `openai` client: every wait is bounded by the provider's
timeouts, a fault before the first byte falls back to the next provider, one after it ends the
stream with an error frame in the error shape, repeated faults open the circuit breaker, and no
connection to the remote is left open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import create_app
from tests.support import fault_server as faults
from tests.support.config import edge_providers_with, edge_with
from tests.support.fault_server import FaultServer, fault_server
from tests.support.scripted import scripted_entry

READ_TIMEOUT_S = 1.0  # the remotes' read timeout: small, so a fault costs the test about a second
BOUND_S = 10.0  # no request may take longer, whatever the remote does
THRESHOLD = 2
HELLO: list[Any] = [{"role": "user", "content": "hello"}]
ECHO = "You said: hello"  # the scripted model's answer
BEFORE_FIRST_BYTE = (faults.HANG, faults.DROP_EARLY, faults.GARBAGE, faults.ERROR_200, faults.TRICKLE)
AFTER_FIRST_BYTE = (faults.DROP_MID, faults.GARBAGE_MID, faults.ERROR_MID, faults.TRUNCATED)


def _remote(upstream: FaultServer, fault: str) -> dict[str, Any]:
    config = {"url": upstream.url(fault), "connect_timeout_s": 1, "read_timeout_s": READ_TIMEOUT_S,
              "health_interval_s": 3600, "failure_threshold": THRESHOLD, "cooldown_s": 3600}  # fmt: skip
    return {"provider_id": fault, "provider_type": "remote::vllm", "config": config}


def _model(fault: str, fallback: bool) -> dict[str, Any]:
    """The model `<fault>` served by the remote of that fault, falling back to the scripted model;
    `<fault>-alone` has no fallback."""
    model: dict[str, Any] = {"model_id": fault if fallback else f"{fault}-alone", "provider_id": fault,
             "provider_model_id": "upstream", "model_type": "llm"}  # fmt: skip
    if fallback:
        model["fallbacks"] = [{"provider_id": "scripted", "provider_model_id": "chat"}]
    return model


@pytest.fixture
async def upstream() -> AsyncIterator[FaultServer]:
    async with fault_server() as server:
        yield server


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], upstream: FaultServer
) -> TestClient[Any, Any]:
    config = edge_with(
        providers=edge_providers_with(inference=[*(_remote(upstream, f) for f in faults.FAULTS), scripted_entry()]),
        registered_resources={
            "models": [_model(f, fallback) for f in faults.FAULTS for fallback in (True, False)],
            "shields": [],
        },
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config))
    for fault in faults.FAULTS:  # the probe at start answers well: let it land before a fault counts
        await _wait_probed(client, fault)
    return client


async def _wait_probed(server: TestClient[Any, Any], provider_id: str) -> None:
    for _ in range(500):
        health = (await (await server.get(f"/v1/providers/{provider_id}")).json())["health"]
        if health.get("message") != "not probed yet":
            assert health["status"] == "OK", health
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{provider_id} was never probed")


@pytest.fixture
async def oai(server: TestClient[Any, Any]) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
    yield client
    await client.close()


async def _chat(oai: openai.AsyncOpenAI, model: str, stream: bool) -> tuple[str, str]:
    """The answer's text and the provider that served it, bounded in time."""
    async with asyncio.timeout(BOUND_S):
        if not stream:
            answer = await oai.chat.completions.with_raw_response.create(model=model, messages=HELLO)
            return answer.parse().choices[0].message.content or "", answer.headers["X-PocketStack-Provider"]
        chunks = await oai.chat.completions.with_raw_response.create(model=model, messages=HELLO, stream=True)
        text = ""
        async for chunk in chunks.parse():
            text += "".join(choice.delta.content or "" for choice in chunk.choices)
        return text, chunks.headers["X-PocketStack-Provider"]


async def test_a_well_behaved_remote_serves(oai: openai.AsyncOpenAI, upstream: FaultServer) -> None:
    """The baseline the faults depart from: the remote itself answers, streamed or not."""
    assert await _chat(oai, faults.OK, stream=False) == ("from the remote", faults.OK)
    assert await _chat(oai, faults.OK, stream=True) == ("from the remote", faults.OK)


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
@pytest.mark.parametrize("fault", BEFORE_FIRST_BYTE)
async def test_a_fault_before_the_first_byte_falls_back(
    oai: openai.AsyncOpenAI, upstream: FaultServer, fault: str, stream: bool
) -> None:
    text, provider = await _chat(oai, fault, stream)
    assert (text, provider) == (ECHO, "scripted")
    assert upstream.requests[fault] == 1
    assert await upstream.settled(fault) == 0, "a connection to the remote was left open"


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
@pytest.mark.parametrize("fault", [faults.HANG, faults.TRICKLE, faults.ERROR_200])
async def test_without_a_fallback_the_fault_is_an_error_in_time(
    server: TestClient[Any, Any], upstream: FaultServer, fault: str, stream: bool
) -> None:
    """The last provider's failure is the answer: a 5xx in the error shape, within the read timeout."""
    async with asyncio.timeout(BOUND_S):
        response = await server.post(
            "/v1/chat/completions", json={"model": f"{fault}-alone", "messages": HELLO, "stream": stream}
        )
        body = await response.json()
    assert response.status == (504 if fault != faults.ERROR_200 else 502), body
    assert set(body) == {"error"} and body["error"]["type"] in ("timeout_error", "upstream_error"), body
    if fault == faults.ERROR_200:
        assert faults.UPSTREAM_ERROR in body["error"]["message"]  # the remote's own words, not a dump
    assert await upstream.settled(fault) == 0, "a connection to the remote was left open"


def _frames(text: str) -> list[str]:
    return [frame.removeprefix("data: ") for frame in text.split("\n\n") if frame]


@pytest.mark.parametrize("fault", AFTER_FIRST_BYTE)
async def test_a_fault_after_the_first_byte_ends_the_stream_with_an_error_frame(
    server: TestClient[Any, Any], upstream: FaultServer, fault: str
) -> None:
    async with asyncio.timeout(BOUND_S):
        response = await server.post("/v1/chat/completions", json={"model": fault, "messages": HELLO, "stream": True})
        assert response.status == 200
        assert response.headers["X-PocketStack-Provider"] == fault  # it had started: no fallback
        frames = _frames(await response.text())
    first, last = json.loads(frames[0]), json.loads(frames[-1])
    assert first["choices"][0]["delta"]["content"] == "from "
    assert len(frames) == 2, frames  # the chunk, the error frame, and no [DONE]: the answer is not whole
    assert set(last) == {"error"} and last["error"]["type"] == "upstream_error", last
    assert last["error"]["message"].startswith(f"{fault}"), last  # says which remote failed
    if fault == faults.ERROR_MID:
        assert faults.UPSTREAM_ERROR in last["error"]["message"]
    assert await upstream.settled(fault) == 0, "a connection to the remote was left open"


async def test_the_openai_client_sees_the_error_frame_as_an_error(oai: openai.AsyncOpenAI) -> None:
    text = ""
    async with asyncio.timeout(BOUND_S):
        stream = await oai.chat.completions.create(model=faults.DROP_MID, messages=HELLO, stream=True)
        with pytest.raises(openai.APIError, match=faults.DROP_MID):
            async for chunk in stream:
                text += chunk.choices[0].delta.content or ""
    assert text == "from "


# A timeout, a cut connection, a trickle, and 200s with junk or an error in them (the 200s reset the breaker before).
BREAKING = [(faults.HANG, False), (faults.DROP_EARLY, True), (faults.GARBAGE, True), (faults.ERROR_200, False),
            (faults.ERROR_200, True), (faults.TRICKLE, True)]  # fmt: skip


@pytest.mark.parametrize(("fault", "stream"), BREAKING)
async def test_repeated_faults_open_the_breaker(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, upstream: FaultServer, fault: str, stream: bool
) -> None:
    for _ in range(THRESHOLD + 2):
        assert await _chat(oai, fault, stream) == (ECHO, "scripted")
    assert upstream.requests[fault] == THRESHOLD  # the breaker kept the rest away from the remote
    health = (await (await server.get(f"/v1/providers/{fault}")).json())["health"]
    assert health["status"] == "Error", health
    assert await upstream.settled(fault) == 0, "a connection to the remote was left open"
