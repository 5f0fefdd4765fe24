"""Every kind of bad request gets the spec's one error shape, with the right status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pocketstack.apis.inspect import InspectApi
from pocketstack.app import create_app
from tests.support.config import edge_with
from tests.support.errors import assert_error_shape


async def test_malformed_json_is_400(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/models", data=b'{"model_id": ', headers={"Content-Type": "application/json"})
    assert response.status == 400
    detail = assert_error_shape(await response.json())
    assert detail["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"[" * 100_000 + b"]" * 100_000, {}),
        (b'{"model_id": "x", "metadata": {"n": ' + b"9" * 5000 + b"}}", {}),
        (b"\xff\xfe not utf-8", {}),
        (b"hello", {"Content-Encoding": "gzip"}),
    ],
)
async def test_unreadable_bodies_are_400(client: TestClient[Any, Any], body: bytes, headers: dict[str, str]) -> None:
    response = await client.post("/v1/models", data=body, headers={"Content-Type": "application/json", **headers})
    assert response.status == 400
    assert assert_error_shape(await response.json())["code"] in ("invalid_json", "invalid_body")


@pytest.mark.parametrize("model_id", ["x" * 5000, "~no-such-user-here/model.gguf"])
async def test_unusable_model_paths_are_400(client: TestClient[Any, Any], model_id: str) -> None:
    response = await client.post("/v1/models", json={"model_id": model_id})
    assert response.status == 400
    assert assert_error_shape(await response.json())["param"] == "provider_model_id"


async def test_non_object_body_is_400(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/models", json=["model_id"])
    assert response.status == 400
    assert "JSON object" in assert_error_shape(await response.json())["message"]


async def test_schema_violation_is_400_naming_the_field(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/models", json={"model_id": 42})
    assert response.status == 400
    detail = assert_error_shape(await response.json())
    assert detail["param"] == "model_id"
    assert "model_id" in detail["message"]


async def test_empty_body_of_a_required_body_is_400(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/models")
    assert response.status == 400
    assert assert_error_shape(await response.json())["code"] == "missing_body"


async def test_bad_query_value_is_400(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/inspect/routes", params={"api_filter": "v9"})
    assert response.status == 400
    assert assert_error_shape(await response.json())["param"] == "api_filter"


async def test_unknown_route_is_404_json(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/no-such-thing")
    assert response.status == 404
    assert response.content_type == "application/json"
    assert "/v1/no-such-thing" in assert_error_shape(await response.json())["message"]


async def test_wrong_method_is_405_json_with_allow(client: TestClient[Any, Any]) -> None:
    response = await client.put("/v1/health")
    assert response.status == 405
    assert "GET" in response.headers["Allow"]
    assert_error_shape(await response.json())


async def test_unexpected_exception_is_500_generic_and_logged(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: InspectApi) -> None:
        raise RuntimeError("secret detail /etc/passwd")

    monkeypatch.setattr(InspectApi, "version", broken)
    with caplog.at_level(logging.ERROR, logger="pocketstack.web.middlewares"):
        response = await client.get("/v1/version")
    assert response.status == 500
    detail = assert_error_shape(await response.json())
    assert detail["message"] == "Internal server error: An unexpected error occurred."
    assert "secret" not in str(detail)
    assert any(record.exc_info and "secret detail" in str(record.exc_info[1]) for record in caplog.records)


async def test_oversized_body_is_413(aiohttp_client: Callable[..., Any]) -> None:
    config = edge_with(server={"max_request_bytes": 1024})
    client = await aiohttp_client(create_app(config))
    response = await client.post("/v1/models", json={"model_id": "x" * 4096})
    assert response.status == 413
    assert_error_shape(await response.json())


async def test_client_version_mismatch_is_426(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/health", headers={"X-LlamaStack-Client-Version": "0.6.1"})
    assert response.status == 426
    assert "0.6.1" in assert_error_shape(await response.json())["message"]


@pytest.mark.parametrize("version", ["0.7.5", "0.7.0", "not-a-version", ""])
async def test_compatible_or_unparsable_client_versions_pass(client: TestClient[Any, Any], version: str) -> None:
    response = await client.get("/v1/health", headers={"X-LlamaStack-Client-Version": version})
    assert response.status == 200


@pytest.mark.parametrize("variable", ["LLAMA_STACK_DISABLE_VERSION_CHECK", "POCKETSTACK_DISABLE_VERSION_CHECK"])
async def test_version_check_can_be_disabled(
    aiohttp_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "1")
    client = await aiohttp_client(create_app(edge_with()))
    response = await client.get("/v1/health", headers={"X-LlamaStack-Client-Version": "0.2.0"})
    assert response.status == 200


async def test_request_id_is_echoed_or_made(client: TestClient[Any, Any]) -> None:
    mine = await client.get("/v1/health", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["X-Request-ID"] == "abc-123"
    made = await client.get("/v1/no-such-thing")
    assert len(made.headers["X-Request-ID"]) == 32
