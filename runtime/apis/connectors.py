"""Connectors: the MCP servers of the run config's `connectors` (Llama Stack's StackConfig key), and their tools.

Listing answers from the config alone; getting one connector asks its server for its name, version and
instructions, and its tools are the server's listing now (Llama Stack's ConnectorServiceImpl). The URLs are
the operator's, so, like a tool group written in the run config, they are not checked by the outbound guard
(security/outbound.py guards the URLs users supply). A request's `authorization` is sent as a Bearer token
and never kept. A server that cannot be reached is a 502 naming it; without the `mcp` package, a 503.
The `mcp` tool of Responses names a connector by `connector_id` (`url_of`) instead of a `server_url`.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from pydantic import MISSING

from pocketstack._generated import models, protocols
from pocketstack.config import ConnectorInput
from pocketstack.core.stack import Stack
from pocketstack.errors import NotFoundError, ResourceNotFoundError, ServiceUnavailableError, UpstreamError
from pocketstack.providers.remote.mcp import client
from pocketstack.providers.remote.mcp.client import McpEndpoint
from pocketstack.wire.fields import given


def _shown(connector: ConnectorInput) -> models.Connector:
    return models.Connector(
        connector_type=connector.connector_type,
        connector_id=connector.connector_id,
        url=connector.url,
        server_label=connector.server_label if connector.server_label is not None else MISSING,
    )


class ConnectorsApi(protocols.Connectors):
    def __init__(self, stack: Stack) -> None:
        self.connectors = {c.connector_id: c for c in stack.config.connectors}

    def find(self, connector_id: str) -> ConnectorInput:
        connector = self.connectors.get(connector_id)
        if connector is None:
            raise ResourceNotFoundError("connector", connector_id)
        return connector

    def url_of(self, connector_id: str) -> str:
        """The connector's URL (an unknown connector: 404, as in Llama Stack's resolve_mcp_connector_id)."""
        return self.find(connector_id).url

    def _endpoint(self, connector: ConnectorInput, authorization: str | None) -> McpEndpoint:
        if importlib.util.find_spec("mcp") is None:
            raise ServiceUnavailableError(
                "Connectors need the `mcp` package: pip install 'pocketstack[mcp]'.", code="mcp_not_installed"
            )
        headers = {"Authorization": f"Bearer {authorization}"} if authorization else {}
        return McpEndpoint(connector.connector_id, connector.url, headers, guard=None)  # the operator's URL

    async def _tools(self, connector_id: str, authorization: str | None) -> list[models.ToolDef]:
        connector = self.find(connector_id)
        try:
            tools = await client.list_tools(self._endpoint(connector, authorization))
        except client.McpUnavailable as exc:
            raise UpstreamError(str(exc), code="mcp_unreachable") from exc
        return [
            models.ToolDef(
                name=tool["name"],
                description=tool.get("description") or MISSING,
                input_schema=tool.get("input_schema") or MISSING,
                metadata={"endpoint": connector.url},
            )
            for tool in tools
        ]

    async def list_connectors(self) -> models.ListConnectorsResponse:
        return models.ListConnectorsResponse(data=[_shown(c) for c in self.connectors.values()])

    async def get_connector(self, request: models.GetConnectorRequest) -> models.Connector:
        connector = self.find(request.connector_id)
        try:
            about = await client.server_info(self._endpoint(connector, given(request.authorization)))
        except client.McpUnavailable as exc:
            raise UpstreamError(str(exc), code="mcp_unreachable") from exc
        shown: dict[str, Any] = {"server_name": about.name, "server_version": about.version}
        if about.instructions:
            shown["server_description"] = about.instructions
        return _shown(connector).model_copy(update=shown)

    async def list_connector_tools(self, request: models.ListConnectorToolsRequest) -> models.ListToolDefsResponse:
        return models.ListToolDefsResponse(data=await self._tools(request.connector_id, given(request.authorization)))

    async def get_connector_tool(self, request: models.GetConnectorToolRequest) -> models.ToolDef:
        for tool in await self._tools(request.connector_id, given(request.authorization)):
            if tool.name == request.tool_name:
                return tool
        raise NotFoundError(
            f"Connector Tool '{request.connector_id}.{request.tool_name}' not found. Use "
            f"'client.connectors.list_tools(\"{request.connector_id}\")' to list available Connector Tools.",
            code="connector_tool_not_found",
        )
