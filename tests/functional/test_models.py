"""Models: registration, lookup (ids with slashes), listing, persistence — through the generated SDK."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pocketstack_client import Client
from pocketstack_client.api.models import get_model, openai_list_models, register_model, unregister_model
from pocketstack_client.models import Error, Model, ModelType, OpenAIListModelsResponse, RegisterModelRequest
from pocketstack_client.models.register_model_request_metadata import RegisterModelRequestMetadata

from pocketstack.app import create_app
from tests.support.config import edge_providers_with, edge_with, write_gguf
from tests.support.errors import assert_error_shape

BUILT_IN_CHAT = "llama-cpp/SmolLM2-135M-Instruct"


def sdk(client: TestClient[Any, Any]) -> Client:
    return Client(base_url=str(client.make_url("")).rstrip("/"))


async def _register(api: Client, **fields: Any) -> Model | Error | None:
    return await register_model.asyncio(client=api, body=RegisterModelRequest(**fields))


async def test_register_get_list_unregister(client: TestClient[Any, Any], gguf: Callable[[str], Path]) -> None:
    gguf("SmolLM2.gguf")
    api = sdk(client)
    metadata = RegisterModelRequestMetadata.from_dict({"family": "smol", "gguf_path": "/etc/passwd"})
    model = await _register(api, model_id="SmolLM2.gguf", metadata=metadata)
    assert isinstance(model, Model)
    assert model.identifier == "llama-cpp/SmolLM2.gguf"
    assert (model.provider_id, model.provider_resource_id, model.model_type) == (
        "llama-cpp",
        "SmolLM2.gguf",
        ModelType.LLM,
    )
    assert model.metadata.additional_properties == {  # the provider's facts win over the caller's claims
        "family": "smol",
        "gguf_path": "SmolLM2.gguf",  # relative to the model store: no server paths shown
        "architecture": "llama",
        "context_length": 128,
        # What a request that leaves them unset gets: llama.cpp server's defaults, stated (issue 16).
        "sampling_defaults": {
            "temperature": 0.8,
            "top_p": 0.95,
            "top_k": 40,
            "min_p": 0.05,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
        },
    }

    fetched = await get_model.asyncio(client=api, model_id="llama-cpp/SmolLM2.gguf")  # the SDK sends %2F
    assert isinstance(fetched, Model) and fetched.to_dict() == model.to_dict()
    raw = await client.get("/v1/models/llama-cpp/SmolLM2.gguf")  # a literal slash works too
    assert raw.status == 200 and (await raw.json())["identifier"] == model.identifier

    listed = await openai_list_models.asyncio(client=api)
    assert isinstance(listed, OpenAIListModelsResponse) and listed.object_ == "list"
    (entry,) = [m for m in listed.data if m.id == model.identifier]
    assert (entry.id, entry.object_, entry.owned_by) == ("llama-cpp/SmolLM2.gguf", "model", "llama_stack")
    assert entry.custom_metadata.additional_properties["model_type"] == "llm"
    assert entry.custom_metadata.additional_properties["provider_resource_id"] == "SmolLM2.gguf"
    assert entry.custom_metadata.additional_properties["family"] == "smol"

    gone = await unregister_model.asyncio_detailed(client=api, model_id=model.identifier)
    assert gone.status_code == 200
    assert gone.parsed is not None and gone.parsed.to_dict() == {
        "id": model.identifier,
        "object": "model",
        "deleted": True,
    }
    missing = await get_model.asyncio_detailed(client=api, model_id=model.identifier)
    assert missing.status_code == 404 and isinstance(missing.parsed, Error)


def _with_allowed_dirs(home: Path, *folders: Path) -> Any:
    config = {"models_dir": str(home / "models"), "allowed_model_dirs": [str(f) for f in folders]}
    llama_cpp = {"provider_id": "llama-cpp", "provider_type": "inline::llama-cpp", "config": config}
    return edge_with(providers=edge_providers_with(inference=[llama_cpp]))


async def test_alias_becomes_the_identifier(aiohttp_client: Callable[..., Any], home: Path) -> None:
    path = write_gguf(home / "elsewhere" / "tiny.gguf", architecture="bert", pooling=1)
    client = await aiohttp_client(create_app(_with_allowed_dirs(home, home / "elsewhere")))
    model = await _register(sdk(client), model_id="tiny", provider_model_id=str(path), model_type=ModelType.EMBEDDING)
    assert isinstance(model, Model)
    assert (model.identifier, model.provider_resource_id, model.model_type) == ("tiny", str(path), ModelType.EMBEDDING)


async def test_lookup_by_provider_id_when_unambiguous(
    client: TestClient[Any, Any], gguf: Callable[[str], Path]
) -> None:
    gguf("solo.gguf")
    api = sdk(client)
    assert isinstance(await _register(api, model_id="solo.gguf"), Model)
    found = await get_model.asyncio(client=api, model_id="solo.gguf")
    assert isinstance(found, Model) and found.identifier == "llama-cpp/solo.gguf"


async def test_ambiguous_lookup_is_400(client: TestClient[Any, Any], gguf: Callable[[str], Path]) -> None:
    gguf("same.gguf")
    api = sdk(client)
    assert isinstance(await _register(api, model_id="same.gguf"), Model)
    assert isinstance(await _register(api, model_id="alias", provider_model_id="same.gguf"), Model)
    response = await get_model.asyncio_detailed(client=api, model_id="same.gguf")
    assert response.status_code == 400 and isinstance(response.parsed, Error)
    assert response.parsed.error.code == "ambiguous_model"
    assert "alias" in response.parsed.error.message and "llama-cpp/same.gguf" in response.parsed.error.message
    by_identifier = await get_model.asyncio(client=api, model_id="alias")
    assert isinstance(by_identifier, Model) and by_identifier.provider_resource_id == "same.gguf"


async def test_duplicate_registration_is_409(client: TestClient[Any, Any], gguf: Callable[[str], Path]) -> None:
    gguf("dup.gguf")
    api = sdk(client)
    assert isinstance(await _register(api, model_id="dup.gguf"), Model)
    response = await register_model.asyncio_detailed(client=api, body=RegisterModelRequest(model_id="dup.gguf"))
    assert response.status_code == 409 and isinstance(response.parsed, Error)


async def test_missing_or_invalid_gguf_is_400(client: TestClient[Any, Any], home: Path) -> None:
    api = sdk(client)
    response = await register_model.asyncio_detailed(client=api, body=RegisterModelRequest(model_id="absent.gguf"))
    assert response.status_code == 400 and isinstance(response.parsed, Error)
    assert response.parsed.error.param == "provider_model_id"
    (home / "models").mkdir(parents=True)
    (home / "models" / "fake.gguf").write_bytes(b"PK\x03\x04 not a gguf")
    response = await register_model.asyncio_detailed(client=api, body=RegisterModelRequest(model_id="fake.gguf"))
    assert response.status_code == 400 and isinstance(response.parsed, Error)
    assert "not a GGUF" in response.parsed.error.message
    listed = await openai_list_models.asyncio(client=api)
    assert isinstance(listed, OpenAIListModelsResponse)
    assert [m.id for m in listed.data] == [BUILT_IN_CHAT]


async def test_an_empty_gguf_is_skipped_at_start_and_refused_at_registration(
    aiohttp_client: Callable[..., Any], gguf: Callable[[str], Path], home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gguf("kept.gguf")
    (home / "models" / "empty.gguf").write_bytes(b"")  # an interrupted download, a `touch`
    client = await aiohttp_client(create_app(edge_with()))
    listed = await client.get("/v1/models")
    assert listed.status == 200, await listed.text()
    ids = [m["id"] for m in (await listed.json())["data"]]
    assert "llama-cpp/kept" in ids and "llama-cpp/empty" not in ids
    assert any("empty.gguf" in r.getMessage() and "empty" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)  # fmt: skip
    response = await client.post("/v1/models", json={"model_id": "empty.gguf"})
    error = assert_error_shape(await response.json())
    assert (response.status, error["code"]) == (400, "invalid_model_file")
    assert "empty (0 bytes)" in error["message"]


async def test_unknown_provider_is_400(client: TestClient[Any, Any]) -> None:
    response = await register_model.asyncio_detailed(
        client=sdk(client), body=RegisterModelRequest(model_id="m", provider_id="ollama")
    )
    assert response.status_code == 400 and isinstance(response.parsed, Error)
    assert response.parsed.error.code == "provider_not_found"


async def test_registrations_survive_a_restart(aiohttp_client: Callable[..., Any], gguf: Callable[[str], Path]) -> None:
    gguf("keep.gguf")
    first = await aiohttp_client(create_app(edge_with()))
    assert isinstance(await _register(sdk(first), model_id="keep.gguf"), Model)
    await first.close()
    second = await aiohttp_client(create_app(edge_with()))
    found = await get_model.asyncio(client=sdk(second), model_id="llama-cpp/keep.gguf")
    assert isinstance(found, Model)


async def test_config_models_are_synced_at_start(aiohttp_client: Callable[..., Any], home: Path) -> None:
    path = write_gguf(home / "models" / "cfg.gguf")
    resources = {"models": [{"model_id": "configured", "provider_model_id": str(path)}]}
    client = await aiohttp_client(create_app(edge_with(registered_resources=resources)))
    api = sdk(client)
    found = await get_model.asyncio(client=api, model_id="configured")
    assert isinstance(found, Model) and found.provider_resource_id == str(path)
    refused = await unregister_model.asyncio_detailed(client=api, model_id="configured")
    assert refused.status_code == 400 and isinstance(refused.parsed, Error)
    assert refused.parsed.error.code == "model_from_config"
    await client.close()

    client = await aiohttp_client(create_app(edge_with(registered_resources={"models": []})))
    dropped = await get_model.asyncio_detailed(client=sdk(client), model_id="configured")
    assert dropped.status_code == 404


async def test_type_mismatch_is_400(client: TestClient[Any, Any], gguf: Callable[[str], Path]) -> None:
    gguf("chat.gguf")
    response = await register_model.asyncio_detailed(
        client=sdk(client), body=RegisterModelRequest(model_id="chat.gguf", model_type=ModelType.EMBEDDING)
    )
    assert response.status_code == 400 and isinstance(response.parsed, Error)
    assert response.parsed.error.code == "model_type_mismatch"


async def test_store_and_built_in_models_are_listed(aiohttp_client: Callable[..., Any], home: Path) -> None:
    write_gguf(home / "models" / "embedder.gguf", architecture="bert", pooling=1)
    client = await aiohttp_client(create_app(edge_with()))
    listed = await openai_list_models.asyncio(client=sdk(client))
    assert isinstance(listed, OpenAIListModelsResponse)
    by_id = {m.id: m.custom_metadata.additional_properties for m in listed.data}
    assert by_id[BUILT_IN_CHAT]["model_type"] == "llm"
    assert by_id["llama-cpp/embedder"]["model_type"] == "embedding"
    assert by_id["llama-cpp/embedder"]["embedding_dimension"] == 8
    # `dimensions` other than these is a 400 (issue 16: OpenAI refuses it for such models too; Llama Stack
    # passes it on); the metadata lets a client know before asking.
    assert by_id["llama-cpp/embedder"]["supported_dimensions"] == [8]
    assert "supported_dimensions" not in by_id[BUILT_IN_CHAT]
    refused = await unregister_model.asyncio_detailed(client=sdk(client), model_id="llama-cpp/embedder")
    assert refused.status_code == 400 and isinstance(refused.parsed, Error)
    assert refused.parsed.error.code == "model_from_provider"


async def test_registration_by_path_is_confined_to_the_model_folders(
    aiohttp_client: Callable[..., Any], home: Path, gguf: Callable[[str], Path]
) -> None:
    """POST /v1/models reaches files in the model store and the folders the config allows, and nothing
    else: an absolute path, a `..` escape or a symlink out is one and the same 400, whether the file is
    there or not (no probing the server's disk through registration)."""
    real = write_gguf(home / "outside" / "real.gguf")
    allowed = write_gguf(home / "extra" / "ok.gguf")
    client = await aiohttp_client(create_app(_with_allowed_dirs(home, home / "extra")))
    gguf("inside.gguf")
    (home / "models" / "sub").mkdir()
    (home / "models" / "sub" / "link.gguf").symlink_to(real)  # a symlink in the store leading out
    messages = set()
    for provider_model_id in (str(real), str(home / "outside" / "absent.gguf"), "../outside/real.gguf",
                              "../outside/absent.gguf", str(home / "models" / ".." / "outside" / "real.gguf"),
                              "sub/link.gguf", "/etc/passwd", "/etc/no-such-file"):  # fmt: skip
        reply = await client.post("/v1/models", json={"model_id": "m", "provider_model_id": provider_model_id})
        error = assert_error_shape(await reply.json())
        assert (reply.status, error["code"], error["param"]) == (400, "model_path_not_allowed", "provider_model_id")
        messages.add(error["message"])
    assert len(messages) == 1 and str(home) not in messages.pop()  # the same answer, whatever is on disk
    for provider_model_id in ("inside.gguf", str(home / "models" / "inside.gguf"), str(allowed)):
        reply = await client.post("/v1/models", json={"model_id": provider_model_id, "provider_id": "llama-cpp"})
        assert reply.status == 200, await reply.text()
    missing = await client.post("/v1/models", json={"model_id": str(home / "extra" / "absent.gguf")})
    assert assert_error_shape(await missing.json())["code"] == "model_file_not_found"  # inside: it may say


async def test_the_model_listing_shows_no_server_paths(aiohttp_client: Callable[..., Any], home: Path) -> None:
    write_gguf(home / "models" / "stored.gguf")
    write_gguf(home / "extra" / "far.gguf")
    client = await aiohttp_client(create_app(_with_allowed_dirs(home, home / "extra")))
    reply = await client.post(
        "/v1/models", json={"model_id": "far", "provider_model_id": str(home / "extra" / "far.gguf")}
    )
    assert reply.status == 200, await reply.text()
    listed = (await (await client.get("/v1/models")).json())["data"]
    shown = {m["id"]: m["custom_metadata"]["gguf_path"] for m in listed}
    assert shown["llama-cpp/stored"] == "stored.gguf" and shown["far"] == "far.gguf"
    assert shown[BUILT_IN_CHAT] == "SmolLM2-135M-Instruct.Q4_1.gguf"  # from the wheel's folder: its name only
    assert not any(Path(path).is_absolute() for path in shown.values())
