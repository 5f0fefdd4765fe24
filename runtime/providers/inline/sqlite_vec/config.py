from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SqliteVecConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    db_path: str | None = Field(
        default=None, description="the vector database (default: $POCKETSTACK_HOME/vector_io/sqlite_vec.db)"
    )
