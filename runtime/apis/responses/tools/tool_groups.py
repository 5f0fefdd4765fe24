"""Tool-group tools (Llama Stack's tool runtime) as the turn runs them: an agent's `toolgroups`.

Each tool of the agent's groups is a function the model sees (by `group` or `group/tool`, with
the agent's args merged into the group's); a call runs through the tool runtime provider and is
told as a `tool_runtime_call` item, which the agent's steps read back as a tool execution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pocketstack._generated import models
from pocketstack.apis.responses.tools.base import ToolOutcome, failed_or_completed, json_object
from pocketstack.core.registry import Resource
from pocketstack.providers.tool_runtime import ToolResult, chat_function

if TYPE_CHECKING:
    from pocketstack.apis.tools import ToolsApi


@dataclass
class ToolGroupTools:
    tools_api: ToolsApi
    by_name: dict[str, tuple[Resource, dict[str, Any]]]  # function name -> (its group, the tool)
    kind: ClassVar[str] = "tool_runtime_call"
    prefix: ClassVar[str] = "tr"
    searching: ClassVar[bool] = False

    def functions(self) -> list[dict[str, Any]]:
        return [chat_function(name, tool) for name, (_, tool) in self.by_name.items()]

    def owns(self, name: str) -> bool:
        return name in self.by_name

    def tool_type(self, name: str) -> str:
        return self.tools_api.tool_type(self.by_name[name][0])

    async def run(self, call: models.ToolCall, item_id: str) -> ToolOutcome:
        name = call.function.name
        group, _ = self.by_name[name]
        kwargs = json_object(call.function.arguments)
        if kwargs is not None:
            result = await self.tools_api.run(group, name, kwargs)
        else:
            result = ToolResult(error_message="The arguments are not a JSON object.", error_code=400)
        item = {"type": self.kind, "id": item_id, "call_id": call.id, "name": name,
                "toolgroup_id": group.identifier, "arguments": call.function.arguments, "output": result.content,
                "error": result.error_message, "metadata": result.metadata}  # fmt: skip
        hits = result.metadata.get("results")  # file_search's and web search's hits
        return ToolOutcome(item, result.text, results=len(hits) if isinstance(hits, list) else None)

    def closing_event(self, item: dict[str, Any]) -> str | None:
        return failed_or_completed(item)
