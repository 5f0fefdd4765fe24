"""MCP credentials are used for the call and never stored or returned (issue 17, point 7).

A Responses `mcp` tool's `authorization` and `headers`, Llama Stack's per-request `mcp_headers`
(X-LlamaStack-Provider-Data) and a tool call's `authorization` reach the MCP server, and then appear
nowhere: not in any answer or read path (the response, its listing, its input items, the
conversation's items, the events of a background stream, agent turns), not in any byte the server
wrote under POCKETSTACK_HOME, not in the logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import create_app
from tests.functional.conftest import MCP_REQUEST_HEADERS
from tests.support.config import edge_providers_with, edge_with, server_allowing
from tests.support.errors import assert_error_shape
from tests.support.scripted import CHAT, scripted_entry

ADD = "Add 2 and 3."
CALLS = {ADD: [{"name": "add", "arguments": '{"a": 2, "b": 3}'}]}
MCP = "model-context-protocol"


def _config(**registered: Any) -> Any:
    return edge_with(
        providers=edge_providers_with(inference=[scripted_entry(calls=CALLS)]),
        registered_resources={"models": [CHAT], "shields": [], **registered},
        server=server_allowing("127.0.0.1"),  # the MCP server listens there
    )


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(_config()))  # type: ignore[no-any-return]


@pytest.fixture
def secrets(caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    MCP_REQUEST_HEADERS.clear()
    return [f"sk-{uuid.uuid4().hex}", f"hdr-{uuid.uuid4().hex}"]


def _received(header: str) -> set[str]:
    return {seen[header] for seen in MCP_REQUEST_HEADERS if header in seen}


async def _text(server: TestClient[Any, Any], method: str, path: str, **kwargs: Any) -> str:
    reply = await server.request(method, path, **kwargs)
    text = await reply.text()
    assert reply.status == 200, text
    return text


def _nowhere(secrets: list[str], texts: list[str], home: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Not in what was read, not in any file under the server's home, not in the logs."""
    for secret in secrets:
        for text in texts:
            assert secret not in text
        for path in home.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        assert secret not in caplog.text


async def test_responses_mcp_credentials_are_sent_and_never_kept(
    server: TestClient[Any, Any], mcp_url: str, secrets: list[str], home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token, team = secrets
    tool = {"type": "mcp", "server_label": "calc", "server_url": mcp_url, "require_approval": "never",
            "authorization": token, "headers": {"X-Team": team}}  # fmt: skip
    conversation = json.loads(await _text(server, "POST", "/v1/conversations", json={}))["id"]
    read: list[str] = []
    created = await _text(
        server,
        "POST",
        "/v1/responses",
        json={"model": "chat", "input": ADD, "tools": [tool], "conversation": conversation},
    )
    read.append(created)
    response = json.loads(created)
    assert [item["type"] for item in response["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert response["output"][1]["output"] == "5"
    assert response["tools"] == [{"type": "mcp", "server_label": "calc", "allowed_tools": None}]  # as Llama Stack
    streamed = await _text(
        server, "POST", "/v1/responses", json={"model": "chat", "input": ADD, "tools": [tool], "stream": True}
    )
    read.append(streamed)
    in_background = {"model": "chat", "input": ADD, "tools": [tool], "background": True}
    background = json.loads(await _text(server, "POST", "/v1/responses", json=in_background))
    for _ in range(200):  # a background response: until it settles
        stored = json.loads(await _text(server, "GET", f"/v1/responses/{background['id']}"))
        if stored["status"] not in ("queued", "in_progress"):
            break
        await asyncio.sleep(0.05)
    assert stored["status"] == "completed", stored
    background_stream = await _text(
        server, "POST", "/v1/responses",
        json={"model": "chat", "input": ADD, "tools": [tool], "background": True, "stream": True},
    )  # fmt: skip
    read.append(background_stream)
    replayed_id = next(
        json.loads(line[6:])["response"]["id"] for line in background_stream.splitlines() if line.startswith("data: {")
    )
    for path in (f"/v1/responses/{response['id']}", "/v1/responses", f"/v1/responses/{response['id']}/input_items",
                 f"/v1/conversations/{conversation}/items", f"/v1/responses/{background['id']}",
                 f"/v1/responses/{replayed_id}?stream=true"):  # fmt: skip
        read.append(await _text(server, "GET", path))
    assert f"Bearer {token}" in _received("authorization") and team in _received("x-team")  # they were sent
    _nowhere(secrets, read, home, caplog)


async def test_tool_runtime_credentials_are_per_request_and_never_kept(
    server: TestClient[Any, Any], mcp_url: str, secrets: list[str], home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token, team = secrets
    group = {"toolgroup_id": "mcp::calc", "provider_id": MCP, "mcp_endpoint": {"uri": mcp_url}}
    reply = await server.post("/v1/toolgroups", json={**group, "args": {"headers": {"X-Team": team}}})
    error = assert_error_shape(await reply.json())
    assert (reply.status, error["code"]) == (400, "secret_not_stored") and "mcp_headers" in error["message"]
    assert (await server.post("/v1/toolgroups", json=group)).status == 204
    provider_data = {"X-LlamaStack-Provider-Data": json.dumps({"mcp_headers": {mcp_url: {"X-Team": team}}})}
    read = [
        await _text(server, "POST", "/v1/tool-runtime/invoke", headers=provider_data,
                    json={"tool_name": "add", "kwargs": {"a": 2, "b": 3}, "authorization": token}),
        await _text(server, "GET", "/v1/toolgroups/mcp::calc"),
        await _text(server, "GET", "/v1/toolgroups"),
    ]  # fmt: skip
    assert json.loads(read[0])["content"] == "5"
    assert f"Bearer {token}" in _received("authorization") and team in _received("x-team")
    _nowhere(secrets, read, home, caplog)


async def test_agents_take_mcp_credentials_per_request_only(
    server: TestClient[Any, Any], mcp_url: str, secrets: list[str], home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, team = secrets
    group = {"toolgroup_id": "mcp::calc", "provider_id": MCP, "mcp_endpoint": {"uri": mcp_url}}
    assert (await server.post("/v1/toolgroups", json=group)).status == 204
    config = {"model": "chat", "instructions": "Be terse."}
    with_headers = {**config, "toolgroups": [{"name": "mcp::calc", "args": {"headers": {"X-Team": team}}}]}
    reply = await server.post("/v1alpha/agents", json={"agent_config": with_headers})
    error = assert_error_shape(await reply.json())
    assert (reply.status, error["code"]) == (400, "secret_not_stored")
    provider_data = {"X-LlamaStack-Provider-Data": json.dumps({"mcp_headers": {mcp_url: {"X-Team": team}}})}
    agent_config = {**config, "toolgroups": ["mcp::calc"]}
    agent = json.loads(await _text(server, "POST", "/v1alpha/agents", json={"agent_config": agent_config}))["agent_id"]
    session = json.loads(await _text(server, "POST", f"/v1alpha/agents/{agent}/session", json={"session_name": "s"}))[
        "session_id"
    ]
    turns = f"/v1alpha/agents/{agent}/session/{session}/turn"
    body = {"messages": [{"role": "user", "content": ADD}]}
    turn = json.loads(await _text(server, "POST", turns, json=body, headers=provider_data))
    assert turn["output_message"]["content"] == "The tool said: 5"
    read = [
        json.dumps(turn),
        await _text(server, "POST", turns, json={**body, "stream": True}, headers=provider_data),
        await _text(server, "GET", f"/v1alpha/agents/{agent}"),
        await _text(server, "GET", f"/v1alpha/agents/{agent}/session/{session}"),
        await _text(server, "GET", f"{turns}/{turn['turn_id']}"),
    ]
    assert team in _received("x-team")
    _nowhere(secrets, read, home, caplog)


async def test_a_run_config_group_may_hold_headers_which_the_api_never_shows(
    aiohttp_client: Callable[..., Any],
    scripted: list[models.ChatCompletionRequest],
    mcp_url: str,
    secrets: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, team = secrets
    group = {"toolgroup_id": "mcp::calc", "provider_id": MCP, "mcp_endpoint": {"uri": mcp_url},
             "args": {"headers": {"X-Team": team}}}  # fmt: skip
    client: TestClient[Any, Any] = await aiohttp_client(create_app(_config(tool_groups=[group])))
    invoked = await _text(
        client, "POST", "/v1/tool-runtime/invoke", json={"tool_name": "add", "kwargs": {"a": 1, "b": 1}}
    )
    assert json.loads(invoked)["content"] == "2" and team in _received("x-team")  # the operator's header, used
    shown = [await _text(client, "GET", "/v1/toolgroups/mcp::calc"), await _text(client, "GET", "/v1/toolgroups")]
    for text in shown:
        assert team not in text
    assert team not in caplog.text
