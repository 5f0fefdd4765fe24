"""inline::sqlite-vec: chunks and their vectors on disk (sqlite-vec, FTS5), exact search in memory.

The durable store is SQLite: chunk rows, a vec0 table per dimension for the vectors and an FTS5
index for BM25 keyword search. Vector search is an exact scan over a float32 matrix of the
store's normalized vectors, loaded from vec0 on first use and dropped on every write: at 100k
vectors that scan runs near memory bandwidth and never misses a neighbour, where vec0's own scan
is several times slower and approximate indexes lose recall on unstructured data (issue 5).
Filters are compiled to SQL and select the candidate rows before the scan. Chunks inserted with a ttl
carry `expires_at`: the rows a search returns are read with it checked, and the expired ones are
deleted lazily (the nearest expiry is known, so a search checks a float until then).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import apsw

from pocketstack.errors import BadRequestError, StartupError
from pocketstack.providers.base import Health, ProviderContext
from pocketstack.providers.inline.sqlite_vec import filters
from pocketstack.providers.inline.sqlite_vec.config import SqliteVecConfig
from pocketstack.providers.inline.sqlite_vec.products import GroupedProducts
from pocketstack.providers.vector_search import (
    FILE_KEYS,
    Hit,
    NewChunk,
    SearchQuery,
    StoredChunk,
    query_words,
    ranked,
)
from pocketstack.telemetry import vector_stores as telemetry
from pocketstack.telemetry.serving import Reading

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")
SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    store_id TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    file_id TEXT,
    filename TEXT,
    content TEXT NOT NULL,
    metadata TEXT NOT NULL,
    chunk_metadata TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    UNIQUE (store_id, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks (store_id, file_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(content, content='chunks', content_rowid='id');
"""
# Numbered changes to SCHEMA's tables, applied once each (PRAGMA user_version counts them).
MIGRATIONS = (
    """ALTER TABLE chunks ADD COLUMN expires_at REAL;
    CREATE INDEX chunks_by_expiry ON chunks (expires_at) WHERE expires_at IS NOT NULL;""",
)
LIVE = "(chunks.expires_at IS NULL OR chunks.expires_at > ?)"  # bound to the time now


@dataclass
class _Matrix:
    ids: np.ndarray
    vectors: np.ndarray


def _fts_query(text: str) -> str:
    """Words OR-ed as FTS5 string literals: user text never reaches FTS5's query syntax, and a question
    finds the passages that share its key words without having to contain every one of them."""
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in query_words(text))


class SqliteVecStore:
    def __init__(self, config: SqliteVecConfig, context: ProviderContext) -> None:
        self.path = (
            Path(config.db_path).expanduser() if config.db_path else context.home / "vector_io" / "sqlite_vec.db"
        )
        self._connection: apsw.Connection | None = None
        self._lock = threading.Lock()
        self._matrices: dict[str, _Matrix] = {}
        # Writes per store: a matrix loaded before a write ended is stale, and must not be cached after
        # that write dropped the cache (it would hide the new chunks from vector search until the next write).
        self._generations: dict[str, int] = {}
        self._next_expiry: float | None = None  # the nearest expires_at of a stored chunk
        self._products = GroupedProducts()  # the scans' matrix products, concurrent ones grouped
        self.clock: Callable[[], float] = time.time  # what chunks' expires_at is compared with

    async def initialize(self) -> None:
        await asyncio.to_thread(self._open)
        telemetry.store_chunks.add(self._sizes)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = apsw.Connection(str(self.path))
            connection.enable_load_extension(True)
            connection.load_extension(_extension_path())
            connection.enable_load_extension(False)
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA busy_timeout = 5000")
            with connection:
                connection.execute(SCHEMA)
            _migrate(connection)
            self._next_expiry = _nearest_expiry(connection)
        except (apsw.Error, OSError) as exc:
            raise StartupError(f"cannot open the vector database {self.path}: {exc}") from exc
        self._connection = connection

    async def shutdown(self) -> None:
        telemetry.store_chunks.remove(self._sizes)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await asyncio.to_thread(connection.close)

    async def health(self) -> Health:
        return Health("OK") if self._connection is not None else Health("Error", "not started")

    async def _run(self, work: Callable[[apsw.Connection], T]) -> T:
        def locked() -> T:
            if self._connection is None:
                raise RuntimeError("the vector store is closed")
            with self._lock:
                return work(self._connection)

        return await asyncio.to_thread(locked)

    def _sizes(self) -> list[Reading]:
        """The chunks gauge: each store's live chunks, counted on the metrics collector's thread (the index
        on (store_id, file_id) answers the count; expired rows not yet swept, through the expiry index)."""
        connection = self._connection
        if connection is None:
            return []
        try:
            with self._lock:
                stored = _rows(connection, "SELECT store_id, COUNT(*) FROM chunks GROUP BY store_id")
                expired = dict(
                    _rows(
                        connection,
                        "SELECT store_id, COUNT(*) FROM chunks WHERE expires_at IS NOT NULL AND expires_at <= ?"
                        " GROUP BY store_id",
                        (self.clock(),),
                    )
                )
        except apsw.Error:  # closed by a stopping server while a scrape read: nothing to report
            return []
        return [telemetry.reading(store_id, count - expired.get(store_id, 0)) for store_id, count in stored]

    async def insert(self, store_id: str, dimension: int, chunks: Sequence[NewChunk]) -> None:
        """Add or replace (same chunk_id) chunks, atomically."""
        for chunk in chunks:
            if len(chunk.embedding) != dimension:
                raise BadRequestError(
                    f"chunk '{chunk.chunk_id}' has a {len(chunk.embedding)}-dimensional embedding; "
                    f"the store's dimension is {dimension}",
                    param="chunks",
                )
        await self._maybe_sweep()
        table = _vector_table(dimension)

        # One chunk_id given twice in a request: the last one wins, as if inserted one after the other.
        latest = list({chunk.chunk_id: chunk for chunk in chunks}.values())
        blobs = [_float32(chunk.embedding) for chunk in latest]  # off the lock: plain Python work
        rows = [
            (store_id, chunk.chunk_id, chunk.file_id, chunk.filename, chunk.content, json.dumps(chunk.metadata),
             json.dumps(chunk.chunk_metadata), dimension, chunk.expires_at)
            for chunk in latest
        ]  # fmt: skip

        def write(db: apsw.Connection) -> None:
            # Set-wise, in one transaction: one statement per table for the whole request, not four per
            # chunk (50,000 chunks took 4 statements x 50,000 round trips through apsw).
            with db:
                db.execute(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} "
                    f"USING vec0(id INTEGER PRIMARY KEY, embedding float[{dimension}])"
                )
                _delete_rows(
                    db,
                    "store_id = ? AND chunk_id IN (SELECT value FROM json_each(?))",
                    (store_id, json.dumps([chunk.chunk_id for chunk in latest])),
                )
                # The rowids are given, not read back one insert at a time: the writes hold the connection
                # (and SQLite's write lock) from here to the commit, so nobody takes them in between.
                ((top,),) = _rows(db, "SELECT COALESCE(MAX(id), 0) FROM chunks")
                rowids = range(top + 1, top + 1 + len(latest))
                db.executemany(
                    "INSERT INTO chunks (id, store_id, chunk_id, file_id, filename, content, metadata, chunk_metadata,"
                    " dimension, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(rowid, *row) for rowid, row in zip(rowids, rows, strict=True)],
                )
                db.executemany(
                    "INSERT INTO chunks_fts (rowid, content) VALUES (?, ?)",
                    [(rowid, chunk.content) for rowid, chunk in zip(rowids, latest, strict=True)],
                )
                db.executemany(
                    f"INSERT INTO {table} (id, embedding) VALUES (?, ?)", list(zip(rowids, blobs, strict=True))
                )

        await self._run(write)
        self._forget(store_id)
        expiries = [chunk.expires_at for chunk in chunks if chunk.expires_at is not None]
        if expiries:
            self._next_expiry = min(expiries + ([self._next_expiry] if self._next_expiry is not None else []))

    async def _maybe_sweep(self) -> None:
        if self._next_expiry is not None and self.clock() >= self._next_expiry:
            await self._sweep()

    async def _sweep(self) -> None:
        """Delete the expired chunks (with their vectors and index entries) of every store."""
        now = self.clock()

        def write(db: apsw.Connection) -> tuple[list[str], float | None]:
            where = "expires_at IS NOT NULL AND expires_at <= ?"
            with db:
                stores = [row[0] for row in _rows(db, f"SELECT DISTINCT store_id FROM chunks WHERE {where}", (now,))]
                _delete_rows(db, where, (now,))
            return stores, _nearest_expiry(db)

        stores, self._next_expiry = await self._run(write)
        for store_id in stores:
            self._forget(store_id)

    async def delete(self, store_id: str, file_id: str | None = None) -> None:
        """Remove a store's chunks (all, or one file's) with their vectors and index entries."""
        where, params = (
            ("store_id = ?", (store_id,)) if file_id is None else ("store_id = ? AND file_id = ?", (store_id, file_id))
        )

        def write(db: apsw.Connection) -> None:
            with db:
                _delete_rows(db, where, params)

        await self._run(write)
        self._forget(store_id)

    async def set_file_attributes(self, store_id: str, file_id: str, attributes: dict[str, Any]) -> None:
        """The file's chunks' metadata becomes `attributes` with their FILE_KEYS kept (vectors are untouched)."""

        def write(db: apsw.Connection) -> None:
            with db:
                where = (store_id, file_id)
                for rowid, metadata in _rows(
                    db, "SELECT id, metadata FROM chunks WHERE store_id = ? AND file_id = ?", where
                ):
                    old = json.loads(metadata)
                    new = attributes | {key: old[key] for key in FILE_KEYS if key in old}
                    db.execute("UPDATE chunks SET metadata = ? WHERE id = ?", (json.dumps(new), rowid))

        await self._run(write)

    def _forget(self, store_id: str) -> None:
        """After a write: drop the store's matrix, and any load that began before it."""
        self._generations[store_id] = self._generations.get(store_id, 0) + 1
        self._matrices.pop(store_id, None)

    async def usage_bytes(self, store_id: str) -> int:
        await self._maybe_sweep()
        rows = await self._run(
            lambda db: _rows(
                db, "SELECT COALESCE(SUM(LENGTH(CAST(content AS BLOB))), 0) FROM chunks WHERE store_id = ?", (store_id,)
            )
        )
        return int(rows[0][0])

    async def search(self, store_id: str, query: SearchQuery) -> list[Hit]:
        await self._maybe_sweep()  # before the matrix is used: a sweep drops it
        now = self.clock()
        condition, params = ("1", []) if query.where is None else filters.to_sql(query.where, "metadata")
        vector_hits: list[tuple[int, float]] = []
        keyword_hits: list[tuple[int, float]] = []
        if query.mode in ("vector", "hybrid"):
            if query.vector is None:
                raise RuntimeError("vector search without a query vector")
            vector_hits = await self._vector_search(store_id, query.vector, query.depth, condition, params)
        if query.mode in ("keyword", "hybrid"):
            keyword_hits = await self._keyword_search(store_id, query.text, query.depth, condition, params, now)
        order = ranked(vector_hits, keyword_hits, query)
        chunks = await self._chunks([rowid for rowid, _ in order], now)  # one expiring since the sweep is left out
        return [Hit(chunks[rowid], score) for rowid, score in order if rowid in chunks]

    async def file_chunks(self, store_id: str, file_id: str, *, with_embeddings: bool) -> list[StoredChunk]:
        def read(db: apsw.Connection) -> list[StoredChunk]:
            dimensions = _rows(
                db, "SELECT DISTINCT dimension FROM chunks WHERE store_id = ? AND file_id = ?", (store_id, file_id)
            )
            if not dimensions:
                return []
            # a store has one dimension, so its vectors sit in one vec0 table: one query, joined
            vector = f"v.embedding FROM chunks c JOIN {_vector_table(dimensions[0][0])} v ON v.id = c.id"
            rows = _rows(
                db,
                "SELECT c.chunk_id, c.content, c.metadata, c.chunk_metadata, c.file_id, c.filename, "
                + (vector if with_embeddings else "NULL FROM chunks c")
                + " WHERE c.store_id = ? AND c.file_id = ? ORDER BY c.id",
                (store_id, file_id),
            )
            return [
                StoredChunk(chunk_id, content, json.loads(metadata), json.loads(chunk_metadata), file, filename,
                            array("f", blob).tolist() if blob is not None else None)
                for chunk_id, content, metadata, chunk_metadata, file, filename, blob in rows
            ]  # fmt: skip

        return await self._run(read)

    async def _keyword_search(
        self, store_id: str, text: str, k: int, condition: str, params: list[Any], now: float
    ) -> list[tuple[int, float]]:
        query = _fts_query(text)
        if not query:
            return []
        rows = await self._run(
            lambda db: _rows(
                db,
                "SELECT chunks.id, -bm25(chunks_fts) AS score FROM chunks_fts"
                " JOIN chunks ON chunks.id = chunks_fts.rowid"
                f" WHERE chunks_fts MATCH ? AND chunks.store_id = ? AND {LIVE} AND ({condition})"
                " ORDER BY score DESC LIMIT ?",
                (query, store_id, now, *params, k),
            )
        )
        return [(int(rowid), float(score)) for rowid, score in rows]

    async def _vector_search(
        self, store_id: str, vector: Sequence[float], k: int, condition: str, params: list[Any]
    ) -> list[tuple[int, float]]:
        import numpy as np  # loads with the first vector search, not at server start

        matrix = self._matrices.get(store_id)
        if matrix is None:
            generation = self._generations.get(store_id, 0)
            matrix = await self._run(lambda db: _load_matrix(db, store_id))
            if self._generations.get(store_id, 0) == generation:  # no write ended meanwhile: it is current
                self._matrices[store_id] = matrix
        if len(matrix.ids) == 0:
            return []
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        if norm == 0.0:
            return []
        if matrix.vectors.shape[1] != len(query):
            raise BadRequestError(f"the query has {len(query)} dimensions; the store has {matrix.vectors.shape[1]}")
        scores = await self._products.scores(matrix.vectors, query / norm)
        if condition != "1":
            allowed = await self._run(
                lambda db: [
                    r[0]
                    for r in _rows(
                        db, f"SELECT id FROM chunks WHERE store_id = ? AND ({condition})", (store_id, *params)
                    )
                ]
            )
            mask = np.isin(matrix.ids, np.asarray(allowed, dtype=np.int64))
            scores = np.where(mask, scores, -np.inf)
        count = min(k, len(scores))
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top])]
        return [(int(matrix.ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]

    async def _chunks(self, rowids: list[int], now: float) -> dict[int, StoredChunk]:
        if not rowids:
            return {}
        marks = ", ".join("?" for _ in rowids)
        rows = await self._run(
            lambda db: _rows(
                db,
                "SELECT id, chunk_id, content, metadata, chunk_metadata, file_id, filename FROM chunks"
                f" WHERE id IN ({marks}) AND {LIVE}",
                (*rowids, now),
            )
        )
        return {int(r[0]): StoredChunk(r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6]) for r in rows}


def _extension_path() -> str:
    """sqlite-vec's loadable library, found without importing the package (whose import pulls numpy)."""
    spec = importlib.util.find_spec("sqlite_vec")
    if spec is None or not spec.submodule_search_locations:
        raise StartupError("the sqlite-vec package is not installed (pip install sqlite-vec)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "vec0")


def _float32(vector: Sequence[float]) -> bytes:
    return array("f", vector).tobytes()  # sqlite-vec's float32 BLOB: packed native floats


def _rows(db: apsw.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    return list(db.execute(sql, params).fetchall())


def _vector_table(dimension: int) -> str:
    return f"vectors_{int(dimension)}"


def _delete_rows(db: apsw.Connection, where: str, params: Sequence[Any]) -> None:
    rows = _rows(db, f"SELECT id, content, dimension FROM chunks WHERE {where}", params)
    if not rows:
        return
    db.executemany(
        "INSERT INTO chunks_fts (chunks_fts, rowid, content) VALUES ('delete', ?, ?)",
        [(rowid, content) for rowid, content, _ in rows],
    )
    for dimension in {dimension for _, _, dimension in rows}:
        db.executemany(
            f"DELETE FROM {_vector_table(dimension)} WHERE id = ?",
            [(rowid,) for rowid, _, of in rows if of == dimension],
        )
    db.executemany("DELETE FROM chunks WHERE id = ?", [(rowid,) for rowid, _, _ in rows])


def _migrate(db: apsw.Connection) -> None:
    ((current,),) = _rows(db, "PRAGMA user_version")
    for number, script in enumerate(MIGRATIONS, start=1):
        if number > current:
            with db:
                db.execute(script)
                db.execute(f"PRAGMA user_version = {number}")


def _nearest_expiry(db: apsw.Connection) -> float | None:
    ((nearest,),) = _rows(db, "SELECT MIN(expires_at) FROM chunks")
    return float(nearest) if nearest is not None else None


def _load_matrix(db: apsw.Connection, store_id: str) -> _Matrix:
    import numpy as np

    dimensions = _rows(db, "SELECT DISTINCT dimension FROM chunks WHERE store_id = ?", (store_id,))
    if not dimensions:
        return _Matrix(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
    (dimension,) = dimensions[0]
    rows = _rows(
        db,
        f"SELECT c.id, v.embedding FROM chunks c JOIN {_vector_table(dimension)} v ON v.id = c.id WHERE c.store_id = ?",
        (store_id,),
    )
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dimension).copy()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors /= np.where(norms == 0, 1, norms)
    return _Matrix(ids, vectors)
