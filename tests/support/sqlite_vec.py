"""The sqlite-vec provider opened on a test's folder, as the server opens it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pocketstack.providers.base import ProviderContext
from pocketstack.providers.inline.sqlite_vec.config import SqliteVecConfig
from pocketstack.providers.inline.sqlite_vec.provider import SqliteVecStore


@asynccontextmanager
async def open_store(folder: Path) -> AsyncIterator[SqliteVecStore]:
    store = SqliteVecStore(SqliteVecConfig(db_path=str(folder / "vectors.db")), ProviderContext("vec", folder))
    await store.initialize()
    try:
        yield store
    finally:
        await store.shutdown()
