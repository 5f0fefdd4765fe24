"""remote::pgvector: the vector_io contract on PostgreSQL with the pgvector extension.

One table holds every store's chunks (an unconstrained `vector` column, so stores of different
dimensions live side by side), a generated tsvector column with a GIN index serves keyword search,
and vector search is pgvector's exact scan (`<=>`, cosine) over the store's rows, so no neighbour
is ever missed. Several PocketStack servers may share the database: every write is one transaction
and re-inserting a chunk id replaces it. Chunks inserted with a ttl carry `expires_at`: every search
reads past the expired ones, and each server deletes them lazily (after the nearest expiry it knows of).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from pocketstack.errors import BadRequestError, StartupError
from pocketstack.providers.base import Health, ProviderContext
from pocketstack.providers.remote.pgvector import filters
from pocketstack.providers.remote.pgvector.config import PgVectorConfig
from pocketstack.providers.vector_search import (
    FILE_KEYS,
    Hit,
    NewChunk,
    SearchQuery,
    StoredChunk,
    query_words,
    ranked,
)

SCHEMA_LOCK = 0x706F636B  # an advisory lock: replicas starting together create the schema once
LIVE = "(expires_at IS NULL OR expires_at > $2)"  # $2: the time now (epoch seconds)


class PgVectorStore:
    def __init__(self, config: PgVectorConfig, context: ProviderContext) -> None:
        self.config = config
        self.table = f"{config.table_prefix}_chunks"
        self._pool: asyncpg.Pool | None = None
        self._next_expiry: float | None = None  # the nearest expires_at this server knows of
        self.clock: Callable[[], float] = time.time  # what chunks' expires_at is compared with

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the pgvector provider is not started")
        return self._pool

    async def initialize(self) -> None:
        where = f"{self.config.user}@{self.config.host}:{self.config.port}/{self.config.db}"
        try:
            self._pool = await asyncpg.create_pool(
                host=self.config.host,
                port=self.config.port,
                user=self.config.user,
                password=self.config.password,
                database=self.config.db,
                min_size=1,
                max_size=self.config.pool_size,
                timeout=self.config.connect_timeout_s,
            )
            async with self.pool.acquire() as connection, connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await connection.execute(self._schema())
                for migration in self._migrations():
                    await connection.execute(migration)
                self._next_expiry = await connection.fetchval(f"SELECT MIN(expires_at) FROM {self.table}")
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            if self._pool is not None:
                await self._pool.close()
                self._pool = None
            hint = " (is the pgvector extension installed?)" if "vector" in str(exc) else ""
            raise StartupError(f"pgvector: cannot use PostgreSQL at {where}: {exc}{hint}") from exc

    def _schema(self) -> str:
        t = self.table
        return f"""
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE TABLE IF NOT EXISTS {t} (
            id BIGSERIAL PRIMARY KEY,
            store_id TEXT NOT NULL,
            chunk_id TEXT NOT NULL,
            file_id TEXT,
            filename TEXT,
            content TEXT NOT NULL,
            metadata JSONB NOT NULL,
            chunk_metadata JSONB NOT NULL,
            embedding vector NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
            UNIQUE (store_id, chunk_id)
        );
        CREATE INDEX IF NOT EXISTS {t}_by_file ON {t} (store_id, file_id);
        CREATE INDEX IF NOT EXISTS {t}_tsv ON {t} USING gin (tsv);
        """

    def _migrations(self) -> list[str]:
        """Changes to _schema's table, in order; each can run again (a replica may have applied it)."""
        t = self.table
        return [
            f"""ALTER TABLE {t} ADD COLUMN IF NOT EXISTS expires_at DOUBLE PRECISION;
            CREATE INDEX IF NOT EXISTS {t}_by_expiry ON {t} (expires_at) WHERE expires_at IS NOT NULL;""",
        ]

    async def shutdown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def health(self) -> Health:
        if self._pool is None:
            return Health("Error", "not started")
        try:
            await self._pool.fetchval("SELECT 1", timeout=self.config.connect_timeout_s)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            return Health("Error", f"PostgreSQL: {exc}")
        return Health("OK")

    async def insert(self, store_id: str, dimension: int, chunks: Sequence[NewChunk]) -> None:
        for chunk in chunks:
            if len(chunk.embedding) != dimension:
                raise BadRequestError(
                    f"chunk '{chunk.chunk_id}' has a {len(chunk.embedding)}-dimensional embedding; "
                    f"the store's dimension is {dimension}",
                    param="chunks",
                )
        await self._maybe_sweep()
        rows = [
            (store_id, c.chunk_id, c.file_id, c.filename, c.content, json.dumps(c.metadata),
             json.dumps(c.chunk_metadata), _vector(c.embedding), c.expires_at)
            for c in chunks
        ]  # fmt: skip
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.executemany(
                f"INSERT INTO {self.table} (store_id, chunk_id, file_id, filename, content, metadata, chunk_metadata,"
                " embedding, expires_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::vector, $9)"
                " ON CONFLICT (store_id, chunk_id) DO UPDATE SET file_id = excluded.file_id,"
                " filename = excluded.filename, content = excluded.content, metadata = excluded.metadata,"
                " chunk_metadata = excluded.chunk_metadata, embedding = excluded.embedding,"
                " expires_at = excluded.expires_at",
                rows,
            )
        expiries = [c.expires_at for c in chunks if c.expires_at is not None]
        if expiries:
            self._next_expiry = min(expiries + ([self._next_expiry] if self._next_expiry is not None else []))

    async def _maybe_sweep(self) -> None:
        if self._next_expiry is not None and self.clock() >= self._next_expiry:
            now = self.clock()
            async with self.pool.acquire() as connection, connection.transaction():
                await connection.execute(f"DELETE FROM {self.table} WHERE expires_at <= $1", now)
                self._next_expiry = await connection.fetchval(f"SELECT MIN(expires_at) FROM {self.table}")

    async def delete(self, store_id: str, file_id: str | None = None) -> None:
        if file_id is None:
            await self.pool.execute(f"DELETE FROM {self.table} WHERE store_id = $1", store_id)
        else:
            await self.pool.execute(f"DELETE FROM {self.table} WHERE store_id = $1 AND file_id = $2", store_id, file_id)

    async def set_file_attributes(self, store_id: str, file_id: str, attributes: dict[str, Any]) -> None:
        """The file's chunks' metadata becomes `attributes` with their FILE_KEYS kept (vectors are untouched)."""
        await self.pool.execute(
            f"UPDATE {self.table} SET metadata = $3::jsonb || COALESCE((SELECT jsonb_object_agg(key, value)"
            " FROM jsonb_each(metadata) WHERE key = ANY($4::text[])), '{}'::jsonb)"
            " WHERE store_id = $1 AND file_id = $2",
            store_id,
            file_id,
            json.dumps(attributes),
            list(FILE_KEYS),
        )

    async def usage_bytes(self, store_id: str) -> int:
        await self._maybe_sweep()
        value = await self.pool.fetchval(
            f"SELECT COALESCE(SUM(octet_length(content)), 0) FROM {self.table} WHERE store_id = $1", store_id
        )
        return int(value)

    async def search(self, store_id: str, query: SearchQuery) -> list[Hit]:
        await self._maybe_sweep()
        now = self.clock()
        params: list[Any] = [store_id, now]
        condition = LIVE
        if query.where is not None:
            path, variables = filters.to_jsonpath(query.where)
            params += [path, json.dumps(variables)]
            condition += " AND jsonb_path_match(metadata, $3::jsonpath, $4::jsonb, TRUE)"
        vector_hits: list[tuple[int, float]] = []
        keyword_hits: list[tuple[int, float]] = []
        if query.mode in ("vector", "hybrid"):
            if query.vector is None:
                raise RuntimeError("vector search without a query vector")
            if any(query.vector):  # a zero vector has no direction: nothing is near it
                n = len(params)
                rows = await self.pool.fetch(
                    f"SELECT id, 1 - (embedding <=> ${n + 1}::vector) AS score FROM {self.table}"
                    f" WHERE store_id = $1 AND {condition} ORDER BY embedding <=> ${n + 1}::vector LIMIT ${n + 2}",
                    *params, _vector(query.vector), query.depth,
                )  # fmt: skip
                vector_hits = [(r["id"], float(r["score"])) for r in rows]
        if query.mode in ("keyword", "hybrid"):
            words = query_words(query.text)
            if words:
                n = len(params)
                # OR-ed words: a question finds the passages sharing its key words (stop words drop out)
                rows = await self.pool.fetch(
                    f"SELECT id, ts_rank_cd(tsv, q) AS score FROM {self.table}, to_tsquery('english', ${n + 1}) q"
                    f" WHERE store_id = $1 AND tsv @@ q AND {condition} ORDER BY score DESC, id LIMIT ${n + 2}",
                    *params, " | ".join(words), query.depth,
                )  # fmt: skip
                keyword_hits = [(r["id"], float(r["score"])) for r in rows]
        order = ranked(vector_hits, keyword_hits, query)
        if not order:
            return []
        rows = await self.pool.fetch(
            f"SELECT id, chunk_id, content, metadata, chunk_metadata, file_id, filename FROM {self.table}"
            f" WHERE id = ANY($1::bigint[]) AND {LIVE}",
            [rowid for rowid, _ in order],
            now,
        )
        chunks = {r["id"]: _chunk(r) for r in rows}
        return [Hit(chunks[rowid], score) for rowid, score in order if rowid in chunks]

    async def file_chunks(self, store_id: str, file_id: str, *, with_embeddings: bool) -> list[StoredChunk]:
        embedding = ", embedding::text AS embedding" if with_embeddings else ""
        rows = await self.pool.fetch(
            f"SELECT id, chunk_id, content, metadata, chunk_metadata, file_id, filename{embedding} FROM {self.table}"
            " WHERE store_id = $1 AND file_id = $2 ORDER BY id",
            store_id,
            file_id,
        )
        return [_chunk(r) for r in rows]


def _vector(values: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"  # pgvector's text form


def _chunk(row: Any) -> StoredChunk:
    embedding = json.loads(row["embedding"]) if row.get("embedding") is not None else None
    return StoredChunk(
        row["chunk_id"],
        row["content"],
        json.loads(row["metadata"]),
        json.loads(row["chunk_metadata"]),
        row["file_id"],
        row["filename"],
        embedding,
    )
