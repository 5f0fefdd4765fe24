"""The `file_search` tool of Responses: the model asks for a query, the server searches vector stores.

The model sees one function, `file_search(query)`; its calls never reach the client. Each call
becomes a `file_search_call` output item (with the results when `include` asks for
`file_search_call.results`), and the passages go back to the model as the tool's answer, numbered
and named by file, so its final message can cite them; that message gets a `file_citation`
annotation per file the searches returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pocketstack._generated import models
from pocketstack._generated.protocols import VectorIO
from pocketstack.apis.responses.items import new_id
from pocketstack.apis.responses.tools.base import ToolOutcome, failed_or_completed
from pocketstack.errors import BadRequestError
from pocketstack.providers.inline.file_search.search import StoreSearch, passages, search_stores
from pocketstack.providers.tool_runtime import QUERY_ONLY
from pocketstack.telemetry.tools import DATASTORE
from pocketstack.wire.fields import given

NAME = "file_search"
FUNCTION = {
    "type": "function",
    "function": {
        "name": NAME,
        "description": "Search the user's files (a knowledge base) for passages that answer a question. "
        "Call it before answering questions about the files.",
        "parameters": QUERY_ONLY,
    },
}


FileSearch = StoreSearch  # the tool's settings are the search's


@dataclass
class Found:
    """What the searches of one response returned, for citations."""

    files: dict[str, str] = field(default_factory=dict)  # file_id -> filename, in the order first found


def file_search_tool(request: models.CreateResponseRequest) -> FileSearch | None:
    specs = [t for t in given(request.tools) or [] if isinstance(t, models.ResponseOtherTool) and t.type == NAME]
    if not specs:
        return None
    if len(specs) > 1:
        raise BadRequestError("Give one file_search tool (it can name several vector stores).", param="tools")
    extra = specs[0].model_extra or {}
    ids = extra.get("vector_store_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise BadRequestError("file_search needs `vector_store_ids`, a non-empty list of ids.", param="tools")
    limit = extra.get("max_num_results", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 50:
        raise BadRequestError("file_search max_num_results is between 1 and 50.", param="tools")
    return FileSearch(ids, limit, extra.get("filters"), extra.get("ranking_options"))


def query_of(arguments: str) -> str:
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        parsed = {}
    query = parsed.get("query") if isinstance(parsed, dict) else None
    return query if isinstance(query, str) and query.strip() else arguments.strip()


async def search(
    vector_io: VectorIO, tool: FileSearch, query: str, found: Found, with_results: bool
) -> tuple[dict[str, Any], str, int]:
    """Run one search over the tool's stores: the output item, the text the model reads, and the hits."""
    results = await search_stores(vector_io, tool, query)
    for result in results:
        found.files.setdefault(result["file_id"], result["filename"])
    item = {
        "type": "file_search_call",
        "id": new_id("fs"),
        "status": "completed",
        "queries": [query],
        "results": results if with_results else None,
    }
    return item, passages(query, results), len(results)


def citations(found: Found, text: str) -> list[dict[str, Any]]:
    return [
        {"type": "file_citation", "file_id": file_id, "filename": filename, "index": len(text)}
        for file_id, filename in found.files.items()
    ]


@dataclass
class FileSearchTool:
    """file_search as the turn runs it (tools/base.py); `found` collects the files for citations."""

    vector_io: VectorIO
    spec: FileSearch
    found: Found
    with_results: bool  # `include` asked for file_search_call.results
    kind: ClassVar[str] = "file_search_call"
    prefix: ClassVar[str] = "fs"
    searching: ClassVar[bool] = True

    def functions(self) -> list[dict[str, Any]]:
        return [FUNCTION]

    def owns(self, name: str) -> bool:
        return name == NAME

    def tool_type(self, name: str) -> str:
        return DATASTORE

    async def run(self, call: models.ToolCall, item_id: str) -> ToolOutcome:
        query = query_of(call.function.arguments)
        item, text, hits = await search(self.vector_io, self.spec, query, self.found, self.with_results)
        return ToolOutcome({**item, "id": item_id}, text, results=hits)

    def closing_event(self, item: dict[str, Any]) -> str | None:
        return failed_or_completed(item)
