"""Chunk tables written before chunks could expire gain the expiry column when the provider opens them, and keep
their chunks (sqlite-vec: PRAGMA user_version counts its migrations; pgvector: each migration can run again)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import apsw
import pytest

from pocketstack.providers.base import ProviderContext
from pocketstack.providers.inline.sqlite_vec import provider as sqlite_vec
from pocketstack.providers.inline.sqlite_vec.config import SqliteVecConfig
from pocketstack.providers.vector_search import NewChunk, SearchMode, SearchQuery

# The chunks table as 0.x servers created it (sqlite-vec's SCHEMA before its first migration).
OLD_SQLITE = """
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, store_id TEXT NOT NULL, chunk_id TEXT NOT NULL, file_id TEXT, filename TEXT,
    content TEXT NOT NULL, metadata TEXT NOT NULL, chunk_metadata TEXT NOT NULL, dimension INTEGER NOT NULL,
    UNIQUE (store_id, chunk_id)
);
CREATE INDEX chunks_by_file ON chunks (store_id, file_id);
CREATE VIRTUAL TABLE chunks_fts USING fts5(content, content='chunks', content_rowid='id');
CREATE VIRTUAL TABLE vectors_2 USING vec0(id INTEGER PRIMARY KEY, embedding float[2]);
INSERT INTO chunks VALUES (1, 'vs', 'old', NULL, NULL, 'an old reef chunk', '{}', '{}', 2);
INSERT INTO chunks_fts (rowid, content) VALUES (1, 'an old reef chunk');
"""


async def test_sqlite_vec_adds_the_expiry_column_to_an_old_database(tmp_path: Path) -> None:
    path = tmp_path / "vectors.db"
    old = apsw.Connection(str(path))
    old.enable_load_extension(True)
    old.load_extension(sqlite_vec._extension_path())
    old.execute(OLD_SQLITE)
    old.execute("INSERT INTO vectors_2 (id, embedding) VALUES (1, ?)", (sqlite_vec._float32([1.0, 0.0]),))
    old.close()

    store = sqlite_vec.SqliteVecStore(SqliteVecConfig(db_path=str(path)), ProviderContext("vec", tmp_path))
    await store.initialize()
    try:
        await store.insert("vs", 2, [NewChunk("brief", "a brief reef chunk", {}, {}, [0.0, 1.0], expires_at=1.0)])
        modes: tuple[SearchMode, ...] = ("vector", "keyword")
        for mode in modes:
            hits = await store.search("vs", SearchQuery(vector=[1.0, 1.0], text="reef", mode=mode, k=5))
            assert [hit.chunk.chunk_id for hit in hits] == ["old"], mode
    finally:
        await store.shutdown()
    check = apsw.Connection(str(path))
    assert check.execute("PRAGMA user_version").fetchone() == (len(sqlite_vec.MIGRATIONS),)
    assert check.execute("SELECT chunk_id, expires_at FROM chunks").fetchall() == [("old", None)]  # swept
    check.close()
    reopened = sqlite_vec.SqliteVecStore(SqliteVecConfig(db_path=str(path)), ProviderContext("vec", tmp_path))
    await reopened.initialize()  # migrations already applied: nothing runs twice
    await reopened.shutdown()


async def test_pgvector_adds_the_expiry_column_to_an_old_table(postgres: Any) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    from pocketstack.providers.remote.pgvector.config import PgVectorConfig
    from pocketstack.providers.remote.pgvector.provider import PgVectorStore

    prefix = f"t{uuid.uuid4().hex[:12]}"
    config = PgVectorConfig(host=postgres.host, port=postgres.port, user=postgres.user, table_prefix=prefix)
    connection = await asyncpg.connect(host=postgres.host, port=postgres.port, user=postgres.user, database="postgres")
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        # the table as servers created it before chunks could expire
        await connection.execute(
            f"CREATE TABLE {prefix}_chunks (id BIGSERIAL PRIMARY KEY, store_id TEXT NOT NULL, chunk_id TEXT NOT NULL,"
            " file_id TEXT, filename TEXT, content TEXT NOT NULL, metadata JSONB NOT NULL,"
            " chunk_metadata JSONB NOT NULL, embedding vector NOT NULL,"
            " tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED, UNIQUE (store_id, chunk_id))"
        )
        await connection.execute(
            f"INSERT INTO {prefix}_chunks (store_id, chunk_id, content, metadata, chunk_metadata, embedding)"
            " VALUES ('vs', 'old', 'an old reef chunk', $1::jsonb, $1::jsonb, '[1,0]')",
            json.dumps({}),
        )
        for _ in range(2):  # the second start finds the migration applied
            store = PgVectorStore(config, ProviderContext("pg", Path(".")))
            await store.initialize()
            try:
                await store.insert(
                    "vs", 2, [NewChunk("brief", "a brief reef chunk", {}, {}, [0.0, 1.0], expires_at=1.0)]
                )
                hits = await store.search("vs", SearchQuery(vector=[1.0, 1.0], text="reef", mode="keyword", k=5))
                assert [hit.chunk.chunk_id for hit in hits] == ["old"]
            finally:
                await store.shutdown()
        rows = await connection.fetch(f"SELECT chunk_id, expires_at FROM {prefix}_chunks")
        assert [(row["chunk_id"], row["expires_at"]) for row in rows] == [("old", None)]  # swept
    finally:
        await connection.execute(f"DROP TABLE IF EXISTS {prefix}_chunks")
        await connection.close()
