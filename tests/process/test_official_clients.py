"""The official `llama-stack-client` and `openai` packages against a real `pocketstack run`."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import llama_stack_client
import openai
import pytest
import yaml

from pocketstack import LLAMA_STACK_VERSION, distributions
from tests.support.config import write_gguf
from tests.support.process import Server, start

pytestmark = pytest.mark.process


@pytest.fixture
def server(home: Path, tmp_path: Path) -> Iterator[Server]:
    """The edge distribution plus two registered models, one with a slash-free alias."""
    write_gguf(home / "models" / "registered-chat.gguf")
    model = write_gguf(home / "elsewhere" / "tiny-embed.gguf", architecture="bert", pooling=1)
    edge = distributions.path_of("edge")
    assert edge is not None
    config = yaml.safe_load(edge.read_text())
    config["registered_resources"]["models"] = [
        {"model_id": "registered-chat.gguf"},
        {"model_id": "tiny-embed", "provider_model_id": str(model), "model_type": "embedding",
         "metadata": {"embedding_dimension": 384}},
    ]  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    running = start(home, [str(path)])
    yield running
    assert running.stop() == 0, running.output()


def test_llama_stack_client(server: Server) -> None:
    client = llama_stack_client.LlamaStackClient(base_url=server.base_url)
    assert client.inspect.health().status == "OK"
    assert client.inspect.version().version == LLAMA_STACK_VERSION

    by_api = {p.api: p for p in client.providers.list()}
    assert sorted(by_api) == [
        "datasetio",
        "eval",
        "file_processors",
        "files",
        "inference",
        "safety",
        "scoring",
        "tool_runtime",
        "vector_io",
    ]
    assert (by_api["datasetio"].provider_id, by_api["datasetio"].provider_type) == (
        "localfs-datasets",
        "inline::localfs",
    )
    inference, files = by_api["inference"], by_api["files"]
    assert (inference.api, inference.provider_id, inference.provider_type) == (
        "inference",
        "llama-cpp",
        "inline::llama-cpp",
    )
    assert inference.health["status"] == "OK"
    assert (files.api, files.provider_type) == ("files", "inline::localfs")

    uploaded = client.files.create(file=("hello.txt", b"hello, files"), purpose="assistants")
    assert uploaded.id.startswith("file-") and uploaded.bytes == 12
    assert [f.id for f in client.files.list()] == [uploaded.id]
    assert client.files.content(uploaded.id) is not None
    assert client.files.delete(uploaded.id).deleted

    routes = client.routes.list()
    assert ("GET", "/v1/models/{model_id}") in {(r.method, r.route) for r in routes}
    alpha = [(r.method, r.route) for r in client.routes.list(api_filter="v1alpha")]
    assert alpha[0] == ("GET", "/v1alpha/admin/providers") and ("POST", "/v1alpha/inference/rerank") in alpha
    assert ("POST", "/v1alpha/agents/{agent_id}/session/{session_id}/turn") in alpha and len(alpha) == 26
    assert ("POST", "/v1alpha/file-processors/process") in alpha
    assert ("POST", "/v1alpha/eval/benchmarks/{benchmark_id}/jobs") in alpha
    assert all(route.startswith("/v1alpha/") for _, route in alpha)

    models = {m.identifier: m for m in client.models.list()}
    assert set(models) == {
        "llama-cpp/SmolLM2-135M-Instruct",
        "llama-cpp/registered-chat",
        "llama-cpp/registered-chat.gguf",
        "tiny-embed",
    }
    assert models["tiny-embed"].model_type == "embedding"
    assert models["tiny-embed"].provider_id == "llama-cpp"
    assert (
        models["tiny-embed"].metadata is not None and models["tiny-embed"].metadata["embedding_dimension"] == 8
    )  # the GGUF says 8; its word wins

    retrieved = client.models.retrieve("llama-cpp/registered-chat.gguf")
    assert retrieved.identifier == "llama-cpp/registered-chat.gguf"
    assert retrieved.provider_resource_id == "registered-chat.gguf"
    assert retrieved.api_model_type == "llm"

    with pytest.raises(llama_stack_client.NotFoundError) as caught:
        client.models.retrieve("llama-cpp/absent")
    assert "absent" in str(caught.value)


def test_openai_client(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused")
    ids = [m.id for m in client.models.list()]
    assert set(ids) == {
        "llama-cpp/SmolLM2-135M-Instruct",
        "llama-cpp/registered-chat",
        "llama-cpp/registered-chat.gguf",
        "tiny-embed",
    }
    model = client.models.retrieve("tiny-embed")
    assert (model.id, model.object, model.owned_by) == ("tiny-embed", "model", "llama_stack")
    assert model.created > 0
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("nope")
    assert caught.value.status_code == 404
    assert isinstance(caught.value.body, dict) and "nope" in caught.value.body["message"]


def test_sigterm_and_sigint_shut_down_cleanly(home: Path) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        running = start(home)
        assert running.stop(signum) == 0, running.output()
        assert "stopped" in running.output()


def test_llama_stack_clients_agent_completes_a_turn(home: Path) -> None:
    """The client's Agent helper runs on conversations + responses (streamed): one turn, the real model."""
    from llama_stack_client import Agent

    running = start(home)
    try:
        with llama_stack_client.LlamaStackClient(base_url=running.base_url, max_retries=0) as client:
            agent = Agent(client, model="llama-cpp/SmolLM2-135M-Instruct", instructions="Answer in one short sentence.")
            session = agent.create_session("smoke")
            assert session.startswith("conv_")
            response = agent.create_turn(
                messages=[{"role": "user", "content": "Say hello."}], session_id=session, stream=False
            )
            assert not isinstance(response, Iterator)  # stream=False: the turn's final response, not chunks
            assert response.status in ("completed", "incomplete") and response.output_text
            items = client.conversations.items.list(session)
            roles = [getattr(item, "role", None) for item in items.data]
            assert roles.count("user") == 1 and roles.count("assistant") == 1  # the turn joined the session
    finally:
        assert running.stop() == 0, running.output()
