"""Fixtures the functional tests share: the scripted model, a real MCP server, and the two apps
that more than one module runs against (a module picks one by naming it in its `server` fixture)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from mcp.server.fastmcp import Context  # FastMCP reads the tools' annotations from this module

from pocketstack._generated import models
from pocketstack.app import create_app
from pocketstack.providers import PROVIDERS
from tests.support import scripted as scripted_model
from tests.support.config import edge_providers_with, edge_shields, edge_with, edge_with_vector_provider
from tests.support.process import free_port
from tests.support.scripted import CHAT, scripted_entry
from tests.support.users import As, with_test_users


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> list[models.ChatCompletionRequest]:
    """The scripted provider in the provider table; returns the requests it will receive."""
    monkeypatch.setitem(PROVIDERS, scripted_model.SPEC.provider_type, scripted_model.SPEC)
    scripted_model.RECEIVED.clear()
    scripted_model.STREAMED.clear()
    scripted_model.COMPLETED.clear()
    return scripted_model.RECEIVED


# A reply whose second sentence a pii shield flags (the guardrail tests).
LEAKY = "Sure. You can write to ana@example.com about it. This third sentence must never be sent."

# The scripted model's tool calls in the responses app: last user text -> the calls it answers with.
RESPONSES_CALLS = {
    "Weather in Paris?": [{"name": "get_weather", "arguments": '{"city": "Paris"}'}],
    "What does a comet grow near the sun?": [
        {"name": "file_search", "arguments": '{"query": "comet tail near the sun"}'}
    ],
    "Search forever": [{"name": "file_search", "arguments": '{"query": "anything"}'}],
}


@pytest.fixture
async def responses_app(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> TestClient[Any, Any]:
    """The edge distribution plus the scripted model "chat" (the responses and conversations tests)."""
    llama_cpp = edge_providers_with()["inference"]
    config = edge_with(
        providers=edge_providers_with(
            inference=[
                *llama_cpp,
                scripted_entry(
                    replies={"capital?": "Paris.", "leak it": LEAKY},
                    calls=RESPONSES_CALLS,
                    persistent=["Search forever"],
                    slow={"Take your time": 30},
                ),
            ]
        ),
        registered_resources={"models": [CHAT], "shields": edge_shields()},
    )
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


@pytest.fixture
async def vector_store_app(
    aiohttp_client: Callable[..., Any], stored_embedding: str, vector_provider: dict[str, Any]
) -> TestClient[Any, Any]:
    """The edge distribution on each vector_io provider in turn (the vector store contract tests)."""
    config = edge_with_vector_provider(vector_provider)
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


# The headers of every HTTP request the MCP server of `mcp_url` received (what a caller sent it).
MCP_REQUEST_HEADERS: list[dict[str, str]] = []


@pytest.fixture(scope="module", params=["streamable-http", "sse"])
def mcp_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A real MCP server on loopback, over either transport (a URL ending in /sse selects SSE)."""
    import uvicorn
    from mcp.server.fastmcp import FastMCP

    port = free_port()
    tools = FastMCP("calculator", host="127.0.0.1", port=port)

    @tools.tool()
    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        return a + b

    @tools.tool()
    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()

    @tools.tool()
    def whoami(ctx: Context) -> str:  # type: ignore[type-arg]
        """The credentials the caller sent."""
        headers = ctx.request_context.request.headers  # type: ignore[union-attr]
        return f"{headers.get('authorization')}|{headers.get('x-team')}"

    sse = request.param == "sse"
    app = tools.sse_app() if sse else tools.streamable_http_app()

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            MCP_REQUEST_HEADERS.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await app(scope, receive, send)

    server = uvicorn.Server(uvicorn.Config(recording, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the MCP server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/{'sse' if sse else 'mcp'}"
    server.should_exit = True
    thread.join(10)


def access_config(**auth: Any) -> Any:
    """The edge distribution, the scripted model "chat", and `server.auth` holding only `auth`'s
    policies (no provider_config: the test header says who asks, tests/support/users.py)."""
    llama_cpp = edge_providers_with()["inference"]
    return edge_with(
        providers=edge_providers_with(inference=[*llama_cpp, scripted_entry(replies={"capital?": "Paris."})]),
        registered_resources={
            "models": [CHAT],
            "shields": edge_shields(),
            "tool_groups": [{"toolgroup_id": "builtin::rag", "provider_id": "file-search"}],
        },
        server={"auth": auth} if auth else {},
    )


@pytest.fixture
async def access_app(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], stored_embedding: str
) -> TestClient[Any, Any]:
    """The access tests' app with the default policy: several users, told apart by a test header."""
    return await aiohttp_client(with_test_users(create_app(access_config())))  # type: ignore[no-any-return]


@pytest.fixture
def alice(access_app: TestClient[Any, Any]) -> As:
    """The access tests' first user (tests/support/users.py)."""
    return As(access_app, "alice")


@pytest.fixture
def bob(access_app: TestClient[Any, Any]) -> As:
    """The access tests' second user, who shares no attribute with alice."""
    return As(access_app, "bob")
