"""Tool groups served by MCP servers: listed and called over the `mcp` package's clients."""

from __future__ import annotations

import json
from typing import Any

from pocketstack.errors import ServiceUnavailableError
from pocketstack.mcp_tools import McpServer, call_tool, list_tools
from pocketstack.providers.base import Stateless
from pocketstack.providers.tool_runtime import ToolGroupSpec, ToolResult


def server(group: ToolGroupSpec, authorization: str | None) -> McpServer:
    headers = {str(k): str(v) for k, v in (group.args.get("headers") or {}).items()}
    if authorization:
        headers["Authorization"] = f"Bearer {authorization}"
    return McpServer(group.toolgroup_id, group.mcp_endpoint or "", headers, None, "never")


class McpRuntime(Stateless):
    async def list_tools(self, group: ToolGroupSpec, authorization: str | None = None) -> list[dict[str, Any]]:
        listing = await list_tools(server(group, authorization))
        if listing.get("error"):
            raise ServiceUnavailableError(listing["error"], code="mcp_unreachable")
        return [{"name": t["name"], "description": t.get("description") or "", "input_schema": t.get("input_schema")}
                for t in listing["tools"]]  # fmt: skip

    async def invoke(
        self, group: ToolGroupSpec, tool_name: str, kwargs: dict[str, Any], authorization: str | None = None
    ) -> ToolResult:
        output, error = await call_tool(server(group, authorization), tool_name, json.dumps(kwargs))
        if error is not None:
            return ToolResult(error_message=error, error_code=502)
        return ToolResult(content=output)
