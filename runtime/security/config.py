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


class OutboundConfig(BaseModel):
    """PocketStack's own `server.outbound`: where the URLs a user supplies (MCP servers...) may lead.

    By default the server reaches only public addresses for a user: loopback, link-local (the cloud
    metadata address too), private, unspecified, multicast and reserved ones are refused. `allow`
    lists what the operator lets through besides: a host name (`mcp.internal`, `*.corp.example`),
    an address or network (`10.1.2.3`, `192.168.0.0/16`, `::1`), a URL prefix
    (`http://127.0.0.1:8000/mcp`: that server, under that path, whatever it resolves to), or `*`.
    URLs the operator writes in the run config (remote providers, registered tool groups) are
    trusted as written and need no entry.
    """

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(default_factory=list)
    max_response_bytes: int = Field(default=16 * 1024 * 1024, gt=0, description="bytes one outbound exchange may read")
    timeout_s: float = Field(default=30.0, gt=0, description="deadline of one outbound exchange")

    @field_validator("allow")
    @classmethod
    def _entries_parse(cls, value: list[str]) -> list[str]:
        from pocketstack.security.outbound import parse_allow_entry  # (the parser lives with the guard)

        for entry in value:
            parse_allow_entry(entry)  # ValueError names the entry
        return value
