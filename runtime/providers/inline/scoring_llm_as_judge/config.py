from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LlmAsJudgeScoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Rows judged at once: enough to keep a judge busy, few enough to stay inside inference's queue.
    max_concurrency: int = Field(default=4, ge=1, le=64)
    # A judge answers with a grade or a short verdict; a runaway answer is cut here (None: the model's limit).
    max_tokens: int | None = Field(default=512, ge=1)
    # A judge call answered 429 (a busy model, a rate-limited remote) is tried again this many times.
    max_retries: int = Field(default=6, ge=0)
