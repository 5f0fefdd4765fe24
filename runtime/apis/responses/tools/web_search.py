"""The `web_search` tool of Responses: the model asks for a query, a tool runtime search engine answers.

The search runs through the tool group `builtin::websearch` when one is registered, else the
first web search provider (Tavily, Brave) of the distribution; without either the request is a
400 before the model runs. A search that fails (no key, offline, a slow engine) is a
`web_search_call` item with status `failed`, and the model reads why: the turn goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pocketstack._generated import models
from pocketstack.apis.responses.items import WEB_SEARCH_TYPES, new_id
from pocketstack.apis.responses.tools.base import ToolOutcome
from pocketstack.apis.responses.tools.file_search import query_of
from pocketstack.core.registry import Resource
from pocketstack.errors import BadRequestError
from pocketstack.providers.tool_runtime import QUERY_ONLY
from pocketstack.telemetry.tools import EXTENSION
from pocketstack.wire.fields import given

if TYPE_CHECKING:
    from pocketstack.apis.tools import ToolsApi

NAME = "web_search"
GROUP = "builtin::websearch"
ENGINES = ("remote::tavily-search", "remote::brave-search")
FUNCTION = {
    "type": "function",
    "function": {
        "name": NAME,
        "description": "Search the web for current information. Call it for questions about recent events or "
        "facts you are not sure of.",
        "parameters": QUERY_ONLY,
    },
}


@dataclass(frozen=True)
class WebSearch:
    """web_search as the turn runs it (tools/base.py): through a tool group's search engine."""

    tools: ToolsApi
    group: Resource
    kind: ClassVar[str] = "web_search_call"
    prefix: ClassVar[str] = "ws"
    searching: ClassVar[bool] = True

    def functions(self) -> list[dict[str, Any]]:
        return [FUNCTION]

    def owns(self, name: str) -> bool:
        return name == NAME

    def tool_type(self, name: str) -> str:
        return EXTENSION  # a search engine's service

    async def run(self, call: models.ToolCall, item_id: str) -> ToolOutcome:
        item, text = await search(self, call.function.arguments)
        sources = item["action"].get("sources")
        return ToolOutcome(
            {**item, "id": item_id}, text, results=None if item["status"] == "failed" else len(sources or [])
        )

    def closing_event(self, item: dict[str, Any]) -> str | None:
        return "completed"  # OpenAI has no failed event for searches: the item's status says it


async def web_search_tool(request: models.CreateResponseRequest, tools: ToolsApi) -> WebSearch | None:
    wanted = [t for t in given(request.tools) or [] if t.type in WEB_SEARCH_TYPES]
    if not wanted:
        return None
    registered = await tools.table.find(GROUP)
    if registered is not None:
        return WebSearch(tools, registered)
    for engine in ENGINES:
        found = tools.provider_of_type(engine)
        if found is not None:
            return WebSearch(tools, Resource("tool_group", GROUP, found[0], GROUP, "provider", 0, {}))
    raise BadRequestError(
        f"web_search needs a web search provider in the distribution's tool_runtime ({' or '.join(ENGINES)}).",
        code="web_search_unavailable",
        param="tools",
    )


async def search(web: WebSearch, arguments: str) -> tuple[dict[str, Any], str]:
    """Run one search: the `web_search_call` item, and the text the model reads."""
    query = query_of(arguments)
    result = await web.tools.run(web.group, NAME, {"query": query})
    action: dict[str, Any] = {"type": "search", "query": query}
    item: dict[str, Any] = {"type": "web_search_call", "id": new_id("ws"), "action": action,
                            "status": "failed" if result.error_message else "completed"}  # fmt: skip
    if result.error_message:
        item["error"] = result.error_message
        return item, f"The web search failed: {result.error_message}"
    sources = [{"type": "url", "url": hit["url"]} for hit in result.metadata.get("results", [])]
    if sources:
        action["sources"] = sources
    return item, result.content or ""
