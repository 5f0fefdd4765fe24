from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LocalFsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storage_dir: str | None = Field(
        default=None, description="where file bytes are kept (default: $POCKETSTACK_HOME/files)"
    )
