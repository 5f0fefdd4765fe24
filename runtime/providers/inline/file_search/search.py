"""Search over several vector stores at once: the passages a file_search or knowledge_search call reads.

One search per store through the VectorIO API, results merged by score and cut to the limit,
then numbered and named by file so that the model's answer can cite them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pocketstack._generated.protocols import VectorIO


@dataclass(frozen=True)
class StoreSearch:
    vector_store_ids: list[str]
    max_num_results: int = 10
    filters: dict[str, Any] | None = None
    ranking_options: dict[str, Any] | None = None


async def search_stores(vector_io: VectorIO, spec: StoreSearch, query: str) -> list[dict[str, Any]]:
    """The best passages of all the stores: file_id, filename, score, text, attributes; best first."""
    from pocketstack._generated import models

    results: list[dict[str, Any]] = []
    for store_id in spec.vector_store_ids:
        body: dict[str, Any] = {"vector_store_id": store_id, "query": query, "max_num_results": spec.max_num_results}
        if spec.filters is not None:
            body["filters"] = spec.filters
        if spec.ranking_options is not None:
            body["ranking_options"] = spec.ranking_options
        page = await vector_io.openai_search_vector_store(models.OpenaiSearchVectorStoreRequest.model_validate(body))
        for hit in page.data:
            text = "\n".join(part.text for part in hit.content)
            results.append(
                {"file_id": hit.file_id, "filename": hit.filename, "score": hit.score, "text": text,
                 "attributes": hit.attributes or {}}
            )  # fmt: skip
    results.sort(key=lambda r: -r["score"])
    return results[: spec.max_num_results]


def passages(query: str, results: list[dict[str, Any]]) -> str:
    """What the model reads: the passages numbered and named by file, or that none matched."""
    if not results:
        return f"No passage of the files matches '{query}'."
    numbered = [f"[{n}] {r['filename']} (file {r['file_id']}):\n{r['text']}" for n, r in enumerate(results, 1)]
    return "Passages from the user's files:\n\n" + "\n\n".join(numbered)
