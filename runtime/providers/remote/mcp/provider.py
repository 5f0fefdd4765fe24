"""Tool groups served by MCP servers: listed and called over the `mcp` package's clients."""

from __future__ import annotations

import json
from typing import Any

from pocketstack.errors import BadRequestError, ServiceUnavailableError
from pocketstack.providers.base import Stateless
from pocketstack.providers.remote.mcp.client import McpEndpoint, McpUnavailable, call_tool, list_tools
from pocketstack.providers.tool_runtime import ToolGroupSpec, ToolResult


def server(group: ToolGroupSpec, authorization: str | None) -> McpEndpoint:
    headers = {str(k): str(v) for k, v in (group.args.get("headers") or {}).items()}
    if authorization:
        headers["Authorization"] = f"Bearer {authorization}"
    return McpEndpoint(group.toolgroup_id, group.mcp_endpoint or "", headers)


class McpRuntime(Stateless):
    def check_group(self, group: ToolGroupSpec) -> None:
        headers = group.args.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise BadRequestError(
                f"Tool group '{group.toolgroup_id}': args.headers is a mapping of header names to values.",
                code="invalid_tool_group_args",
                param="args",
            )

    async def list_tools(self, group: ToolGroupSpec, authorization: str | None = None) -> list[dict[str, Any]]:
        try:
            tools = await list_tools(server(group, authorization))
        except McpUnavailable as exc:
            raise ServiceUnavailableError(str(exc), code="mcp_unreachable") from exc
        return [{"name": t["name"], "description": t.get("description") or "", "input_schema": t.get("input_schema")}
                for t in tools]  # fmt: skip

    async def invoke(
        self, group: ToolGroupSpec, tool_name: str, kwargs: dict[str, Any], authorization: str | None = None
    ) -> ToolResult:
        output, error = await call_tool(server(group, authorization), tool_name, json.dumps(kwargs))
        if error is not None:
            return ToolResult(error_message=error, error_code=502)
        return ToolResult(content=output)
