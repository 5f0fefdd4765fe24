"""What every vector_io provider shares: chunk records, the provider contract, filters and fusion.

The VectorIO API keeps the stores' records and embeds text; a provider only stores chunks with
their vectors and answers searches. Attribute filters are parsed and checked here once, then each
provider compiles the parsed tree to its own query language, so a malformed filter gets the same
400 whatever the backend.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import Provider

SearchMode = Literal["vector", "keyword", "hybrid"]
# Metadata keys that ingestion sets on a file's chunks beside the file's attributes (and that win over them)
FILE_KEYS = ("file_id", "filename", "chunk_index")
KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
MAX_FILTER_DEPTH = 16
Scalar = str | int | float | bool


@dataclass(frozen=True)
class StoredChunk:
    chunk_id: str
    content: str
    metadata: dict[str, Any]
    chunk_metadata: dict[str, Any]
    file_id: str | None
    filename: str | None
    embedding: list[float] | None = None  # only when asked for (file content with include_embeddings)


@dataclass(frozen=True)
class NewChunk:
    chunk_id: str
    content: str
    metadata: dict[str, Any]
    chunk_metadata: dict[str, Any]
    embedding: Sequence[float]
    file_id: str | None = None
    filename: str | None = None
    expires_at: float | None = None  # epoch seconds (ttl_seconds on insert): never found after, then deleted


@dataclass(frozen=True)
class Hit:
    chunk: StoredChunk
    score: float


@dataclass(frozen=True)
class SearchQuery:
    vector: Sequence[float] | None  # None unless the mode needs it
    text: str
    mode: SearchMode
    k: int
    where: Filter | None = None
    ranker: Literal["rrf", "weighted"] = "rrf"
    alpha: float = 0.5  # weighted: the vector side's share
    impact_factor: float = 60.0  # rrf's k

    @property
    def depth(self) -> int:
        """How many hits each side of a hybrid search contributes before fusion."""
        return self.k if self.mode != "hybrid" else max(self.k * 4, 20)


class VectorIOProvider(Provider, Protocol):
    """Stores chunks and their vectors per store; exact, filtered search in three modes. A chunk whose
    `expires_at` has passed is never a hit, and is deleted by a later search, insert or usage count."""

    async def insert(self, store_id: str, dimension: int, chunks: Sequence[NewChunk]) -> None:
        """Add or replace (same chunk_id) chunks, atomically."""
        ...

    async def delete(self, store_id: str, file_id: str | None = None) -> None:
        """Remove a store's chunks (all, or one file's) with their vectors and index entries."""
        ...

    async def set_file_attributes(self, store_id: str, file_id: str, attributes: dict[str, Any]) -> None:
        """Make `attributes` the attributes in each of a file's chunks' metadata, in place (what search results
        show and filters read): the keys in FILE_KEYS keep their values, every other key is replaced."""
        ...

    async def usage_bytes(self, store_id: str) -> int: ...

    async def search(self, store_id: str, query: SearchQuery) -> list[Hit]: ...

    async def file_chunks(self, store_id: str, file_id: str, *, with_embeddings: bool) -> list[StoredChunk]:
        """A file's chunks in document order."""
        ...


# Filters: OpenAI's comparison and compound filters, parsed once.


@dataclass(frozen=True)
class Comparison:
    key: str
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True)
class Compound:
    op: Literal["and", "or"]
    parts: tuple[Filter, ...]


Filter = Comparison | Compound
ORDERED = ("gt", "gte", "lt", "lte")


def parse_filter(spec: Any, depth: int = 0) -> Filter:
    """The checked filter tree; BadRequestError names what is malformed."""
    if depth > MAX_FILTER_DEPTH:
        raise BadRequestError("filters are nested too deeply", param="filters")
    if not isinstance(spec, dict) or "type" not in spec:
        raise BadRequestError("a filter is an object with a `type`", param="filters")
    kind = spec["type"]
    if kind in ("and", "or"):
        parts = spec.get("filters")
        if not isinstance(parts, list) or not parts:
            raise BadRequestError(f"an `{kind}` filter needs a non-empty `filters` list", param="filters")
        return Compound(kind, tuple(parse_filter(part, depth + 1) for part in parts))
    key, value = spec.get("key"), spec.get("value")
    if not isinstance(key, str) or not KEY.match(key):
        raise BadRequestError("a comparison filter needs a `key` (letters, digits, _ . -)", param="filters")
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
            raise BadRequestError(f"an `{kind}` filter needs a non-empty list of scalars", param="filters")
        return Comparison(key, kind, tuple(value))
    if kind not in ("eq", "ne", *ORDERED):
        raise BadRequestError(f"unknown filter type '{kind}'", param="filters")
    if not _scalar(value):
        raise BadRequestError("a comparison filter's `value` is a string, number or boolean", param="filters")
    if kind in ORDERED and isinstance(value, (str, bool)):
        raise BadRequestError(f"`{kind}` compares numbers", param="filters")
    return Comparison(key, kind, cast(Scalar, value))


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


# Fusion of the vector and keyword rankings (hybrid mode).


def fuse(
    vector_hits: list[tuple[int, float]], keyword_hits: list[tuple[int, float]], query: SearchQuery
) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    if query.ranker == "weighted":
        for hits, weight in ((vector_hits, query.alpha), (keyword_hits, 1 - query.alpha)):
            if not hits:
                continue
            low, high = min(s for _, s in hits), max(s for _, s in hits)
            for rowid, score in hits:
                normalized = 1.0 if high == low else (score - low) / (high - low)
                scores[rowid] = scores.get(rowid, 0.0) + weight * normalized
    else:  # reciprocal rank fusion
        for hits in (vector_hits, keyword_hits):
            for rank, (rowid, _) in enumerate(hits, start=1):
                scores[rowid] = scores.get(rowid, 0.0) + 1.0 / (query.impact_factor + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def ranked(
    vector_hits: list[tuple[int, float]], keyword_hits: list[tuple[int, float]], query: SearchQuery
) -> list[tuple[int, float]]:
    """The final order for the query's mode, cut to k."""
    if query.mode == "vector":
        return vector_hits[: query.k]
    if query.mode == "keyword":
        return keyword_hits[: query.k]
    return fuse(vector_hits, keyword_hits, query)[: query.k]


def query_words(text: str) -> list[str]:
    """The words of a natural-language query (punctuation dropped), for OR-ed keyword search."""
    return [w for w in "".join(c if c.isalnum() else " " for c in text).split() if w]
