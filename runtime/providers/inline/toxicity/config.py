from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ToxicityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)  # a shield's params may set its own
