from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BuiltinEvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Rows generated at once: the inference provider's queue takes them, and batches them where it
    # batches (inline::llama-cpp serves one generation per model at a time before issue 21).
    max_concurrency: int = Field(default=4, ge=1, le=64)
    kvstore: dict[str, object] | None = None  # Llama Stack's; accepted and unused (jobs live in the state database)
