"""inline::localfs datasetio: each dataset's rows once, in the state database's dataset_rows table.

Rows are appended a batch at a time (`batch_rows` per transaction, the source read in a worker
thread between batches), so a large file is streamed in; an append that fails part way (a
malformed row) removes what it had stored, so a dataset holds all of it or none.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import Health, ProviderContext
from pocketstack.providers.datasetio import Row
from pocketstack.providers.inline.datasetio_localfs.config import LocalFsDatasetIOConfig
from pocketstack.storage import Database
from pocketstack.storage.sqlite import bounded


class LocalFsDatasetIO:
    def __init__(self, config: LocalFsDatasetIOConfig, context: ProviderContext) -> None:
        if context.database is None:
            raise RuntimeError("inline::localfs datasetio needs the state database")
        self._db: Database = context.database
        self._batch = config.batch_rows
        self._writing: dict[str, asyncio.Lock] = {}
        self._allowed = [folder.expanduser().resolve() for folder in config.allowed_dirs]

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def health(self) -> Health:
        return Health("OK")

    def local_file(self, uri: str) -> Path:
        raw = unquote(urlparse(uri).path) if uri.startswith("file://") else uri
        path = Path(raw).expanduser()
        if not path.is_absolute():
            raise BadRequestError(
                f"A local dataset path is absolute (or a file:// URI); '{raw}' is not.", param="source.uri"
            )
        resolved = path.resolve()  # symlinks followed: a link inside cannot point outside
        if not any(resolved.is_relative_to(folder) for folder in self._allowed):
            raise BadRequestError(
                f"'{raw}' is not inside a folder this datasetio provider's allowed_dirs lists "
                f"({', '.join(map(str, self._allowed)) or 'none configured'}).",
                param="source.uri",
                code="path_not_allowed",
            )
        if not resolved.is_file():
            raise BadRequestError(f"No file at '{raw}'.", param="source.uri", code="file_not_found")
        return resolved

    async def count(self, dataset_id: str) -> int:
        rows = await self._db.fetch("SELECT COUNT(*) AS n FROM dataset_rows WHERE dataset_id = ?", (dataset_id,))
        return int(rows[0]["n"])

    async def append(self, dataset_id: str, rows: Iterator[Row]) -> int:
        lock = self._writing.setdefault(dataset_id, asyncio.Lock())
        async with lock:
            start = await self.count(dataset_id)
            position = start
            try:
                while True:
                    batch = await asyncio.to_thread(lambda: list(itertools.islice(rows, self._batch)))
                    if not batch:
                        return position - start
                    statements = []
                    for row in batch:
                        statements.append(
                            (
                                "INSERT INTO dataset_rows (dataset_id, position, row) VALUES (?, ?, ?)",
                                (dataset_id, position, json.dumps(row, ensure_ascii=False)),
                            )
                        )
                        position += 1
                    await self._db.transaction(statements)
            except BaseException:
                await self._db.execute(
                    "DELETE FROM dataset_rows WHERE dataset_id = ? AND position >= ?", (dataset_id, start)
                )
                raise

    async def page(self, dataset_id: str, start_index: int, limit: int | None) -> tuple[list[Row], bool]:
        sql = "SELECT row FROM dataset_rows WHERE dataset_id = ? AND position >= ? ORDER BY position"
        params: tuple[Any, ...] = (dataset_id, bounded(start_index))
        if limit is not None:
            sql += " LIMIT ?"
            params += (bounded(limit + 1),)
        found = await self._db.fetch(sql, params)
        rows: list[Row] = [json.loads(r["row"]) for r in found]
        if limit is not None and len(rows) > limit:
            return rows[:limit], True
        return rows, False

    async def drop(self, dataset_id: str) -> None:
        await self._db.execute("DELETE FROM dataset_rows WHERE dataset_id = ?", (dataset_id,))
        self._writing.pop(dataset_id, None)
