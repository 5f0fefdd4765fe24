"""The `server` section's security keys, as Llama Stack 0.7 spells them (plus PocketStack's own, marked)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

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


# Authentication (`server.auth`): Llama Stack's AuthenticationConfig, with PocketStack's API keys.

# Llama Stack's default claims_mapping (OAuth2TokenAuthConfig): claim -> attribute.
DEFAULT_CLAIMS_MAPPING = {
    "sub": "roles",
    "username": "roles",
    "groups": "teams",
    "team": "teams",
    "project": "projects",
    "tenant": "namespaces",
    "namespace": "namespaces",
}


class OAuth2JWKSConfig(BaseModel):
    """Where the issuer's public keys are (Llama Stack's OAuth2JWKSConfig)."""

    model_config = ConfigDict(extra="forbid")

    uri: str
    token: str | None = Field(default=None, description="a token that authorises reading the JWKS")
    key_recheck_period: int = Field(default=3600, ge=0, description="seconds between refetches of the JWKS")


class OAuth2IntrospectionConfig(BaseModel):
    """An RFC 7662 token introspection endpoint (Llama Stack's OAuth2IntrospectionConfig)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    client_id: str
    client_secret: str
    send_secret_in_body: bool = False


def _nonempty_mapping(value: dict[str, str]) -> dict[str, str]:
    for key, attribute in value.items():
        if not attribute:
            raise ValueError(f"claims_mapping value cannot be empty: {key}")
    return value


class OAuth2TokenAuthConfig(BaseModel):
    """Bearer tokens issued by an OAuth2/OIDC server: JWTs checked against its JWKS, or introspected."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["oauth2_token"] = "oauth2_token"
    audience: str = "llama-stack"
    verify_tls: bool = True
    tls_cafile: Path | None = None
    issuer: str | None = None
    claims_mapping: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CLAIMS_MAPPING))
    jwks: OAuth2JWKSConfig | None = None
    introspection: OAuth2IntrospectionConfig | None = None

    _mapping = field_validator("claims_mapping")(_nonempty_mapping)

    @model_validator(mode="after")
    def _one_mode(self) -> OAuth2TokenAuthConfig:
        if not self.jwks and not self.introspection:
            raise ValueError("One of jwks or introspection must be configured")
        if self.jwks and self.introspection:
            raise ValueError("At present only one of jwks or introspection should be configured")
        return self


class CustomAuthConfig(BaseModel):
    """A webhook that is sent the token and the request, and answers the principal and attributes."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["custom"] = "custom"
    endpoint: str


class ApiKeysAuthConfig(BaseModel):
    """PocketStack's own: static API keys, stored hashed in the state database (`pocketstack keys`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["api_keys"] = "api_keys"
    # How long a key's lookup is remembered: a revoked key stops working within this many seconds.
    cache_seconds: float = Field(default=5.0, ge=0, le=3600)


AuthProviderConfig = Annotated[
    OAuth2TokenAuthConfig | CustomAuthConfig | ApiKeysAuthConfig, Field(discriminator="type")
]


class AuthenticationConfig(BaseModel):
    """`server.auth`: who the caller is (provider_config), and what they may reach (the two policies,
    Llama Stack's rule lists, read by access control)."""

    model_config = ConfigDict(extra="forbid")

    provider_config: AuthProviderConfig | None = None
    route_policy: list[dict[str, Any]] = Field(default_factory=list)
    access_policy: list[dict[str, Any]] = Field(default_factory=list)


# Quotas (`server.quota`): Llama Stack's QuotaConfig, plus PocketStack's shorter periods and token limits.

PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class QuotaKVStore(BaseModel):
    """Llama Stack's KVStoreReference: the storage backend the counters live in."""

    model_config = ConfigDict(extra="allow")

    backend: str
    namespace: str | None = None


class QuotaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kvstore: QuotaKVStore
    anonymous_max_requests: int = Field(default=100, ge=0)
    authenticated_max_requests: int = Field(default=1000, ge=0)
    period: Literal["minute", "hour", "day"] = "day"  # Llama Stack has `day` only
    # PocketStack's own: model tokens (prompt + completion, as the models report them) per period; None: no limit.
    anonymous_max_tokens: int | None = Field(default=None, ge=0)
    authenticated_max_tokens: int | None = Field(default=None, ge=0)

    @property
    def period_seconds(self) -> int:
        return PERIOD_SECONDS[self.period]
