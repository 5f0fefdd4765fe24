"""web_search through a search engine's HTTP API (Tavily, Brave): a query in, titled snippets out.

No key, no network or a slow engine is a failed result the model can read, never an exception:
an offline edge box answers "the search failed" at once instead of hanging the turn.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import Stateless
from pocketstack.providers.remote.web_search import MAX_RESULTS
from pocketstack.providers.tool_runtime import QUERY_ONLY, ToolGroupSpec, ToolResult, tool_def
from pocketstack.web.context import provider_data

if TYPE_CHECKING:
    from pocketstack.providers.remote.web_search import Engine, WebSearchConfig

NAME = "web_search"
ROOTS = {"tavily": "https://api.tavily.com", "brave": "https://api.search.brave.com"}


class WebSearch(Stateless):
    def __init__(self, engine: Engine, config: WebSearchConfig) -> None:
        self.engine = engine
        self.config = config

    async def list_tools(self, group: ToolGroupSpec, authorization: str | None = None) -> list[dict[str, Any]]:
        return [tool_def(NAME, "Search the web for current information; returns titles, links and snippets.",
                         QUERY_ONLY)]  # fmt: skip

    def check_group(self, group: ToolGroupSpec) -> None:
        """Refuse, when it is registered, a group whose args no search could use (ToolsApi calls this)."""
        self._count(group)

    def _count(self, group: ToolGroupSpec) -> int:
        """How many results to ask for: the group's `max_results`, else the provider's; BadRequestError
        when the group's is not a whole number the engines accept."""
        value = group.args.get("max_results", self.config.max_results)
        if isinstance(value, str) and value.strip().isdigit():  # int() took these before: keep taking them
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RESULTS:
            raise BadRequestError(
                f"Tool group '{group.toolgroup_id}': args.max_results must be a whole number from 1 to "
                f"{MAX_RESULTS}, not {value!r}.",
                code="invalid_tool_group_args",
                param="args",
            )
        return value

    def _key(self) -> str | None:
        return self.config.api_key or provider_data.get().get(f"{self.engine}_search_api_key")

    async def invoke(
        self, group: ToolGroupSpec, tool_name: str, kwargs: dict[str, Any], authorization: str | None = None
    ) -> ToolResult:
        query = kwargs.get("query")
        if tool_name != NAME or not isinstance(query, str) or not query.strip():
            return ToolResult(error_message=f"{NAME} takes one argument, a non-empty `query`.", error_code=400)
        key = self._key()
        if not key:
            return ToolResult(
                error_message=f"No {self.engine} API key: set the provider's api_key or send "
                f"{self.engine}_search_api_key in X-LlamaStack-Provider-Data.",
                error_code=401,
            )
        try:
            count = self._count(group)
        except BadRequestError as exc:  # a group stored before registration checked its args
            return ToolResult(error_message=exc.message, error_code=exc.status)
        root = (self.config.base_url or ROOTS[self.engine]).rstrip("/")
        # aiohttp, as every outbound call of the server: httpx is no runtime dependency.
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                if self.engine == "tavily":
                    sent = session.post(
                        f"{root}/search",
                        json={"query": query, "max_results": count},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                else:
                    sent = session.get(
                        f"{root}/res/v1/web/search",
                        params={"q": query, "count": count},
                        headers={"X-Subscription-Token": key, "Accept": "application/json"},
                    )
                async with sent as reply:
                    status, text = reply.status, await reply.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return ToolResult(error_message=f"The {self.engine} search could not be reached: {exc!r}", error_code=503)
        if status != 200:
            return ToolResult(
                error_message=f"The {self.engine} search answered {status}: {text[:300]}",
                error_code=status,
            )
        try:
            hits = _hits(self.engine, json.loads(text))[:count]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return ToolResult(error_message=f"The {self.engine} answer was not understood: {exc}", error_code=502)
        if not hits:
            return ToolResult(content=f"No web results for '{query}'.", metadata={"results": []})
        text = "\n\n".join(f"[{n}] {h['title']} ({h['url']})\n{h['content']}" for n, h in enumerate(hits, 1))
        return ToolResult(content=text, metadata={"results": hits, "query": query})


def _hits(engine: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    if engine == "tavily":
        found = body["results"]
        return [{"title": r.get("title", ""), "url": r["url"], "content": r.get("content", "")} for r in found]
    found = (body.get("web") or {}).get("results", [])
    return [{"title": r.get("title", ""), "url": r["url"], "content": r.get("description", "")} for r in found]
