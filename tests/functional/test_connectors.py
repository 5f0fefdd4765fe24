"""Connectors (the run config's MCP servers) through llama_stack_client, against a real MCP server on loopback;
and the `mcp` tool of Responses naming one by `connector_id`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import create_app
from tests.functional.conftest import MCP_REQUEST_HEADERS
from tests.support.config import edge_providers_with, edge_with
from tests.support.process import free_port
from tests.support.scripted import CHAT, scripted_entry

ADD = "Add 2 and 3."
CALLS = {ADD: [{"name": "add", "arguments": '{"a": 2, "b": 3}'}]}


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], mcp_url: str
) -> TestClient[Any, Any]:
    # Loopback URLs, and no server.outbound.allow: the operator's URLs are not the outbound guard's to check.
    config = edge_with(
        providers=edge_providers_with(inference=[scripted_entry(calls=CALLS)]),
        registered_resources={"models": [CHAT], "shields": []},
        connectors=[
            {"connector_id": "calc", "url": mcp_url, "server_label": "Calculator"},
            {"connector_type": "mcp", "connector_id": "down", "url": f"http://127.0.0.1:{free_port()}/mcp"},
        ],
    )
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


async def get(lls: llama_stack_client.AsyncLlamaStackClient, path: str, **query: str) -> Any:
    """llama_stack_client 0.7.5 has no connectors resource (Llama Stack 0.7's server has the routes): its
    low-level get, with its error classes."""
    return await lls.get(path, cast_to=object, options={"params": query})


def message(error: llama_stack_client.APIStatusError) -> str:
    body: Any = error.body
    return str(body["error"]["message"])


async def test_list_and_get(lls: llama_stack_client.AsyncLlamaStackClient, mcp_url: str) -> None:
    listed = await get(lls, "/v1beta/connectors")
    assert listed == {
        "data": [
            {"connector_type": "mcp", "connector_id": "calc", "url": mcp_url, "server_label": "Calculator"},
            {"connector_type": "mcp", "connector_id": "down", "url": listed["data"][1]["url"]},
        ]
    }
    calc = await get(lls, "/v1beta/connectors/calc")
    assert calc["connector_id"] == "calc" and calc["url"] == mcp_url and calc["server_label"] == "Calculator"
    assert calc["server_name"] == "calculator" and calc["server_version"]  # what the server said of itself


async def test_tools_and_one_tool(lls: llama_stack_client.AsyncLlamaStackClient, mcp_url: str) -> None:
    tools = (await get(lls, "/v1beta/connectors/calc/tools"))["data"]
    assert [tool["name"] for tool in tools] == ["add", "shout", "whoami"]
    add = await get(lls, "/v1beta/connectors/calc/tools/add")
    assert add == tools[0] and add["description"] == "Add two whole numbers."
    assert set(add["input_schema"]["properties"]) == {"a", "b"} and add["metadata"] == {"endpoint": mcp_url}


async def test_authorization_is_sent_as_a_bearer_token(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    MCP_REQUEST_HEADERS.clear()
    await get(lls, "/v1beta/connectors/calc/tools", authorization="sekrit")
    assert MCP_REQUEST_HEADERS and all(h.get("authorization") == "Bearer sekrit" for h in MCP_REQUEST_HEADERS)


async def test_unknown_connector_and_tool_are_404(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    for path in ("/v1beta/connectors/nope", "/v1beta/connectors/nope/tools", "/v1beta/connectors/nope/tools/add"):
        with pytest.raises(llama_stack_client.NotFoundError) as caught:
            await get(lls, path)
        assert message(caught.value).startswith("Connector 'nope' not found. Use 'client.connectors.list()'")
    with pytest.raises(llama_stack_client.NotFoundError) as missing:
        await get(lls, "/v1beta/connectors/calc/tools/divide")
    assert message(missing.value) == (
        "Connector Tool 'calc.divide' not found. Use 'client.connectors.list_tools(\"calc\")' to list available "
        "Connector Tools."
    )


async def test_a_server_that_is_down_is_a_502(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    for path in ("/v1beta/connectors/down", "/v1beta/connectors/down/tools", "/v1beta/connectors/down/tools/add"):
        with pytest.raises(llama_stack_client.APIStatusError) as caught:
            await get(lls, path)
        assert caught.value.status_code == 502
        body: Any = caught.value.body
        assert body["error"]["code"] == "mcp_unreachable" and "'down'" in message(caught.value)


async def test_the_mcp_tool_of_responses_names_a_connector(oai: openai.AsyncOpenAI) -> None:
    tools: Any = [{"type": "mcp", "server_label": "calc", "connector_id": "calc", "require_approval": "never"}]
    response = await oai.responses.create(model="chat", input=ADD, tools=tools)
    listing, call, _answer = response.output
    assert listing.type == "mcp_list_tools" and {t.name for t in listing.tools} == {"add", "shout", "whoami"}
    assert call.type == "mcp_call" and (call.name, call.output, call.error) == ("add", "5", None)
    tools[0]["connector_id"] = "nope"
    with pytest.raises(openai.NotFoundError) as caught:
        await oai.responses.create(model="chat", input=ADD, tools=tools)
    assert "Connector 'nope' not found" in str(caught.value)


async def test_connectors_in_the_run_config_are_checked() -> None:
    for connectors, says in (
        ([{"connector_id": "a", "url": "ftp://x"}], "connectors.0.url"),
        ([{"connector_id": "a", "url": "http://x"}, {"connector_id": "a", "url": "http://y"}], "used twice"),
        ([{"connector_id": "a", "url": "http://x", "connector_type": "openapi"}], "connector_type"),
    ):
        with pytest.raises(Exception, match=says):
            edge_with(connectors=connectors)
