"""The mcp tool of responses against a real MCP server (the `mcp` package's FastMCP) on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import create_app
from tests.support.config import edge_providers_with, edge_with, server_allowing
from tests.support.process import free_port
from tests.support.scripted import CHAT, scripted_entry

ADD = "Add 2 and 3."
CALLS = {ADD: [{"name": "add", "arguments": '{"a": 2, "b": 3}'}], "Who am I?": [{"name": "whoami", "arguments": "{}"}]}


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> TestClient[Any, Any]:
    config = edge_with(
        providers=edge_providers_with(inference=[scripted_entry(calls=CALLS)]),
        registered_resources={"models": [CHAT], "shields": []},
        server=server_allowing("127.0.0.1"),  # the MCP server listens there
    )
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


def mcp_tool(url: str, **extra: Any) -> Any:
    return {"type": "mcp", "server_label": "calc", "server_url": url, **extra}


async def test_tools_are_listed_and_called_without_approval(
    oai: openai.AsyncOpenAI, mcp_url: str, scripted: list[models.ChatCompletionRequest]
) -> None:
    tools = [mcp_tool(mcp_url, require_approval="never", allowed_tools=["add"])]
    response = await oai.responses.create(model="chat", input=ADD, tools=tools)
    listing, call, answer = response.output
    assert listing.type == "mcp_list_tools" and [t.name for t in listing.tools] == ["add"]
    assert call.type == "mcp_call" and (call.name, call.output, call.error) == ("add", "5", None)
    assert answer.type == "message" and response.output_text == "The tool said: 5"
    offered = scripted[0].tools
    assert isinstance(offered, list) and [t.function.name for t in offered] == ["add"]  # allowed_tools held back shout


async def test_a_server_is_listed_once_along_a_response_chain(
    oai: openai.AsyncOpenAI, mcp_url: str, scripted: list[models.ChatCompletionRequest]
) -> None:
    tools = [mcp_tool(mcp_url, require_approval="never")]
    first = await oai.responses.create(model="chat", input="hello", tools=tools)
    assert [item.type for item in first.output] == ["mcp_list_tools", "message"]
    previous = first.id
    for _ in range(2):
        later = await oai.responses.create(model="chat", input=ADD, tools=tools, previous_response_id=previous)
        assert [item.type for item in later.output] == ["mcp_call", "message"]  # not listed again
        previous = later.id
    offered = scripted[-1].tools
    assert isinstance(offered, list) and {t.function.name for t in offered} == {"add", "shout", "whoami"}
    other = await oai.responses.create(model="chat", input="hello", tools=[mcp_tool(mcp_url, server_label="other")])
    assert other.output[0].type == "mcp_list_tools"  # a server the chain never listed is listed


async def test_a_call_waits_for_approval_and_runs_once_approved(oai: openai.AsyncOpenAI, mcp_url: str) -> None:
    tools = [mcp_tool(mcp_url)]  # require_approval: always, by default
    asked = await oai.responses.create(model="chat", input=ADD, tools=tools)
    _listing, request = asked.output
    assert request.type == "mcp_approval_request" and request.name == "add"
    approved = await oai.responses.create(
        model="chat",
        previous_response_id=asked.id,
        tools=tools,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
    )
    kinds = [item.type for item in approved.output]
    assert kinds == ["mcp_call", "message"]  # the listing in the previous response is used again, as in OpenAI
    call = approved.output[0]
    assert call.type == "mcp_call" and call.output == "5" and call.approval_request_id == request.id
    assert approved.output_text == "The tool said: 5"
    denied = await oai.responses.create(
        model="chat",
        previous_response_id=asked.id,
        tools=tools,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False}],
    )
    refused = denied.output[0]
    assert refused.type == "mcp_call"
    # A string here (Llama Stack's shape); openai's current types say an error object (McpToolCallError).
    error: object = refused.error
    assert isinstance(error, str) and "did not approve" in error


async def test_the_stream_tells_the_listing_and_the_call(oai: openai.AsyncOpenAI, mcp_url: str) -> None:
    tools = [mcp_tool(mcp_url, require_approval={"never": {"tool_names": ["add"]}})]
    stream = await oai.responses.create(model="chat", input=ADD, tools=tools, stream=True)
    kinds = [event.type async for event in stream]
    for expected in (
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.output_text.delta",
    ):
        assert expected in kinds, kinds
    assert "response.function_call_arguments.delta" not in kinds
    assert kinds.index("response.mcp_call.completed") < kinds.index("response.output_text.delta")


async def test_an_unreachable_server_is_an_error_item_not_a_hang(oai: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    tools = [mcp_tool(f"http://127.0.0.1:{free_port()}/mcp", require_approval="never")]
    response = await oai.responses.create(model="chat", input="hello", tools=tools)
    listing, _answer = response.output
    assert listing.type == "mcp_list_tools" and listing.error and "calc" in listing.error
    assert response.output_text == "You said: hello" and time.monotonic() - started < 10


async def test_mcp_tool_errors(server: TestClient[Any, Any], mcp_url: str) -> None:
    for tools in (
        [{"type": "mcp", "server_url": mcp_url}],
        [{"type": "mcp", "server_label": "calc"}],
        [mcp_tool(mcp_url, require_approval="sometimes")],
        [mcp_tool(mcp_url), mcp_tool(mcp_url)],
    ):
        response = await server.post("/v1/responses", json={"model": "chat", "input": "x", "tools": tools})
        assert response.status == 400, (tools, await response.text())
    stray = {"type": "mcp_approval_response", "approval_request_id": "mcpr_nope", "approve": True}
    response = await server.post(
        "/v1/responses", json={"model": "chat", "input": [stray], "tools": [mcp_tool(mcp_url)]}
    )
    assert response.status == 400


async def test_headers_and_authorization_reach_the_server(oai: openai.AsyncOpenAI, mcp_url: str) -> None:
    tools = [mcp_tool(mcp_url, require_approval="never", authorization="sekrit", headers={"X-Team": "blue"})]
    response = await oai.responses.create(model="chat", input="Who am I?", tools=tools)
    call = next(item for item in response.output if item.type == "mcp_call")
    assert call.type == "mcp_call" and call.output == "Bearer sekrit|blue"
