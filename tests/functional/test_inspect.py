"""Inspect and Providers through the generated Python SDK, and the spec/served-routes match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from pocketstack_client import Client
from pocketstack_client.api.inspect import health, list_routes, version
from pocketstack_client.api.providers import inspect_provider, list_providers
from pocketstack_client.models import ApiFilter, Error, ListRoutesResponse

from pocketstack import LLAMA_STACK_VERSION, __version__
from pocketstack.apis.providers import redact
from pocketstack.app import METRICS_PATH, READINESS
from tests.support.config import REPO

SPEC = yaml.safe_load((REPO / "spec" / "openapi.yaml").read_text())
SPEC_OPERATIONS = {
    (method.upper(), path) for path, item in SPEC["paths"].items() for method in item if method != "parameters"
} | {  # an older Llama Stack's paths of some operations (`x-legacy-path`), answered too
    (method.upper(), op["x-legacy-path"])
    for item in SPEC["paths"].values()
    for method, op in item.items()
    if isinstance(op, dict) and "x-legacy-path" in op
}
SPEC_OPERATION_IDS = {
    op["operationId"] for item in SPEC["paths"].values() for method, op in item.items() if method != "parameters"
}
# Llama Stack lists deprecated routes only under api_filter=deprecated
CURRENT_OPERATIONS = {
    (method.upper(), path)
    for path, item in SPEC["paths"].items()
    for method, op in item.items()
    if method != "parameters" and not op.get("deprecated")
}


def sdk(client: TestClient[Any, Any]) -> Client:
    return Client(base_url=str(client.make_url("")).rstrip("/"), raise_on_unexpected_status=True)


async def test_health_and_version(client: TestClient[Any, Any]) -> None:
    api = sdk(client)
    assert (await health.asyncio(client=api)).status.value == "OK"  # type: ignore[union-attr]
    info = await version.asyncio(client=api)
    assert info is not None and not isinstance(info, Error)
    assert info.version == LLAMA_STACK_VERSION and info.version.startswith("0.7.")
    assert info.pocketstack_version == __version__


async def test_every_operation_of_the_spec_has_a_handler(client: TestClient[Any, Any]) -> None:
    # The routes are registered from the generated operation table before the APIs load, so they
    # always match it; what can be missing is the implementation behind one (a 500 at run time).
    # The handlers the assembled APIs give must be exactly the spec's operations, read from the
    # spec itself, and every route must lead to one.
    handlers = await client.app[READINESS].handlers()
    assert set(handlers) == SPEC_OPERATION_IDS
    served = {
        (route.method, route.resource.canonical.replace(":.+}", "}"))
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    # Beside them, one route outside the API: Prometheus' scrape path (text exposition, not JSON).
    assert served == SPEC_OPERATIONS | {("GET", METRICS_PATH)}


async def test_inspect_routes_lists_the_spec(client: TestClient[Any, Any]) -> None:
    listed = await list_routes.asyncio(client=sdk(client))
    assert isinstance(listed, ListRoutesResponse)
    assert {(r.method, r.route) for r in listed.data} == CURRENT_OPERATIONS
    models_routes = [r for r in listed.data if r.route.startswith("/v1/models")]
    assert all(r.provider_types == ["inline::llama-cpp"] for r in models_routes)


@pytest.mark.parametrize("level", [ApiFilter.V1, ApiFilter.V1ALPHA, ApiFilter.V1BETA])
async def test_route_filter_by_level(client: TestClient[Any, Any], level: ApiFilter) -> None:
    listed = await list_routes.asyncio(client=sdk(client), api_filter=level)
    assert isinstance(listed, ListRoutesResponse)
    expected = {(m, p) for m, p in CURRENT_OPERATIONS if p.split("/")[1] == level.value}
    assert {(r.method, r.route) for r in listed.data} == expected


async def test_deprecated_filter_lists_only_deprecated(client: TestClient[Any, Any]) -> None:
    listed = await list_routes.asyncio(client=sdk(client), api_filter=ApiFilter.DEPRECATED)
    assert isinstance(listed, ListRoutesResponse)
    deprecated = {(m.upper(), p) for p, item in SPEC["paths"].items() for m, op in item.items() if op.get("deprecated")}
    # and an older Llama Stack's paths for operations (Agents under /v1), still answered
    deprecated |= {(m.upper(), op["x-legacy-path"]) for item in SPEC["paths"].values() for m, op in item.items()
                   if "x-legacy-path" in op}  # fmt: skip
    assert ("POST", "/v1/agents/{agent_id}/session/{session_id}/turn") in deprecated
    assert {(r.method, r.route) for r in listed.data} == deprecated


async def test_providers_list_and_get(client: TestClient[Any, Any], home: Path) -> None:
    api = sdk(client)
    listed = await list_providers.asyncio(client=api)
    assert listed is not None and not isinstance(listed, Error)
    inference, files, vector_io, *rest = listed.data
    safety = [p for p in rest if p.api == "safety"]
    assert [(p.api, p.provider_id) for p in rest if p.api != "safety"] == [
        ("tool_runtime", "file-search"),
        ("tool_runtime", "tavily-search"),
        ("tool_runtime", "brave-search"),
        ("tool_runtime", "model-context-protocol"),  # optional: here because `make test` installs [mcp]
        ("datasetio", "localfs-datasets"),
        ("scoring", "basic"),
        ("scoring", "llm-as-judge"),
        ("eval", "builtin"),
        ("file_processors", "pypdf"),
    ]
    assert (inference.api, inference.provider_id, inference.provider_type) == (
        "inference",
        "llama-cpp",
        "inline::llama-cpp",
    )
    assert inference.health.additional_properties == {"status": "OK"}
    assert inference.config.additional_properties["models_dir"] == str(home / "models")
    assert (files.api, files.provider_id, files.provider_type) == ("files", "localfs", "inline::localfs")
    assert files.health.additional_properties == {"status": "OK"}
    assert (vector_io.api, vector_io.provider_type) == ("vector_io", "inline::sqlite-vec")
    assert vector_io.health.additional_properties == {"status": "OK"}
    assert [(p.api, p.provider_id, p.provider_type) for p in safety] == [
        ("safety", "pii", "inline::pii"),
        ("safety", "llama-guard", "inline::llama-guard"),
        ("safety", "code-scanner", "inline::code-scanner"),  # optional: here because `make test` installs it
        ("safety", "toxicity", "inline::toxicity"),
    ]
    one = await inspect_provider.asyncio(client=api, provider_id="llama-cpp")
    assert one is not None and not isinstance(one, Error) and one.provider_id == "llama-cpp"


async def test_unknown_provider_is_404_in_error_shape(client: TestClient[Any, Any]) -> None:
    response = await inspect_provider.asyncio_detailed(client=sdk(client), provider_id="nope")
    assert response.status_code == 404
    assert isinstance(response.parsed, Error)
    assert "nope" in response.parsed.error.message


def test_redaction_hides_secrets_but_keeps_shape() -> None:
    config = {"url": "http://x", "api_key": "sk-1", "nested": {"password": "p", "token": ""}, "list": [{"secret": "s"}]}
    assert redact(config) == {
        "url": "http://x",
        "api_key": "********",
        "nested": {"password": "********", "token": ""},
        "list": [{"secret": "********"}],
    }
