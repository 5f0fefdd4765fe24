from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class BasicScoringConfig(BaseModel):
    """Nothing to set (Llama Stack's has no keys either)."""

    model_config = ConfigDict(extra="forbid")
