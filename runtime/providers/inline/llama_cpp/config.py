from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pocketstack.config import pocketstack_home


class LlamaCppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models_dir: Path = Field(
        default_factory=lambda: pocketstack_home() / "models",
        description="where relative GGUF paths of registered models are looked up",
    )
