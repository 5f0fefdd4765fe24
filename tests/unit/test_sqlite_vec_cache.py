"""inline::sqlite-vec's in-memory matrix: a write that ends while a search loads it must not be hidden."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import apsw
import pytest

from pocketstack.providers.inline.sqlite_vec.provider import SqliteVecStore, _Matrix
from pocketstack.providers.vector_search import NewChunk, SearchQuery
from tests.support.sqlite_vec import open_store

T = TypeVar("T")


def _chunk(chunk_id: str, embedding: list[float]) -> NewChunk:
    return NewChunk(chunk_id, f"text of {chunk_id}", {}, {}, embedding)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteVecStore]:
    async with open_store(tmp_path) as vectors:
        yield vectors


async def _found(store: SqliteVecStore, vector: list[float]) -> list[str]:
    hits = await store.search("vs", SearchQuery(vector=vector, text="", mode="vector", k=5))
    return [hit.chunk.chunk_id for hit in hits]


async def test_a_matrix_loaded_before_a_write_ended_is_not_kept(
    store: SqliteVecStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.insert("vs", 2, [_chunk("old", [1.0, 0.0])])
    load_and_return = store._run
    written: list[str] = []

    async def write_after_the_load(work: Callable[[apsw.Connection], T]) -> T:
        result = await load_and_return(work)
        if isinstance(result, _Matrix) and not written:
            # The interleaving: the search has its matrix (without "new") but has not cached it yet, and a
            # write ends now, dropping a cache that is still empty.
            written.append("new")
            await store.insert("vs", 2, [_chunk("new", [0.0, 1.0])])
        return result

    monkeypatch.setattr(store, "_run", write_after_the_load)
    assert await _found(store, [0.0, 1.0]) == ["old"]  # began before the write: it may miss it
    assert written == ["new"]
    assert await _found(store, [0.0, 1.0]) == ["new", "old"]  # after it: never hidden behind a stale matrix
