from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.remote.pgvector.config import PgVectorConfig


def create(config: PgVectorConfig, context: ProviderContext) -> Provider:
    # Imported on use, after the server listens (asyncpg is the [pgvector] extra).
    from pocketstack.providers.remote.pgvector.provider import PgVectorStore

    return PgVectorStore(config, context)


SPEC = ProviderSpec(
    api="vector_io",
    provider_type="remote::pgvector",
    description="Chunks and vectors in PostgreSQL with pgvector: exact search, full-text keyword search, shared by "
    "several servers (pip install 'pocketstack[pgvector]').",
    config_model=PgVectorConfig,
    create=create,
)
