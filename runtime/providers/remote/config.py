"""The settings of an OpenAI-compatible remote, and what each concrete remote does differently."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class OpenAICompatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="base URL of the OpenAI-compatible API, including /v1")
    api_key: str | None = Field(default=None, description="sent as a Bearer token (provider data may override)")
    connect_timeout_s: float = Field(default=3.0, gt=0)
    read_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="longest wait for an answer: a whole answer, or a stream's next chunk (however its bytes trickle)",
    )
    health_interval_s: float = Field(default=10.0, gt=0, description="how often the background probe runs")
    failure_threshold: int = Field(default=3, ge=1, description="failures in a row that open the breaker")
    cooldown_s: float = Field(default=15.0, ge=0, description="how long an open breaker keeps traffic away")


@dataclass(frozen=True)
class Quirks:
    """What a concrete remote does differently from OpenAI's API."""

    provider_data_key: str | None = None  # X-LlamaStack-Provider-Data field with a per-request key
    unsupported_fields: frozenset[str] = field(default_factory=frozenset)  # dropped before sending
