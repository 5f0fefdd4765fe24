"""Tool groups, their tools, and running them (Llama Stack's ToolGroups and ToolRuntime APIs).

A tool group is a registry resource owned by a tool runtime provider; its tools are whatever
that provider lists for it (MCP servers are asked each time, so a tool added to a server shows
at once). A tool's name is unique across groups as far as lookup goes: the first group (in
registration order) that lists it runs it. Responses' `web_search` and agents' tool groups go
through the same providers (`run`).
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from pocketstack._generated import models, protocols
from pocketstack.config import ToolGroupInput
from pocketstack.core.registry import Resource, Source
from pocketstack.core.resources import TOOL_GROUP, skipped_provider
from pocketstack.core.stack import ProviderInstance, Stack
from pocketstack.errors import BadRequestError, PocketStackError, ResourceNotFoundError
from pocketstack.providers.tool_runtime import ToolGroupSpec, ToolResult, ToolRuntimeProvider
from pocketstack.telemetry import tools as tool_telemetry
from pocketstack.wire.fields import given

log = logging.getLogger(__name__)
MCP_PROVIDER = "remote::model-context-protocol"
DATASTORE_PROVIDERS = frozenset({"inline::file-search"})  # their tools search the user's own data


def _spec(resource: Resource) -> ToolGroupSpec:
    trusted = resource.source == "config"  # the operator's URL and args, as written; the API's are guarded
    return ToolGroupSpec(
        resource.identifier, resource.body.get("mcp_endpoint"), resource.body.get("args") or {}, trusted
    )


def shown_args(args: dict[str, Any] | None) -> dict[str, Any] | None:
    """A group's args as the API shows them: no `headers` (credentials, even the operator's)."""
    return {k: v for k, v in args.items() if k != "headers"} if args else args


def _group(resource: Resource) -> models.ToolGroup:
    body: dict[str, Any] = {"identifier": resource.identifier, "provider_id": resource.provider_id,
                            "provider_resource_id": resource.provider_resource_id}  # fmt: skip
    if resource.body.get("mcp_endpoint"):
        body["mcp_endpoint"] = {"uri": resource.body["mcp_endpoint"]}
    if resource.body.get("args"):
        body["args"] = shown_args(resource.body["args"])
    return models.ToolGroup.model_validate(body)


def _parameters(tool: dict[str, Any]) -> list[dict[str, Any]]:
    """Llama Stack 0.2's parameter list, read from the tool's JSON Schema."""
    schema = tool.get("input_schema") or {}
    required = set(schema.get("required") or [])
    return [
        {"name": name, "parameter_type": str(spec.get("type", "string")), "description": spec.get("description", ""),
         "required": name in required} | ({"default": spec["default"]} if "default" in spec else {})
        for name, spec in (schema.get("properties") or {}).items()
        if isinstance(spec, dict)
    ]  # fmt: skip


class ToolsApi(protocols.ToolGroups, protocols.ToolRuntime):
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.table = stack.table(TOOL_GROUP)

    def provider(self, provider_id: str) -> ToolRuntimeProvider:
        return cast(ToolRuntimeProvider, self._instance(provider_id).impl)

    def _instance(self, provider_id: str) -> ProviderInstance:
        return self.stack.provider_for("tool_runtime", provider_id)

    def provider_of_type(self, provider_type: str) -> tuple[str, ToolRuntimeProvider] | None:
        for instance in self.stack.providers_of("tool_runtime"):
            if instance.config.provider_type == provider_type:
                return instance.config.provider_id, cast(ToolRuntimeProvider, instance.impl)
        return None

    def _build(self, group: ToolGroupInput, source: Source) -> Resource:
        instance = self._instance(group.provider_id)  # unknown provider: the error names the known ones
        endpoint = (group.mcp_endpoint or {}).get("uri")
        if instance.config.provider_type == MCP_PROVIDER and not endpoint:
            raise BadRequestError("An MCP tool group needs mcp_endpoint {uri}.", param="mcp_endpoint")
        # args the provider could never use are refused here, not at every call
        cast(ToolRuntimeProvider, instance.impl).check_group(
            ToolGroupSpec(group.toolgroup_id, endpoint, group.args or {}, trusted=source == "config")
        )
        body: dict[str, Any] = {"mcp_endpoint": endpoint, "args": group.args}
        return Resource(TOOL_GROUP.type, group.toolgroup_id, group.provider_id, group.toolgroup_id, source, 0, body)

    async def sync_from_config(self) -> None:
        async def build(group: ToolGroupInput) -> Resource:
            return self._build(group, "config")

        await self.table.sync_config(
            self.stack.config.registered_resources.tool_groups,
            build,
            name=lambda group: group.toolgroup_id,
            left_out=lambda group: skipped_provider(self.stack.skipped, group.provider_id),
        )

    async def lookup(self, toolgroup_id: str) -> Resource:
        return await self.table.get(toolgroup_id)

    async def tools_of(self, resource: Resource, authorization: str | None = None) -> list[models.ToolDef]:
        listed = await self.provider(resource.provider_id).list_tools(_spec(resource), authorization)
        return [
            models.ToolDef.model_validate({**tool, "toolgroup_id": resource.identifier, "identifier": tool["name"],
                                           "provider_id": resource.provider_id, "parameters": _parameters(tool)})
            for tool in listed
        ]  # fmt: skip

    async def find_tool(self, tool_name: str) -> tuple[Resource, models.ToolDef]:
        for resource in await self.table.all():
            try:
                tools = await self.tools_of(resource)
            except PocketStackError as exc:  # one unreachable server does not hide the other groups' tools
                log.warning("tool group %s not listed: %s", resource.identifier, exc.message)
                continue
            for tool in tools:
                if tool.name == tool_name:
                    return resource, tool
        raise ResourceNotFoundError("tool", tool_name)

    def tool_type(self, resource: Resource) -> str:
        """The `gen_ai.tool.type` of a group's tools: datastore (knowledge_search), else extension (MCP, web)."""
        provider_type = self._instance(resource.provider_id).config.provider_type
        return tool_telemetry.DATASTORE if provider_type in DATASTORE_PROVIDERS else tool_telemetry.EXTENSION

    async def run(
        self, resource: Resource, tool_name: str, kwargs: dict[str, Any], authorization: str | None = None
    ) -> ToolResult:
        return await self.provider(resource.provider_id).invoke(_spec(resource), tool_name, kwargs, authorization)

    # -- ToolGroups --------------------------------------------------------------------------

    async def list_tool_groups(self) -> models.ListToolGroupsResponse:
        return models.ListToolGroupsResponse(data=[_group(r) for r in await self.table.all()])

    async def register_tool_group(self, request: models.RegisterToolGroupRequest) -> None:
        endpoint = given(request.mcp_endpoint)
        group = ToolGroupInput(
            toolgroup_id=request.toolgroup_id,
            provider_id=request.provider_id,
            mcp_endpoint={"uri": endpoint.uri} if endpoint is not None else None,
            args=given(request.args),
        )
        resource = self._build(group, "api")
        if endpoint is not None and self._instance(group.provider_id).config.provider_type == MCP_PROVIDER:
            await self.stack.outbound.check(endpoint.uri, param="mcp_endpoint")  # a user's URL: refused here
        await self.table.add(resource)

    async def get_tool_group(self, request: models.GetToolGroupRequest) -> models.ToolGroup:
        return _group(await self.lookup(request.toolgroup_id))

    async def unregister_toolgroup(self, request: models.UnregisterToolgroupRequest) -> None:
        await self.table.remove(await self.lookup(request.toolgroup_id))

    async def list_tools(self, request: models.ListToolsRequest) -> models.ListToolDefsResponse:
        wanted = given(request.toolgroup_id)
        if wanted is not None:
            return models.ListToolDefsResponse(data=await self.tools_of(await self.lookup(wanted)))
        data: list[models.ToolDef] = []
        for resource in await self.table.all():
            data += await self.tools_of(resource)
        return models.ListToolDefsResponse(data=data)

    async def get_tool(self, request: models.GetToolRequest) -> models.ToolDef:
        return (await self.find_tool(request.tool_name))[1]

    # -- ToolRuntime -------------------------------------------------------------------------

    async def invoke_tool(self, request: models.InvokeToolRequest) -> models.ToolInvocationResult:
        resource, _ = await self.find_tool(request.tool_name)
        name = request.tool_name
        with tool_telemetry.executing(name, self.tool_type(resource)) as span:
            if span.capturing:  # the arguments written out only for a span that keeps them
                span.arguments(json.dumps(request.kwargs_, default=str))
            result = await self.run(resource, name, request.kwargs_, given(request.authorization))
            hits = result.metadata.get("results")
            if isinstance(hits, list):
                span.results(len(hits))
            span.answered(result.content, error=result.error_message)
        body = {"content": result.content, "error_message": result.error_message, "error_code": result.error_code,
                "metadata": result.metadata}  # fmt: skip
        return models.ToolInvocationResult.model_validate({k: v for k, v in body.items() if v is not None})

    async def list_runtime_tools(self, request: models.ListRuntimeToolsRequest) -> models.ListToolDefsResponse:
        endpoint = given(request.mcp_endpoint)
        if endpoint is not None:
            found = self.provider_of_type(MCP_PROVIDER)
            if found is None:
                raise BadRequestError(
                    f"mcp_endpoint needs a {MCP_PROVIDER} provider in this distribution.", param="mcp_endpoint"
                )
            provider_id, _ = found  # (a user's URL: the provider has the outbound guard check it)
            ad_hoc = Resource(TOOL_GROUP.type, endpoint, provider_id, endpoint, "api", 0, {"mcp_endpoint": endpoint})
            return models.ListToolDefsResponse(data=await self.tools_of(ad_hoc))
        wanted = given(request.tool_group_id)
        return await self.list_tools(models.ListToolsRequest.model_validate({"toolgroup_id": wanted} if wanted else {}))


__all__ = ["ToolsApi"]
