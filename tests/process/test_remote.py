"""Remote providers and offload against a real OpenAI-compatible server: llama-cpp-python's own.

The remote is killed mid-test: requests fall back to the inline provider, then return to the
remote once it is back.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openai.types.chat import ChatCompletionMessageParam

from pocketstack.app import STACK, create_app
from pocketstack.config import ProviderConfig, ShieldInput
from pocketstack.modelstore import store
from tests.support.config import edge_with
from tests.support.process import free_port
from tests.support.spans import stored_spans

pytestmark = pytest.mark.process
KEY = "sekret"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
NO_END = {"0": -100, "2": -100, "4": -100}  # SmolLM2's end-of-generation tokens


class RemoteServer:
    def __init__(self, port: int, log: Path, model: Path | None = None, embedding: bool = False) -> None:
        self.port = port
        self.log = log
        self.model = model or store.package_file(store.DEFAULT_CHAT_PACKAGE, store.DEFAULT_CHAT_FILE)
        self.embedding = embedding
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        alias = "minilm" if self.embedding else "smollm"
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--model_alias", alias,
                   "--port", str(self.port), "--n_ctx", "512" if self.embedding else "2048", "--api_key", KEY,
                   *(["--embedding", "true"] if self.embedding else [])]  # fmt: skip
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                request = urllib.request.Request(f"{self.url}/models", headers={"Authorization": f"Bearer {KEY}"})
                with urllib.request.urlopen(request, timeout=1):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        raise RuntimeError(f"llama_cpp.server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteServer]:
    server = RemoteServer(free_port(), tmp_path_factory.mktemp("remote") / "llama-server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def embedding_remote(tmp_path_factory: pytest.TempPathFactory, embedding_gguf: Path) -> Iterator[RemoteServer]:
    log = tmp_path_factory.mktemp("remote-embed") / "llama-server.log"
    server = RemoteServer(free_port(), log, model=embedding_gguf, embedding=True)
    server.start()
    yield server
    server.stop()


async def test_remote_embeddings_match_the_inline_ones(
    aiohttp_client: Callable[..., Any], embedding_remote: RemoteServer, stored_embedding: str
) -> None:
    providers = {
        "inference": [
            {"provider_id": "llama-cpp", "provider_type": "inline::llama-cpp"},
            {
                "provider_id": "embed-box",
                "provider_type": "remote::vllm",
                "config": {"url": embedding_remote.url, "api_key": KEY},
            },
        ]
    }
    models = [
        {
            "model_id": "remote-minilm",
            "provider_id": "embed-box",
            "provider_model_id": "minilm",
            "model_type": "embedding",
        }
    ]
    server = await aiohttp_client(create_app(edge_with(providers=providers, registered_resources={"models": models})))
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
    sentences = ["A man is eating food.", "A man is eating a piece of bread."]
    raw = await client.embeddings.with_raw_response.create(model="remote-minilm", input=sentences)
    assert raw.headers["x-pocketstack-provider"] == "embed-box"
    remote, local = raw.parse(), await client.embeddings.create(model=stored_embedding, input=sentences)
    assert remote.model == "remote-minilm"
    for a, b in zip(remote.data, local.data, strict=True):
        # llama-cpp-python's server does not normalize; PocketStack relays what the remote says.
        direction = np.array(a.embedding) / np.linalg.norm(a.embedding)
        assert direction == pytest.approx(np.array(b.embedding), abs=1e-3)
    packed = await client.embeddings.create(model="remote-minilm", input=sentences[0], encoding_format="base64")
    embedding: object = packed.data[0].embedding  # typed list[float]; asked for base64, the client passes the str
    assert isinstance(embedding, str)
    await client.close()


def _config(url: str) -> Any:
    remote = {"url": url, "api_key": KEY, "health_interval_s": 0.2, "failure_threshold": 1, "cooldown_s": 0.5}
    keyless = {"url": url, "health_interval_s": 60}
    providers = {
        "inference": [
            {"provider_id": "llama-cpp", "provider_type": "inline::llama-cpp"},
            {"provider_id": "gpu-box", "provider_type": "remote::llama-cpp-server", "config": remote},
            {"provider_id": "keyless", "provider_type": "remote::openai", "config": keyless},
        ]
    }
    models = [
        {
            "model_id": "smart",
            "provider_id": "gpu-box",
            "provider_model_id": "smollm",
            "fallbacks": [{"provider_id": "llama-cpp", "provider_model_id": store.DEFAULT_CHAT_NAME}],
        },
        {"model_id": "needs-key", "provider_id": "keyless", "provider_model_id": "smollm"},
    ]
    return edge_with(providers=providers, registered_resources={"models": models})


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any], remote: RemoteServer) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(_config(remote.url)))  # type: ignore[no-any-return]


async def _chat(oai: openai.AsyncOpenAI, model: str = "smart", **extra: Any) -> tuple[str, str]:
    raw = await oai.chat.completions.with_raw_response.create(model=model, messages=HELLO, max_tokens=8, **extra)
    completion = raw.parse()
    assert completion.model == model and completion.choices[0].message.content
    return raw.headers["x-pocketstack-provider"], completion.choices[0].message.content


async def test_remote_serves_and_says_so(oai: openai.AsyncOpenAI) -> None:
    provider, _ = await _chat(oai)
    assert provider == "gpu-box"


async def test_remote_stream_is_relayed_chunk_by_chunk(oai: openai.AsyncOpenAI) -> None:
    # 40 tokens (the end banned) outlast several health probes (every 0.2 s here). llama-cpp-python's server
    # drops a running request when another arrives (`interrupt_requests`, on by default): the probe cut this
    # stream after its first chunk or three until probes waited for requests in flight.
    stream = await oai.chat.completions.create(
        model="smart", messages=HELLO, max_tokens=40, stream=True, logit_bias=NO_END
    )
    chunks = [chunk async for chunk in stream]
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 40
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(chunk.model == "smart" for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_remote_models_are_listed(oai: openai.AsyncOpenAI) -> None:
    ids = {m.id async for m in oai.models.list()}
    assert {"smart", "gpu-box/smollm", "llama-cpp/SmolLM2-135M-Instruct"} <= ids


async def test_upstream_status_is_kept_and_provider_data_supplies_keys(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        await _chat(oai, "needs-key")
    assert caught.value.status_code == 401 and "Invalid API key" in caught.value.message
    provider, _ = await _chat(
        oai, "needs-key", extra_headers={"X-LlamaStack-Provider-Data": f'{{"openai_api_key": "{KEY}"}}'}
    )
    assert provider == "keyless"


async def test_falls_back_when_the_remote_dies_and_returns_when_it_is_back(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any], remote: RemoteServer
) -> None:
    assert (await _chat(oai))[0] == "gpu-box"
    remote.stop()
    assert (await _chat(oai))[0] == "llama-cpp"  # the failed attempt opens the breaker
    stream = await oai.chat.completions.create(model="smart", messages=HELLO, max_tokens=4, stream=True)
    assert [c async for c in stream]
    health = await (await server.get("/v1/providers/gpu-box")).json()
    assert health["health"]["status"] == "Error"
    await asyncio.to_thread(remote.start)
    gpu_box = server.app[STACK].providers["gpu-box"].impl
    for _ in range(100):  # the background probe notices the remote is back
        if gpu_box.breaker.admits() and gpu_box._reachable:  # (not the trial)
            break
        await asyncio.sleep(0.1)
    assert (await _chat(oai))[0] == "gpu-box"


async def test_offline_remote_never_blocks_start(aiohttp_client: Callable[..., Any]) -> None:
    started = time.monotonic()
    server = await aiohttp_client(create_app(_config(f"http://127.0.0.1:{free_port()}/v1")))
    assert time.monotonic() - started < 10
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
    assert (await _chat(client))[0] == "llama-cpp"
    response = await server.get("/v1/providers/gpu-box")
    assert (await response.json())["health"]["status"] == "Error"
    await client.close()


async def test_llama_guard_runs_on_a_remote_model_with_its_grammar(
    aiohttp_client: Callable[..., Any], remote: RemoteServer
) -> None:
    config = _config(remote.url)
    config.providers["safety"] = [
        ProviderConfig(provider_id="llama-guard", provider_type="inline::llama-guard"),
    ]
    config.registered_resources.shields = [
        ShieldInput(shield_id="remote-guard", provider_id="llama-guard", provider_shield_id="smart")
    ]
    server = await aiohttp_client(create_app(config))
    response = await server.post("/v1/moderations", json={"input": "How do I bake bread?", "model": "remote-guard"})
    body = await response.json()
    assert response.status == 200, body  # the grammar went upstream: without it this model does not parse
    assert isinstance(body["results"][0]["flagged"], bool)


async def test_a_client_trace_continues_into_the_remote_llama_cpp_servers_request(
    aiohttp_client: Callable[..., Any], remote: RemoteServer
) -> None:
    # llama-cpp-python's server logs no headers: a loopback relay in front of it notes what arrives.
    seen: list[str] = []

    async def relay(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/chat/completions"):
            seen.append(request.headers.get("traceparent", ""))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                f"http://127.0.0.1:{remote.port}{request.path_qs}",
                headers=headers,
                data=await request.read(),
            ) as upstream,
        ):
            kept = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type",)}
            return web.Response(status=upstream.status, body=await upstream.read(), headers=kept)

    relay_app = web.Application()
    relay_app.router.add_route("*", "/{tail:.*}", relay)
    relay_server = TestServer(relay_app, host="127.0.0.1")
    await relay_server.start_server()
    try:
        server = await aiohttp_client(create_app(_config(f"http://127.0.0.1:{relay_server.port}/v1")))
        client_trace, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        oai = openai.AsyncOpenAI(
            base_url=str(server.make_url("/v1")),
            api_key="unused",
            max_retries=0,
            default_headers={"traceparent": f"00-{client_trace}-{client_span}-01"},
        )
        raw = await oai.chat.completions.with_raw_response.create(model="smart", messages=HELLO, max_tokens=4)
        assert raw.headers["x-pocketstack-provider"] == "gpu-box" and raw.parse().choices[0].message.content
        await oai.close()
        (sent,) = seen
        version, trace_id, parent, flags = sent.split("-")
        assert (version, trace_id, flags) == ("00", client_trace, "01")
        chat = [s for s in await stored_spans(server.app) if s.name == "chat smart"]
        assert [s.span_id for s in chat] == [parent]  # the remote's parent: PocketStack's inference span
    finally:
        await relay_server.close()
