from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class CodeScannerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
