"""Tool groups served by MCP servers: listed and called over the `mcp` package's clients.

Credentials travel per request and are never stored: the `authorization` of a call, and Llama
Stack's `mcp_headers` in X-LlamaStack-Provider-Data (`{"<mcp_endpoint uri>": {header: value}}`).
Only a group the operator wrote in the run config may hold `args.headers`. A group registered
through the API, or a URL a request names, goes through the outbound guard.
"""

from __future__ import annotations

import json
from typing import Any

from pocketstack.errors import BadRequestError, ServiceUnavailableError
from pocketstack.providers.base import Stateless
from pocketstack.providers.remote.mcp.client import McpEndpoint, McpUnavailable, call_tool, list_tools
from pocketstack.providers.tool_runtime import HEADERS_REFUSED, ToolGroupSpec, ToolResult
from pocketstack.security.outbound import OutboundGuard, OutboundRefused, shown
from pocketstack.web.context import provider_data


def request_headers(url: str) -> dict[str, str]:
    """This request's headers for the MCP server at `url` (provider data `mcp_headers`)."""
    by_url = provider_data.get().get("mcp_headers")
    headers = by_url.get(url) if isinstance(by_url, dict) else None
    if headers is not None and not isinstance(headers, dict):
        raise BadRequestError("mcp_headers maps each MCP endpoint URL to a mapping of headers.",
                              code="invalid_provider_data")  # fmt: skip
    return {str(k): str(v) for k, v in (headers or {}).items()}


class McpRuntime(Stateless):
    def __init__(self, outbound: OutboundGuard) -> None:
        self.outbound = outbound

    async def server(self, group: ToolGroupSpec, authorization: str | None) -> McpEndpoint:
        url = group.mcp_endpoint or ""
        guard = None if group.trusted else self.outbound
        if guard is not None:
            await guard.check(url, param="mcp_endpoint")  # refused before anything is sent: a 400
        headers = {str(k): str(v) for k, v in (group.args.get("headers") or {}).items()} if group.trusted else {}
        headers |= request_headers(url)
        if authorization:
            headers["Authorization"] = f"Bearer {authorization}"
        label = shown(url) if group.toolgroup_id == url else group.toolgroup_id  # (no query or password in errors)
        return McpEndpoint(label, url, headers, guard=guard)

    def check_group(self, group: ToolGroupSpec) -> None:
        headers = group.args.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise BadRequestError(
                f"Tool group '{group.toolgroup_id}': args.headers is a mapping of header names to values.",
                code="invalid_tool_group_args",
                param="args",
            )
        if headers is not None and not group.trusted:
            raise BadRequestError(f"Tool group '{group.toolgroup_id}': {HEADERS_REFUSED}",
                                  code="secret_not_stored", param="args")  # fmt: skip

    async def list_tools(self, group: ToolGroupSpec, authorization: str | None = None) -> list[dict[str, Any]]:
        try:
            tools = await list_tools(await self.server(group, authorization))
        except McpUnavailable as exc:
            raise ServiceUnavailableError(str(exc), code="mcp_unreachable") from exc
        return [{"name": t["name"], "description": t.get("description") or "", "input_schema": t.get("input_schema")}
                for t in tools]  # fmt: skip

    async def invoke(
        self, group: ToolGroupSpec, tool_name: str, kwargs: dict[str, Any], authorization: str | None = None
    ) -> ToolResult:
        try:
            server = await self.server(group, authorization)
        except OutboundRefused as exc:  # (a tool answers its failure: a model reads it)
            return ToolResult(error_message=exc.message, error_code=400)
        output, error = await call_tool(server, tool_name, json.dumps(kwargs))
        if error is not None:
            return ToolResult(error_message=error, error_code=502)
        return ToolResult(content=output)
