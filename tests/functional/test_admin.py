"""Admin (/v1alpha/admin/...) through llama_stack_client's `alpha.admin`: the same answers as the Providers and
Inspect operations it copies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_stack_client
import pytest
from aiohttp.test_utils import TestClient

from pocketstack import LLAMA_STACK_VERSION
from pocketstack.app import create_app
from pocketstack.config import StackConfig


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any], edge_config: StackConfig) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_config))  # type: ignore[no-any-return]


async def test_health_and_version(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    assert (await lls.alpha.admin.health()).status == "OK"
    assert (await lls.alpha.admin.version()).version == LLAMA_STACK_VERSION == (await lls.inspect.version()).version


async def test_providers_are_those_of_the_providers_api(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    listed = await lls.alpha.admin.list_providers()
    assert [(p.api, p.provider_id, p.provider_type) for p in listed] == [
        (p.api, p.provider_id, p.provider_type) for p in await lls.providers.list()
    ]
    assert ("file_processors", "pypdf", "inline::pypdf") in [(p.api, p.provider_id, p.provider_type) for p in listed]
    pypdf = await lls.alpha.admin.inspect_provider("pypdf")
    assert pypdf.config == {"max_file_size_bytes": 100 * 1024 * 1024} and pypdf.health["status"] == "OK"
    with pytest.raises(llama_stack_client.NotFoundError):
        await lls.alpha.admin.inspect_provider("nope")


async def test_routes_are_those_of_inspect(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    every = {(r.method, r.route) for r in await lls.alpha.admin.list_routes()}
    assert every == {(r.method, r.route) for r in await lls.routes.list()}
    for new in (
        ("GET", "/v1alpha/admin/providers"),
        ("GET", "/v1alpha/admin/providers/{provider_id}"),
        ("GET", "/v1alpha/admin/inspect/routes"),
        ("GET", "/v1alpha/admin/health"),
        ("GET", "/v1alpha/admin/version"),
        ("POST", "/v1alpha/file-processors/process"),
        ("GET", "/v1beta/connectors"),
        ("GET", "/v1beta/connectors/{connector_id}"),
        ("GET", "/v1beta/connectors/{connector_id}/tools"),
        ("GET", "/v1beta/connectors/{connector_id}/tools/{tool_name}"),
    ):
        assert new in every
    beta = await lls.alpha.admin.list_routes(api_filter="v1beta")
    assert {r.route for r in beta} >= {"/v1beta/connectors", "/v1beta/datasets"}
    assert all(r.route.startswith("/v1beta/") for r in beta)
    (process,) = [r for r in await lls.alpha.admin.list_routes(api_filter="v1alpha") if "file-processors" in r.route]
    assert process.provider_types == ["inline::pypdf"]
