from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LocalFsDatasetIOConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_rows: int = Field(default=500, ge=1)  # rows read and inserted per transaction
    kvstore: dict[str, object] | None = None  # Llama Stack's; accepted and unused (rows live in the state database)
