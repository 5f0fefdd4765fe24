"""The `mcp` tool of Responses: remote MCP servers whose tools the model may call through the server.

Each `mcp` tool names a server (`server_url`, over streamable HTTP, or SSE when the URL ends in
`/sse`; a user's URL, so the outbound guard checks it; or Llama Stack's `connector_id`, a connector of
the run config, whose URL is the operator's and is not checked), its `headers` / `authorization` (used for
the calls, never stored or shown: `shown_tool`), `allowed_tools`, and `require_approval` (`always`,
the default as in OpenAI; `never`; or `{"never": {"tool_names": [...]}}`). At the start of a response
every server's tools are listed (an `mcp_list_tools` item); the model sees them as functions.
A call that needs approval ends the response with an `mcp_approval_request`; the next request
answers it with an `mcp_approval_response` item. Every server round trip has a deadline, so an
unreachable server is an error item, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pocketstack._generated import models
from pocketstack.apis.responses.items import mcp_call_text, new_id
from pocketstack.apis.responses.tools.base import ToolOutcome, failed_or_completed
from pocketstack.errors import BadRequestError
from pocketstack.providers.remote.mcp import client
from pocketstack.providers.remote.mcp.client import McpEndpoint
from pocketstack.providers.tool_runtime import chat_function
from pocketstack.security.outbound import OutboundGuard
from pocketstack.telemetry import tools as tool_telemetry
from pocketstack.wire.fields import given


@dataclass(frozen=True)
class McpServer(McpEndpoint):
    allowed: frozenset[str] | None  # None: every tool the server lists
    approval: str | frozenset[str]  # "always", "never", or the tool names that need none

    def needs_approval(self, name: str) -> bool:
        if isinstance(self.approval, frozenset):
            return name not in self.approval
        return self.approval == "always"


@dataclass(frozen=True)
class Approval:
    """The user's answer to an `mcp_approval_request` item (kept with the call's `call_id`)."""

    request: dict[str, Any]
    server: McpServer
    approve: bool
    reason: str | None


@dataclass
class McpTools:
    """The mcp tools of one response as the turn runs them (tools/base.py).

    Before the first model call `prepare` lists every server's tools (or takes the listing the
    conversation already holds, as OpenAI does) and runs, or declines, the calls the user answered;
    then the model sees the listed tools as functions. A call that needs approval halts the turn.
    """

    servers: list[McpServer] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)  # answers to the previous turn's requests
    listed: dict[str, dict[str, Any]] = field(default_factory=dict)  # listings held, by server label
    by_name: dict[str, tuple[McpServer, dict[str, Any]]] = field(default_factory=dict)  # function name ->
    kind: ClassVar[str] = "mcp_call"
    prefix: ClassVar[str] = "mcp"
    searching: ClassVar[bool] = False

    async def prepare(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The items made before the first model call, and the tool messages the model reads of them."""
        items: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        for server in self.servers:
            listing = self.listed.get(server.label)
            if listing is None:
                listing = await list_tools(server)
                items.append(listing)
            for tool in listing["tools"]:
                if server.allowed is None or tool["name"] in server.allowed:
                    self.by_name.setdefault(tool["name"], (server, tool))
        for approval in self.approvals:
            request = approval.request
            item: dict[str, Any] = {"type": "mcp_call", "id": new_id("mcp"), "server_label": request["server_label"],
                                    "name": request["name"], "arguments": request["arguments"], "output": None,
                                    "error": None, "approval_request_id": request["id"]}  # fmt: skip
            with tool_telemetry.executing(
                request["name"], tool_telemetry.EXTENSION, call_id=request["call_id"], arguments=request["arguments"]
            ) as span:
                if approval.approve:
                    item["output"], item["error"] = await call_tool(
                        approval.server, request["name"], request["arguments"]
                    )
                    span.answered(item["output"], error=item["error"])
                else:
                    item["error"] = "The user did not approve this call" + (
                        f": {approval.reason}" if approval.reason else "."
                    )
                    span.answered(outcome=tool_telemetry.DECLINED)
            messages.append({"role": "tool", "tool_call_id": request["call_id"], "content": mcp_call_text(item)})
            items.append(item)
        return items, messages

    def functions(self) -> list[dict[str, Any]]:
        return [chat_function(name, tool) for name, (_, tool) in self.by_name.items()]

    def owns(self, name: str) -> bool:
        return name in self.by_name

    def tool_type(self, name: str) -> str:
        return tool_telemetry.EXTENSION  # a remote server's

    async def run(self, call: models.ToolCall, item_id: str) -> ToolOutcome:
        name = call.function.name
        server, _ = self.by_name[name]
        base = {"id": item_id, "server_label": server.label, "name": name, "arguments": call.function.arguments}
        if server.needs_approval(name):
            return ToolOutcome({"type": "mcp_approval_request", **base, "call_id": call.id}, None)
        output, error = await call_tool(server, name, call.function.arguments)
        item = {"type": "mcp_call", **base, "output": output, "error": error}
        return ToolOutcome(item, mcp_call_text(item))

    def closing_event(self, item: dict[str, Any]) -> str | None:
        return None if item["type"] == "mcp_approval_request" else failed_or_completed(item)


def shown_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An mcp tool as a response shows (and stores) it: Llama Stack's OpenAIResponseToolMCP, its label and
    allowed tools; never its `authorization` or `headers` (credentials), nor the URL (it may hold one)."""
    if tool.get("type") != "mcp":
        return tool
    return {"type": "mcp", "server_label": tool.get("server_label"), "allowed_tools": tool.get("allowed_tools")}


def _names(value: Any, what: str) -> frozenset[str]:
    names = value.get("tool_names") if isinstance(value, dict) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequestError(f"mcp {what} is a list of tool names (or {{'tool_names': [...]}}).", param="tools")
    return frozenset(names)


async def mcp_servers(
    request: models.CreateResponseRequest, guard: OutboundGuard, connector_url: Callable[[str], str]
) -> list[McpServer]:
    """The request's mcp tools, each `server_url` checked by the outbound guard (a 400 if refused); a
    `connector_id` without one is the connector's URL (`connector_url`: an unknown connector is a 404)."""
    servers = []
    for tool in given(request.tools) or []:
        if not isinstance(tool, models.ResponseOtherTool) or tool.type != "mcp":
            continue
        spec = tool.model_extra or {}
        label, url, connector = spec.get("server_label"), spec.get("server_url"), spec.get("connector_id")
        if not isinstance(label, str) or not label:
            raise BadRequestError("An mcp tool needs a `server_label`.", param="tools")
        trusted = url is None and isinstance(connector, str) and bool(connector)
        if trusted:
            url = connector_url(str(connector))  # the operator's URL, from the run config
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadRequestError(
                f"mcp '{label}' needs a `server_url` (http or https) or a `connector_id`.", param="tools"
            )
        headers = dict(spec.get("headers") or {})
        if spec.get("authorization"):
            headers["Authorization"] = f"Bearer {spec['authorization']}"
        allowed = _names(spec["allowed_tools"], "allowed_tools") if spec.get("allowed_tools") is not None else None
        approval: Any = spec.get("require_approval", "always")
        if isinstance(approval, dict):
            approval = _names(approval.get("never", {"tool_names": []}), "require_approval.never")
        elif approval not in ("always", "never"):
            raise BadRequestError(
                "mcp require_approval is always, never or {'never': {'tool_names': [...]}}.", param="tools"
            )
        if not trusted:
            await guard.check(url, param="tools")  # before anything is sent
        servers.append(McpServer(label, url, headers, allowed, approval, guard=None if trusted else guard))
    if len({s.label for s in servers}) != len(servers):
        raise BadRequestError("Two mcp tools have the same server_label.", param="tools")
    if servers:
        try:
            import mcp  # noqa: F401  (the extra is optional)
        except ImportError as exc:
            raise BadRequestError(
                "The mcp tool needs the `mcp` package: pip install 'pocketstack[mcp]'.", code="mcp_not_installed"
            ) from exc
    return servers


async def list_tools(server: McpServer) -> dict[str, Any]:
    """The `mcp_list_tools` item for one server (with `error` when it could not be listed)."""
    item: dict[str, Any] = {"type": "mcp_list_tools", "id": new_id("mcpl"), "server_label": server.label, "tools": []}
    try:
        tools = await client.list_tools(server)
    except client.McpUnavailable as exc:
        item["error"] = str(exc)
        return item
    item["tools"] = [tool for tool in tools if server.allowed is None or tool["name"] in server.allowed]
    return item


call_tool = client.call_tool
