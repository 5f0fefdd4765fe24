"""The outbound guard on the routes that take a user's URL (issue 17, point 6): MCP servers named in a
Responses `mcp` tool, a tool group registered through the API, and `list-tools?mcp_endpoint=`.

Loopback, link-local (the metadata address), private addresses and names resolving to them are
refused before anything is sent (a listener counts the connections it accepts: none); the operator
allows them with `server.outbound.allow`; a redirect is checked again; the run config's own URLs
are trusted as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import create_app
from tests.support.config import edge_providers_with, edge_with, server_allowing
from tests.support.errors import assert_error_shape
from tests.support.listener import Answer, Listener, listening
from tests.support.scripted import CHAT, scripted_entry

MCP = "model-context-protocol"


def _config(**extra: Any) -> Any:
    return edge_with(
        providers=edge_providers_with(inference=[scripted_entry()]),
        **{"registered_resources": {"models": [CHAT], "shields": []}, **extra},
    )


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(_config()))  # type: ignore[no-any-return]


@pytest.fixture
def listener() -> Iterator[Listener]:
    with listening() as found:
        yield found


def _mcp_tool(url: str) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "calc", "server_url": url, "require_approval": "never"}


async def _refused(reply: Any, param: str) -> str:
    body = await reply.json()
    error = assert_error_shape(body)
    assert (reply.status, error["code"], error["param"]) == (400, "outbound_url_refused", param), body
    assert "server.outbound.allow" in error["message"]
    return str(error["message"])


async def test_private_and_loopback_urls_are_refused_before_any_connection(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, listener: Listener
) -> None:
    urls = {
        "http://169.254.169.254/latest/meta-data/": "link-local",
        "http://10.0.0.1/mcp": "private",
        "http://192.168.1.20:8080/mcp": "private",
        listener.url(): "loopback",
        f"http://localhost:{listener.port}/mcp": "loopback",  # a name that resolves to loopback
        f"http://[::1]:{listener.port}/mcp": "loopback",
        "http://0.0.0.0:8080/mcp": "unspecified",
    }
    for url, kind in urls.items():
        with pytest.raises(openai.BadRequestError) as raised:  # the official client, as users call it
            await oai.responses.create(model="chat", input="hi", tools=[_mcp_tool(url)])  # type: ignore[list-item]
        assert raised.value.code == "outbound_url_refused" and kind in raised.value.message, raised.value.message
        reply = await server.post(
            "/v1/toolgroups", json={"toolgroup_id": "mcp::x", "provider_id": MCP, "mcp_endpoint": {"uri": url}}
        )
        assert kind in await _refused(reply, "mcp_endpoint")
        reply = await server.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint": url})
        assert kind in await _refused(reply, "mcp_endpoint")
    assert (await server.get("/v1/toolgroups/mcp::x")).status == 404  # nothing was registered
    assert listener.connections == 0  # refused before anything was sent


async def test_the_query_and_credentials_of_a_refused_url_are_not_echoed(server: TestClient[Any, Any]) -> None:
    url = "http://user:hunter2@10.1.2.3/mcp?token=s3cr3t"
    reply = await server.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint": url})
    message = await _refused(reply, "mcp_endpoint")
    assert "http://10.1.2.3/mcp" in message and "hunter2" not in message and "s3cr3t" not in message


@pytest.mark.parametrize("how", ["name", "address", "network", "url prefix"])
async def test_what_the_operator_allows_is_reached(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], mcp_url: str, how: str
) -> None:
    port = mcp_url.split(":")[2].split("/")[0]
    url = mcp_url.replace("127.0.0.1", "localhost") if how == "name" else mcp_url
    allow = {"name": "localhost", "address": "127.0.0.1", "network": "127.0.0.0/8",
             "url prefix": f"http://127.0.0.1:{port}/"}[how]  # fmt: skip
    client: TestClient[Any, Any] = await aiohttp_client(create_app(_config(server=server_allowing(allow))))
    reply = await client.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint": url})
    assert reply.status == 200, await reply.text()
    assert {t["name"] for t in (await reply.json())["data"]} == {"add", "shout", "whoami"}
    reply = await client.post("/v1/responses", json={"model": "chat", "input": "hi", "tools": [_mcp_tool(url)]})
    listing = (await reply.json())["output"][0]
    assert listing["type"] == "mcp_list_tools" and not listing.get("error") and len(listing["tools"]) == 3


async def test_an_allowance_covers_only_what_it_names(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], listener: Listener
) -> None:
    allow = [f"http://127.0.0.1:{listener.port}/mcp", "10.9.0.0/16", "*.corp.example"]
    client: TestClient[Any, Any] = await aiohttp_client(create_app(_config(server=server_allowing(*allow))))
    for url in (
        listener.url("/admin"),
        listener.url("/mcpx"),
        "http://10.8.0.1/mcp",
        f"http://localhost:{listener.port}/mcp",
    ):
        reply = await client.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint": url})
        await _refused(reply, "mcp_endpoint")
    assert listener.connections == 0


async def test_a_redirect_to_a_forbidden_address_is_refused(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], listener: Listener
) -> None:
    with listening(Answer(307, b"", location=listener.url())) as redirector:
        config = _config(server=server_allowing(f"http://127.0.0.1:{redirector.port}/"))  # the redirector only
        client: TestClient[Any, Any] = await aiohttp_client(create_app(config))
        reply = await client.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint": redirector.url()})
        body = await reply.json()
        assert reply.status == 503 and "refused" in body["error"]["message"], body
        assert "server.outbound.allow" in body["error"]["message"]
        tools = [_mcp_tool(redirector.url())]
        reply = await client.post("/v1/responses", json={"model": "chat", "input": "hi", "tools": tools})
        listing = (await reply.json())["output"][0]
        assert listing["type"] == "mcp_list_tools" and "server.outbound.allow" in listing["error"]
        assert redirector.paths and listener.connections == 0  # followed to the check, never connected


async def test_urls_in_the_run_config_are_trusted_as_written(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], mcp_url: str
) -> None:
    group = {"toolgroup_id": "mcp::calc", "provider_id": MCP, "mcp_endpoint": {"uri": mcp_url}}
    config = _config(registered_resources={"models": [CHAT], "shields": [], "tool_groups": [group]})
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config))  # no server.outbound.allow
    reply = await client.get("/v1/tools", params={"toolgroup_id": "mcp::calc"})
    assert reply.status == 200 and len((await reply.json())["data"]) == 3, await reply.text()
