"""The `server` section's security keys, as Llama Stack 0.7 spells them (plus PocketStack's own, marked)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class CorsConfig(BaseModel):
    """Llama Stack's CORSConfig: which web origins may call the API from a browser (none by default)."""

    model_config = ConfigDict(extra="forbid")

    allow_origins: list[str] = Field(default_factory=list)
    allow_origin_regex: str | None = None
    allow_methods: list[str] = Field(default_factory=lambda: ["OPTIONS"])
    allow_headers: list[str] = Field(default_factory=list)
    allow_credentials: bool = False
    expose_headers: list[str] = Field(default_factory=list)
    max_age: int = Field(default=600, ge=0)

    @field_validator("allow_origin_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"allow_origin_regex does not compile: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("Cannot use wildcard origins with credentials enabled")
        return self

    def allows(self, origin: str) -> bool:
        if "*" in self.allow_origins or origin in self.allow_origins:
            return True
        return self.allow_origin_regex is not None and re.fullmatch(self.allow_origin_regex, origin) is not None


def cors_of(value: bool | CorsConfig | dict[str, Any] | None) -> CorsConfig | None:
    """Llama Stack's `cors: true` (localhost pages of any port, for development), a config, or none."""
    if value is None or value is False:
        return None
    if value is True:
        return CorsConfig(
            allow_origin_regex=r"https?://localhost:\d+",
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization", "X-Requested-With"],
        )
    return value if isinstance(value, CorsConfig) else CorsConfig.model_validate(value)
