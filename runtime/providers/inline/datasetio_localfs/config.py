from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class LocalFsDatasetIOConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Folders whose files a dataset may name by local path (an absolute path or a file:// URI);
    # none by default, so an API caller cannot read the server's files.
    allowed_dirs: list[Path] = Field(default_factory=list)
    batch_rows: int = Field(default=500, ge=1)  # rows read and inserted per transaction
    kvstore: dict[str, object] | None = None  # Llama Stack's; accepted and unused (rows live in the state database)
