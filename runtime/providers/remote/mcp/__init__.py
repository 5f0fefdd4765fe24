from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec


class McpRuntimeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


def create(config: McpRuntimeConfig, context: ProviderContext) -> Provider:
    from pocketstack.providers.remote.mcp.provider import McpRuntime

    return McpRuntime(context.outbound)


SPEC = ProviderSpec(
    api="tool_runtime",
    provider_type="remote::model-context-protocol",
    description="Tool groups that are MCP servers (registered by mcp_endpoint; streamable HTTP or SSE).",
    config_model=McpRuntimeConfig,
    create=create,
    requires=("mcp",),
    extra="mcp",
)
