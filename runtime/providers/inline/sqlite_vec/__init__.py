from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.sqlite_vec.config import SqliteVecConfig


def create(config: SqliteVecConfig, context: ProviderContext) -> Provider:
    # Imported on use, after the server listens; explicit so PyInstaller's analysis sees it.
    from pocketstack.providers.inline.sqlite_vec.provider import SqliteVecStore

    return SqliteVecStore(config, context)


SPEC = ProviderSpec(
    api="vector_io",
    provider_type="inline::sqlite-vec",
    description="Vectors in sqlite-vec, keyword search with FTS5 (BM25), exact search in memory (offline).",
    config_model=SqliteVecConfig,
    create=create,
)
