"""Tool groups, tools and the tool runtime (Llama Stack's shapes, over HTTP), and Responses' web_search.

knowledge_search runs over a vector store with real embeddings; MCP tool groups are a real
FastMCP server on loopback (test_mcp.py's); the web search engines cannot run here, so they are
tested offline (no key, an unreachable engine: a failed result at once) and against a loopback
server that answers in Tavily's and Brave's documented shapes, to check what the provider reads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.apis.tools import ToolsApi
from pocketstack.app import STACK, create_app
from pocketstack.web.context import provider_data
from tests.support.config import edge_providers_with, edge_with, server_allowing
from tests.support.documents import store_of
from tests.support.errors import assert_error_shape
from tests.support.items import first_text
from tests.support.process import free_port
from tests.support.scripted import CHAT, RECEIVED, scripted_entry

SEARCH = "What happened in Lisbon today?"
CALLS = {SEARCH: [{"name": "web_search", "arguments": '{"query": "Lisbon news today"}'}]}
SEEN: list[dict[str, Any]] = []


class _Engine(BaseHTTPRequestHandler):
    """Answers Tavily's POST /search and Brave's GET /res/v1/web/search in their documented shapes."""

    def _reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SEEN.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        hits = [{"title": "Tram 28 back", "url": "https://news.example/lisbon", "content": "The tram runs again.",
                 "score": 0.9}]  # fmt: skip
        self._reply({"query": body["query"], "results": hits[: body["max_results"]]})

    def do_GET(self) -> None:
        SEEN.append({"path": self.path, "auth": self.headers.get("X-Subscription-Token")})
        hit = {"title": "Lisbon", "url": "https://brave.example/lisbon", "description": "Sunny in Lisbon."}
        self._reply({"web": {"results": [hit]}})

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), _Engine)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _tool_runtime(engine: str) -> list[dict[str, Any]]:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: an offline engine
    return [
        {"provider_id": "file-search", "provider_type": "inline::file-search", "config": {}},
        {"provider_id": "tavily", "provider_type": "remote::tavily-search",
         "config": {"base_url": engine, "api_key": "tvly-test"}},
        {"provider_id": "brave", "provider_type": "remote::brave-search", "config": {"base_url": engine}},
        {"provider_id": "offline", "provider_type": "remote::tavily-search",
         "config": {"base_url": closed, "api_key": "k", "timeout_s": 5}},
        {"provider_id": "mcp", "provider_type": "remote::model-context-protocol", "config": {}},
    ]  # fmt: skip


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], engine: str
) -> TestClient[Any, Any]:
    inference = [*edge_providers_with()["inference"], scripted_entry(calls=CALLS)]
    config = edge_with(
        providers=edge_providers_with(inference=inference, tool_runtime=_tool_runtime(engine)),
        registered_resources={
            "models": [CHAT],
            "shields": [],
            "tool_groups": [
                {"toolgroup_id": "builtin::rag", "provider_id": "file-search"},
                {"toolgroup_id": "builtin::websearch", "provider_id": "tavily", "args": {"max_results": 1}},
                {"toolgroup_id": "web::brave", "provider_id": "brave"},
            ],
        },
        server=server_allowing("127.0.0.1"),  # the MCP server listens there
    )
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


async def _post(server: TestClient[Any, Any], path: str, body: dict[str, Any]) -> Any:
    reply = await server.post(path, json=body)
    assert reply.status in (200, 204), await reply.text()
    return await reply.json() if reply.status == 200 else None


async def test_tool_groups_and_their_tools_are_listed(server: TestClient[Any, Any]) -> None:
    groups = (await (await server.get("/v1/toolgroups")).json())["data"]
    assert [(g["identifier"], g["provider_id"], g["type"]) for g in groups] == [
        ("builtin::rag", "file-search", "tool_group"),
        ("builtin::websearch", "tavily", "tool_group"),
        ("web::brave", "brave", "tool_group"),
    ]
    assert groups[1]["args"] == {"max_results": 1}
    tools = (await (await server.get("/v1/tools")).json())["data"]
    assert [(t["toolgroup_id"], t["name"]) for t in tools] == [
        ("builtin::rag", "knowledge_search"),
        ("builtin::websearch", "web_search"),
        ("web::brave", "web_search"),
    ]
    assert tools[0]["input_schema"]["required"] == ["query"]
    # Llama Stack 0.2's Tool fields too, for that version's clients
    assert (tools[0]["identifier"], tools[0]["provider_id"], tools[0]["type"]) == ("knowledge_search", "file-search",
                                                                                  "tool")  # fmt: skip
    assert [(p["name"], p["parameter_type"], p["required"]) for p in tools[0]["parameters"]] == [
        ("query", "string", True)
    ]
    rag = await (await server.get("/v1/tools", params={"toolgroup_id": "builtin::rag"})).json()
    assert [t["name"] for t in rag["data"]] == ["knowledge_search"]
    tool = await (await server.get("/v1/tools/knowledge_search")).json()
    assert tool["toolgroup_id"] == "builtin::rag"
    group = await (await server.get("/v1/toolgroups/builtin::websearch")).json()
    assert group["identifier"] == "builtin::websearch"
    runtime = await (await server.get("/v1/tool-runtime/list-tools", params={"tool_group_id": "web::brave"})).json()
    assert [t["name"] for t in runtime["data"]] == ["web_search"]


async def test_knowledge_search_finds_the_right_passage(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any], stored_embedding: str
) -> None:
    store = await store_of(oai, stored_embedding)
    result = await _post(server, "/v1/tool-runtime/invoke", {
        "tool_name": "knowledge_search", "kwargs": {"query": "what grows when a comet nears the sun",
                                                    "vector_store_ids": [store]}})  # fmt: skip
    assert "error_message" not in result
    assert "tail" in result["content"] and result["metadata"]["vector_store_ids"] == [store]
    assert result["metadata"]["results"][0]["filename"] == "comets.json"
    missing = await _post(server, "/v1/tool-runtime/invoke", {"tool_name": "knowledge_search", "kwargs": {"q": "x"}})
    assert missing["error_code"] == 400 and "query" in missing["error_message"]


async def test_web_search_reads_tavily_and_brave_answers(server: TestClient[Any, Any]) -> None:
    SEEN.clear()
    tavily = await _post(server, "/v1/tool-runtime/invoke", {"tool_name": "web_search", "kwargs": {"query": "lisbon"}})
    assert "[1] Tram 28 back (https://news.example/lisbon)\nThe tram runs again." in tavily["content"]
    assert SEEN[-1] == {"path": "/search", "auth": "Bearer tvly-test", "body": {"query": "lisbon", "max_results": 1}}
    assert tavily["metadata"]["results"][0]["url"] == "https://news.example/lisbon"
    # Brave's key comes from the provider data (X-LlamaStack-Provider-Data), as in Llama Stack.
    api = _tools_api(server)
    token = provider_data.set({"brave_search_api_key": "brv-key"})
    try:
        brave = await api.run(await api.lookup("web::brave"), "web_search", {"query": "weather"})
    finally:
        provider_data.reset(token)
    assert brave.error_message is None and "Lisbon (https://brave.example/lisbon)\nSunny in Lisbon." in brave.text
    assert SEEN[-1] == {"path": "/res/v1/web/search?q=weather&count=3", "auth": "brv-key"}


async def test_a_web_search_without_a_key_or_network_fails_at_once(server: TestClient[Any, Any]) -> None:
    await _post(server, "/v1/toolgroups", {"toolgroup_id": "web::offline", "provider_id": "offline"})
    api = _tools_api(server)
    result = await api.run(await api.lookup("web::offline"), "web_search", {"query": "anything"})
    assert result.error_code == 503 and "could not be reached" in (result.error_message or "")
    result = await api.run(await api.lookup("web::brave"), "web_search", {"query": "anything"})
    assert result.error_code == 401 and "brave_search_api_key" in (result.error_message or "")


def _tools_api(server: TestClient[Any, Any]) -> ToolsApi:
    return ToolsApi(server.app[STACK])  # stateless over the stack: the same tools the routes use


async def test_an_mcp_tool_group_is_registered_by_url_listed_and_invoked(
    server: TestClient[Any, Any], mcp_url: str
) -> None:
    await _post(server, "/v1/toolgroups", {"toolgroup_id": "mcp::calc", "provider_id": "mcp",
                                           "mcp_endpoint": {"uri": mcp_url}})  # fmt: skip
    group = await (await server.get("/v1/toolgroups/mcp::calc")).json()
    assert group["mcp_endpoint"] == {"uri": mcp_url}
    tools = (await (await server.get("/v1/tools", params={"toolgroup_id": "mcp::calc"})).json())["data"]
    assert {t["name"] for t in tools} == {"add", "shout", "whoami"}
    assert next(t for t in tools if t["name"] == "add")["input_schema"]["required"] == ["a", "b"]
    added = await _post(server, "/v1/tool-runtime/invoke", {"tool_name": "add", "kwargs": {"a": 2, "b": 3}})
    assert added["content"] == "5" and "error_message" not in added
    whoami = await _post(server, "/v1/tool-runtime/invoke",
                         {"tool_name": "whoami", "kwargs": {}, "authorization": "tok-1"})  # fmt: skip
    assert whoami["content"].startswith("Bearer tok-1|")
    direct = await (await server.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint": mcp_url})).json()
    assert {t["name"] for t in direct["data"]} == {"add", "shout", "whoami"}
    assert (await server.delete("/v1/toolgroups/mcp::calc")).status == 204
    assert (await server.get("/v1/toolgroups/mcp::calc")).status == 404


async def test_tool_errors(server: TestClient[Any, Any]) -> None:
    cases = [
        ("POST", "/v1/toolgroups", {"toolgroup_id": "x", "provider_id": "nope"}, 400),
        ("POST", "/v1/toolgroups", {"toolgroup_id": "builtin::rag", "provider_id": "file-search"}, 409),
        ("POST", "/v1/toolgroups", {"toolgroup_id": "mcp::none", "provider_id": "mcp"}, 400),
        ("POST", "/v1/toolgroups", {"provider_id": "mcp"}, 400),
        ("GET", "/v1/toolgroups/none::such", None, 404),
        ("DELETE", "/v1/toolgroups/none::such", None, 404),
        ("GET", "/v1/tools/no_such_tool", None, 404),
        ("GET", "/v1/tools?toolgroup_id=none::such", None, 404),
        ("POST", "/v1/tool-runtime/invoke", {"tool_name": "no_such_tool", "kwargs": {}}, 404),
        ("POST", "/v1/tool-runtime/invoke", {"tool_name": "web_search"}, 400),
    ]
    for method, path, body, status in cases:
        reply = await server.request(method, path, json=body)
        assert reply.status == status, (method, path, await reply.text())
        assert_error_shape(await reply.json())


async def test_responses_web_search_runs_through_the_tool_runtime(oai: openai.AsyncOpenAI) -> None:
    SEEN.clear()
    response = await oai.responses.create(model="chat", input=SEARCH, tools=[{"type": "web_search"}])
    search, message = response.output
    assert search.type == "web_search_call" and search.status == "completed"
    assert search.action.query == "Lisbon news today"  # type: ignore[union-attr]
    assert "Tram 28 back" in first_text(message)
    assert SEEN[-1]["body"]["query"] == "Lisbon news today"
    offered = [t.function.name for t in RECEIVED[0].tools or []]  # type: ignore[union-attr]
    assert offered == ["web_search"]
    stream = await oai.responses.create(model="chat", input=SEARCH, tools=[{"type": "web_search_preview"}], stream=True)
    kinds = [event.type async for event in stream]
    searching = [k for k in kinds if k.startswith("response.web_search_call")]
    assert searching == ["response.web_search_call.in_progress", "response.web_search_call.searching",
                         "response.web_search_call.completed"]  # fmt: skip


async def test_responses_web_search_offline_is_a_failed_item_not_a_hang(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    config = edge_with(
        providers=edge_providers_with(
            inference=[scripted_entry(calls=CALLS)],
            tool_runtime=[
                {
                    "provider_id": "tavily",
                    "provider_type": "remote::tavily-search",
                    "config": {"base_url": closed, "api_key": "k"},
                }
            ],
        ),
        registered_resources={"models": [CHAT], "shields": []},
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config))
    reply = await client.post(
        "/v1/responses", json={"model": "chat", "input": SEARCH, "tools": [{"type": "web_search"}]}
    )
    body = await reply.json()
    assert reply.status == 200, body
    search, message = body["output"]
    assert search["type"] == "web_search_call" and search["status"] == "failed"
    assert "The tool said: The web search failed" in message["content"][0]["text"]


async def test_web_search_without_a_provider_is_a_400(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    config = edge_with(
        providers=edge_providers_with(inference=[scripted_entry()], tool_runtime=[]),
        registered_resources={"models": [CHAT], "shields": []},
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config))
    reply = await client.post("/v1/responses", json={"model": "chat", "input": "x", "tools": [{"type": "web_search"}]})
    assert reply.status == 400
    assert "web search provider" in (await reply.json())["error"]["message"]


async def test_each_provider_checks_its_group_args_at_registration(server: TestClient[Any, Any]) -> None:
    # The tool runtime contract's check_group: args a provider could never use are a 400 where they are given,
    # not a failure (or a 500) at every call.
    for group in (
        {"toolgroup_id": "rag::bad", "provider_id": "file-search", "args": {"vector_store_ids": [5]}},
        {"toolgroup_id": "mcp::bad", "provider_id": "mcp", "mcp_endpoint": {"uri": "http://127.0.0.1:1/mcp"},
         "args": {"headers": "Authorization: x"}},
    ):  # fmt: skip
        reply = await server.post("/v1/toolgroups", json=group)
        error = assert_error_shape(await reply.json())
        assert (reply.status, error["code"], error["param"]) == (400, "invalid_tool_group_args", "args"), error
    assert (await server.get("/v1/toolgroups/rag::bad")).status == 404


async def test_web_search_max_results_is_checked_where_it_is_given(
    server: TestClient[Any, Any], aiohttp_client: Callable[..., Any], engine: str
) -> None:
    for wrong in ("lots", 2.5, 0, 21, True):
        reply = await server.post("/v1/toolgroups", json={"toolgroup_id": "web::bad", "provider_id": "tavily",
                                                          "args": {"max_results": wrong}})  # fmt: skip
        error = assert_error_shape(await reply.json())
        assert (reply.status, error["param"]) == (400, "args"), (wrong, error)
        assert "max_results must be a whole number from 1 to 20" in error["message"]
    await _post(server, "/v1/toolgroups", {"toolgroup_id": "web::two", "provider_id": "tavily",
                                           "args": {"max_results": "2"}})  # fmt: skip
    # A group stored before registration checked its args: its searches fail as results, not as 500s.
    await server.app[STACK].registry.add("tool_group", "web::stored", "tavily", "web::stored",
                                         {"mcp_endpoint": None, "args": {"max_results": "lots"}})  # fmt: skip
    api = _tools_api(server)
    result = await api.run(await api.lookup("web::stored"), "web_search", {"query": "lisbon"})
    assert result.error_code == 400 and "max_results" in (result.error_message or "")
    # In the run config, the server does not start, and says which entry is wrong.
    bad = {"toolgroup_id": "web::bad", "provider_id": "tavily", "args": {"max_results": "lots"}}
    config = edge_with(
        providers=edge_providers_with(tool_runtime=_tool_runtime(engine)),
        registered_resources={"models": [], "shields": [], "tool_groups": [bad]},
    )
    refused = await (await aiohttp_client(create_app(config))).get("/v1/toolgroups")
    error = assert_error_shape(await refused.json())
    assert refused.status == 503 and "registered_resources.tool_groups[0] (web::bad)" in error["message"]
