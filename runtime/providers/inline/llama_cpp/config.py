from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pocketstack.config import pocketstack_home


class LlamaCppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models_dir: Path = Field(
        default_factory=lambda: pocketstack_home() / "models",
        description="the model store: every *.gguf here is served as llama-cpp/<file stem>",
    )
    allowed_model_dirs: list[Path] = Field(
        default_factory=list,
        description="folders besides models_dir whose GGUF files POST /v1/models may register by path",
    )
    context_length: int = Field(
        default=4096, ge=0, description="context window of chat models (0: the model's own; capped by it)"
    )
    threads: int | None = Field(default=None, ge=1, description="llama.cpp threads (default: all cores)")
    memory_budget_mb: int = Field(
        default=4096, ge=1, description="model files kept loaded at once; idle ones beyond it are unloaded (LRU)"
    )
    prompt_cache_mb: int = Field(
        default=256,
        ge=0,
        description="saved prompt states of recent conversations per chat model (LRU); 0 keeps only the live one",
    )
    parallel: int = Field(
        default=1,
        ge=1,
        le=64,
        description="answers a chat model generates at once, decoded together in one batch per token "
        "(continuous batching); each has the full context window, so its KV cache memory is this many times "
        "larger. 1 generates one at a time",
    )
    max_waiting: int = Field(
        default=16, ge=0, description="requests that may wait for a busy model before the next gets 429"
    )
