"""inline::sqlite-vec: concurrent vector searches share one matrix product (products.py), each with its own hits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from pocketstack.providers.inline.sqlite_vec.provider import SqliteVecStore
from pocketstack.providers.vector_search import Comparison, NewChunk, SearchQuery
from tests.support.sqlite_vec import open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteVecStore]:
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((300, 16)).astype(np.float32)
    async with open_store(tmp_path) as vectors:
        await vectors.insert(
            "vs",
            16,
            [NewChunk(f"c{i}", f"text {i}", {"even": i % 2 == 0}, {}, row.tolist()) for i, row in enumerate(matrix)],
        )
        yield vectors


def _query(vector: np.ndarray, even: bool | None = None) -> SearchQuery:
    where = None if even is None else Comparison("even", "eq", even)
    return SearchQuery(vector=vector.tolist(), text="", mode="vector", k=5, where=where)


async def _hits(store: SqliteVecStore, query: SearchQuery) -> list[tuple[str, float]]:
    return [(hit.chunk.chunk_id, round(hit.score, 5)) for hit in await store.search("vs", query)]


async def test_concurrent_searches_share_a_product_and_get_their_own_hits(store: SqliteVecStore) -> None:
    rng = np.random.default_rng(8)
    filters = [None, True, None, False, None, None]
    queries = [_query(v, even) for v, even in zip(rng.standard_normal((6, 16)), filters, strict=True)]
    alone = [await _hits(store, query) for query in queries]  # (the first loads the matrix)
    assert store._products.largest_group == 1
    together = await asyncio.gather(*(_hits(store, query) for query in queries))
    assert list(together) == alone
    assert store._products.largest_group == len(queries)
    assert all(int(chunk_id[1:]) % 2 == 0 for chunk_id, _ in alone[1])  # the filters still apply per search


async def test_a_cancelled_search_leaves_the_others_whole(store: SqliteVecStore) -> None:
    rng = np.random.default_rng(9)
    first, second = (_query(v) for v in rng.standard_normal((2, 16)))
    want = await _hits(store, second)
    leaving = asyncio.ensure_future(_hits(store, first))
    staying = asyncio.ensure_future(_hits(store, second))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await staying == want
