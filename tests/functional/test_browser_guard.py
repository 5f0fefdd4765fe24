"""What a web page can make its visitor's browser send, refused (issue 17, point 5): cross-site simple
requests, DNS rebinding, foreign origins; and CORS for the origins the config allows. The official
clients, which send none of that, keep working."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from pocketstack.config import ConfigError
from tests.support.config import edge_with
from tests.support.errors import assert_error_shape

CHAT = {"model": "llama-cpp/nope", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},  # fetch(url, {method: "POST", body: "..."}) from any page
        {"Content-Type": "application/x-www-form-urlencoded"},  # an HTML form, and curl -d without -H
        {},  # a Blob body without a type
    ],
)
async def test_a_json_body_not_labelled_json_is_415(server: TestClient[Any, Any], headers: dict[str, str]) -> None:
    import json

    response = await server.post("/v1/chat/completions", data=json.dumps(CHAT).encode(), headers=headers)
    assert response.status == 415
    body = await response.json()
    assert_error_shape(body)
    assert body["error"]["code"] == "unsupported_media_type" and "--json" in body["error"]["message"]


async def test_json_labels_and_empty_bodies_pass(server: TestClient[Any, Any]) -> None:
    import json

    for label in ("application/json", "application/json; charset=utf-8", "application/merge-patch+json"):
        response = await server.post("/v1/chat/completions", data=json.dumps(CHAT), headers={"Content-Type": label})
        assert response.status == 404, label  # past the label check: the model is unknown
    assert (await server.get("/v1/models")).status == 200


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8321", "192.168.1.20", "[fe80::1]:8321"])
async def test_a_rebound_host_name_is_refused(server: TestClient[Any, Any], host: str) -> None:
    response = await server.get("/v1/models", headers={"Host": host})
    assert response.status == 403
    body = await response.json()
    assert_error_shape(body)
    assert body["error"]["code"] == "host_not_allowed"


@pytest.mark.parametrize("host", ["localhost", "localhost:8321", "127.0.0.1:9", "[::1]:8321", "app.localhost"])
async def test_loopback_host_names_pass(server: TestClient[Any, Any], host: str) -> None:
    assert (await server.get("/v1/models", headers={"Host": host})).status == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:3000"])
async def test_a_foreign_origin_is_refused_even_with_json(server: TestClient[Any, Any], origin: str) -> None:
    response = await server.post("/v1/chat/completions", json=CHAT, headers={"Origin": origin})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "origin_not_allowed"
    # and a form upload, which a page may send cross-site without asking
    form = {"purpose": "assistants", "file": b"secret"}
    upload = await server.post("/v1/files", data=form, headers={"Origin": origin})
    assert upload.status == 403


async def test_the_servers_own_origin_passes(server: TestClient[Any, Any]) -> None:
    origin = str(server.make_url("")).rstrip("/")
    assert (await server.get("/v1/models", headers={"Origin": origin})).status == 200


async def test_official_clients_are_unaffected(server: TestClient[Any, Any]) -> None:
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
    try:
        assert [m.id async for m in client.models.list()]
        uploaded = await client.files.create(file=("a.txt", b"hello"), purpose="assistants")
        assert (await client.files.retrieve(uploaded.id)).bytes == 5
    finally:
        await client.close()


async def test_cors_lets_the_configured_origins_call(aiohttp_client: Callable[..., Any]) -> None:
    cors = {
        "allow_origins": ["https://app.example"],
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["Content-Type"],
    }
    server = await aiohttp_client(create_app(edge_with(server={"cors": cors})))
    preflight = await server.options(
        "/v1/chat/completions",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 200
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"
    listed = await server.get("/v1/models", headers={"Origin": "https://app.example"})
    assert listed.status == 200 and listed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    refused = await server.options(
        "/v1/models", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"}
    )
    assert refused.status == 403
    other = await server.get("/v1/models", headers={"Origin": "https://other.example"})
    assert other.status == 403 and "Access-Control-Allow-Origin" not in other.headers


async def test_cors_true_is_llama_stacks_localhost_development_setting(aiohttp_client: Callable[..., Any]) -> None:
    server = await aiohttp_client(create_app(edge_with(server={"cors": True})))
    listed = await server.get("/v1/models", headers={"Origin": "http://localhost:5173"})
    assert listed.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert (await server.get("/v1/models", headers={"Origin": "https://evil.example"})).status == 403


async def test_allowed_hosts_name_the_hosts_a_server_answers_to(aiohttp_client: Callable[..., Any]) -> None:
    server = await aiohttp_client(create_app(edge_with(server={"allowed_hosts": ["box.lan"]})))
    assert (await server.get("/v1/models", headers={"Host": "box.lan:8321"})).status == 200
    assert (await server.get("/v1/models", headers={"Host": "localhost"})).status == 403


def test_listening_beyond_loopback_needs_auth_or_a_stated_choice(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match="allow_unauthenticated"):
        create_app(edge_with(server={"host": "0.0.0.0"}))
    create_app(edge_with(server={"host": "0.0.0.0", "allow_unauthenticated": True}))
    assert "no authentication" in caplog.text
