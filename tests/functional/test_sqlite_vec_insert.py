"""inline::sqlite-vec's set-wise insert: replacing, repeated chunk ids in one request, and every index kept in step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import apsw
import pytest

from pocketstack.providers.inline.sqlite_vec.provider import SqliteVecStore
from pocketstack.providers.vector_search import NewChunk, SearchQuery
from tests.support.sqlite_vec import open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteVecStore]:
    async with open_store(tmp_path) as vectors:
        yield vectors


def _chunk(chunk_id: str, text: str, embedding: list[float]) -> NewChunk:
    return NewChunk(chunk_id, text, {"n": text}, {}, embedding)


async def _search(store: SqliteVecStore, mode: str, text: str = "", vector: list[float] | None = None) -> list[str]:
    query = SearchQuery(vector=vector, text=text, mode=mode, k=10)  # type: ignore[arg-type]
    return [f"{hit.chunk.chunk_id}:{hit.chunk.content}" for hit in await store.search("vs", query)]


def _counts(path: Path) -> tuple[int, int, int]:
    db = apsw.Connection(str(path))
    db.enable_load_extension(True)
    import sqlite_vec

    db.load_extension(sqlite_vec.loadable_path())
    try:
        counted = [
            db.execute(sql).fetchall()[0][0]
            for sql in (
                "SELECT COUNT(*) FROM chunks",
                "SELECT COUNT(*) FROM vectors_2",
                "SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH 'alpha OR beta OR gamma'",
            )
        ]
        return counted[0], counted[1], counted[2]  # type: ignore[return-value]
    finally:
        db.close()


async def test_a_chunk_id_given_twice_in_one_insert_keeps_the_last(store: SqliteVecStore, tmp_path: Path) -> None:
    await store.insert("vs", 2, [_chunk("a", "alpha", [1.0, 0.0]), _chunk("a", "beta", [0.0, 1.0])])
    assert await _search(store, "vector", vector=[0.0, 1.0]) == ["a:beta"]
    assert await _search(store, "keyword", "alpha") == []
    assert await _search(store, "keyword", "beta") == ["a:beta"]
    assert _counts(tmp_path / "vectors.db") == (1, 1, 1)


async def test_reinserting_replaces_vector_text_and_index_entries(store: SqliteVecStore, tmp_path: Path) -> None:
    await store.insert("vs", 2, [_chunk("a", "alpha", [1.0, 0.0]), _chunk("b", "beta", [0.0, 1.0])])
    await store.insert("vs", 2, [_chunk("b", "gamma", [1.0, 0.0]), _chunk("c", "alpha", [0.0, 1.0])])
    assert await _search(store, "keyword", "beta") == []
    assert sorted(await _search(store, "keyword", "alpha gamma")) == ["a:alpha", "b:gamma", "c:alpha"]
    assert (await _search(store, "vector", vector=[0.0, 1.0]))[0] == "c:alpha"
    assert (await _search(store, "vector", vector=[1.0, 0.0]))[:2] in (["a:alpha", "b:gamma"], ["b:gamma", "a:alpha"])
    assert _counts(tmp_path / "vectors.db") == (3, 3, 3)


async def test_a_failed_insert_leaves_nothing_behind(store: SqliteVecStore, tmp_path: Path) -> None:
    await store.insert("vs", 2, [_chunk("a", "alpha", [1.0, 0.0])])
    with pytest.raises(Exception, match="dimension"):
        await store.insert("vs", 2, [_chunk("b", "beta", [0.0, 1.0]), _chunk("c", "gamma", [1.0])])
    assert _counts(tmp_path / "vectors.db") == (1, 1, 1)
