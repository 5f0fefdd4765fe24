"""knowledge_search: the vector-store search of Responses' file_search, as a tool group's tool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pocketstack.errors import BadRequestError, PocketStackError
from pocketstack.providers.base import ProviderContext, Stateless
from pocketstack.providers.inline.file_search.search import StoreSearch, passages, search_stores
from pocketstack.providers.tool_runtime import QUERY_ONLY, ToolGroupSpec, ToolResult, tool_def

if TYPE_CHECKING:
    from pocketstack.providers.inline.file_search import FileSearchConfig

NAME = "knowledge_search"


def store_ids(args: dict[str, Any]) -> list[str]:
    ids = args.get("vector_store_ids", args.get("vector_db_ids", []))
    return [ids] if isinstance(ids, str) else [str(i) for i in ids or []]


class FileSearchRuntime(Stateless):
    def __init__(self, config: FileSearchConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context

    def check_group(self, group: ToolGroupSpec) -> None:
        ids = group.args.get("vector_store_ids", group.args.get("vector_db_ids", []))
        if not isinstance(ids, str) and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise BadRequestError(
                f"Tool group '{group.toolgroup_id}': args.vector_store_ids is a store id or a list of them.",
                code="invalid_tool_group_args",
                param="args",
            )

    async def list_tools(self, group: ToolGroupSpec, authorization: str | None = None) -> list[dict[str, Any]]:
        return [tool_def(NAME, "Search the knowledge base (the user's files) for passages that answer a question. "
                               "Call it before answering questions about the files.", QUERY_ONLY)]  # fmt: skip

    async def invoke(
        self, group: ToolGroupSpec, tool_name: str, kwargs: dict[str, Any], authorization: str | None = None
    ) -> ToolResult:
        query = kwargs.get("query")
        if tool_name != NAME or not isinstance(query, str) or not query.strip():
            return ToolResult(error_message=f"{NAME} takes one argument, a non-empty `query`.", error_code=400)
        stores = store_ids(kwargs) or store_ids(group.args)
        if not stores:
            return ToolResult(error_message=f"Tool group '{group.toolgroup_id}' names no vector stores "
                                            "(args.vector_store_ids).", error_code=400)  # fmt: skip
        try:
            results = await search_stores(
                self.context.routers.vector_io, StoreSearch(stores, self.config.max_chunks), query
            )
        except PocketStackError as exc:
            return ToolResult(error_message=exc.message, error_code=exc.status)
        return ToolResult(content=passages(query, results), metadata={"results": results, "vector_store_ids": stores})
