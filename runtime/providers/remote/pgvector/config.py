from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PgVectorConfig(BaseModel):
    """Llama Stack's pgvector settings (host, port, db, user, password), plus the pool's size."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="localhost", description="the PostgreSQL server")
    port: int = Field(default=5432, ge=1, le=65535)
    db: str = Field(default="postgres", description="the database (the pgvector extension is created in it)")
    user: str = Field(default="postgres")
    password: str | None = Field(default=None)
    table_prefix: str = Field(
        default="pocketstack", pattern=r"^[a-z_][a-z0-9_]{0,40}$", description="names this server's tables"
    )
    pool_size: int = Field(default=8, ge=1, le=100, description="connections kept open")
    connect_timeout_s: float = Field(default=5.0, gt=0)
