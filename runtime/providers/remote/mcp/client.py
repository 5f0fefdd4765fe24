"""MCP transport: a remote MCP server's tools listed and called over the `mcp` package's clients.

Streamable HTTP, or SSE when the URL ends in `/sse`. Every round trip has a deadline, so an
unreachable server is an error, never a hang. A URL a user supplied goes through the outbound
guard (security/outbound.py): its requests and redirects checked, its addresses pinned, its reads
bounded. Used by the tool runtime provider here and by the
`mcp` tool of Responses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import propagate

from pocketstack.security.outbound import OutboundGuard

TIMEOUT_S = 30.0  # for a server the operator configured; a user's server has server.outbound.timeout_s


@dataclass(frozen=True)
class McpEndpoint:
    label: str  # how errors name the server
    url: str
    headers: dict[str, str]  # credentials among them: used for the calls, never kept
    # The outbound guard a user's URL goes through; None for a URL the operator wrote in the run config.
    guard: OutboundGuard | None = field(kw_only=True)

    @property
    def deadline(self) -> float:
        return self.guard.timeout_s if self.guard is not None else TIMEOUT_S


class McpUnavailable(Exception):
    """The server could not be listed; the message says why, for the caller's error item."""


def _client_factory(server: McpEndpoint) -> Any:
    """mcp's httpx client factory: guarded for a user's URL (every request and redirect checked, the
    checked addresses pinned, reads bounded), as mcp makes it for the operator's."""
    from pocketstack.security.outbound_httpx import guarded_client, trusted_client

    guard = server.guard
    if guard is None:
        return trusted_client

    def factory(headers: dict[str, Any] | None = None, timeout: Any = None, auth: Any = None) -> Any:
        return guarded_client(guard, headers=headers, timeout=timeout, auth=auth)

    return factory


@asynccontextmanager
async def _session(server: McpEndpoint) -> AsyncIterator[tuple[Any, Any]]:
    """An initialized mcp ClientSession, and what the server said when it was initialized."""
    from mcp import ClientSession

    factory = _client_factory(server)
    # The current trace (the tool call's span) goes with every request of the session, as `traceparent`,
    # so an instrumented MCP server continues it. A copy: the server's headers are shared, and per call.
    headers = dict(server.headers)
    propagate.inject(headers)
    if server.url.rstrip("/").endswith("/sse"):
        from mcp.client.sse import sse_client

        opened = sse_client(server.url, headers=headers, timeout=server.deadline, httpx_client_factory=factory)
        async with opened as (reader, writer), ClientSession(reader, writer) as session:
            initialized = await session.initialize()
            yield session, initialized
        return
    import httpx
    from mcp.client import streamable_http

    timeout = httpx.Timeout(server.deadline, read=300.0)
    async with factory(headers=headers, timeout=timeout) as client:
        modern = getattr(streamable_http, "streamable_http_client", None)
        if modern is not None:  # mcp >= 1.24 takes the HTTP client; before, its settings
            transport = modern(server.url, http_client=client)
        else:
            transport = streamable_http.streamablehttp_client(
                server.url, headers=headers, timeout=server.deadline, httpx_client_factory=factory
            )
        async with transport as streams, ClientSession(streams[0], streams[1]) as session:
            initialized = await session.initialize()
            yield session, initialized


def _failure(exc: BaseException, deadline: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {deadline:.0f} s"
    causes = getattr(exc, "exceptions", None)  # anyio wraps transport errors in exception groups
    if causes:
        return _failure(causes[0], deadline)
    return str(exc) or type(exc).__name__


async def list_tools(server: McpEndpoint) -> list[dict[str, Any]]:
    """The server's tools (name, description, input_schema, annotations); McpUnavailable if it cannot say."""
    try:
        async with asyncio.timeout(server.deadline), _session(server) as (session, _):
            listed = await session.list_tools()
    except Exception as exc:  # an unreachable or broken server is the caller's error item, not a 500
        raise McpUnavailable(f"Listing the tools of '{server.label}' failed: {_failure(exc, server.deadline)}") from exc
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.inputSchema,
         "annotations": tool.annotations.model_dump(exclude_none=True) if tool.annotations else None}
        for tool in listed.tools
    ]  # fmt: skip


@dataclass(frozen=True)
class ServerInfo:
    name: str
    version: str
    instructions: str | None


async def server_info(server: McpEndpoint) -> ServerInfo:
    """What the server says of itself when a session starts; McpUnavailable if it cannot be reached."""
    try:
        async with asyncio.timeout(server.deadline), _session(server) as (_, initialized):
            about = initialized.serverInfo
    except Exception as exc:
        raise McpUnavailable(f"Reaching '{server.label}' failed: {_failure(exc, server.deadline)}") from exc
    return ServerInfo(about.name, about.version, initialized.instructions)


async def call_tool(server: McpEndpoint, name: str, arguments: str) -> tuple[str | None, str | None]:
    """(output, error) of one tool call; the output is the text content the tool returned."""
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return None, f"The arguments are not JSON: {arguments[:200]}"
    try:
        async with asyncio.timeout(server.deadline), _session(server) as (session, _):
            result = await session.call_tool(name, parsed if isinstance(parsed, dict) else {})
    except Exception as exc:
        return None, f"Calling '{name}' on '{server.label}' failed: {_failure(exc, server.deadline)}"
    text = "\n".join(getattr(part, "text", "") for part in result.content if getattr(part, "type", "") == "text")
    if result.isError:
        return None, text or f"'{name}' reported an error"
    if not text and result.structuredContent is not None:
        text = json.dumps(result.structuredContent)
    return text, None
