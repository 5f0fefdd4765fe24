"""The tool runtime contract: a provider lists a tool group's tools and runs them.

A tool group is a registered resource (`builtin::rag`, `builtin::websearch`, `mcp::<name>`...) owned
by one tool runtime provider; its `args` (vector store ids, result counts...) and `mcp_endpoint`
are the provider's to read. A tool that fails answers with `error_message` and `error_code` (the
caller decides what to do: a model reads the message), never by raising, so an unreachable search
engine or MCP server is an answer, not a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pocketstack.providers.base import Provider

# Why a tool group's `args.headers` is refused unless the operator wrote it in the run config.
HEADERS_REFUSED = (
    "MCP headers are credentials, and the server never stores them: send them with each request, in "
    'X-LlamaStack-Provider-Data as mcp_headers ({"<mcp_endpoint uri>": {"Header": "value"}}), or as the '
    "call's `authorization`. Only a tool group written in the run config may carry args.headers."
)


@dataclass(frozen=True)
class ToolGroupSpec:
    toolgroup_id: str
    mcp_endpoint: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    # Written by the operator in the run config (its URLs trusted as written, its args may hold
    # credentials); False for a group registered through the API, or a URL a request names.
    trusted: bool = False


@dataclass(frozen=True)
class ToolResult:
    content: str | None = None
    error_message: str | None = None
    error_code: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """What a model reads of the result."""
        return self.content or "" if self.error_message is None else f"Error: {self.error_message}"


def tool_def(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": description, "input_schema": parameters}


def chat_function(name: str, tool: dict[str, Any]) -> dict[str, Any]:
    """A tool definition (name, description, input_schema) as a chat request's function tool."""
    return {"type": "function", "function": {"name": name, "description": tool.get("description") or "",
                                             "parameters": tool.get("input_schema") or {"type": "object"}}}  # fmt: skip


QUERY_ONLY = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What to look for, in a few words."}},
    "required": ["query"],
}


class ToolRuntimeProvider(Provider, Protocol):
    def check_group(self, group: ToolGroupSpec) -> None:
        """BadRequestError for a group whose args the provider could never use, when it is registered
        (not a failure at every call)."""
        ...

    async def list_tools(self, group: ToolGroupSpec, authorization: str | None = None) -> list[dict[str, Any]]:
        """The group's tools as ToolDef fields (name, description, input_schema)."""
        ...

    async def invoke(
        self, group: ToolGroupSpec, tool_name: str, kwargs: dict[str, Any], authorization: str | None = None
    ) -> ToolResult: ...
