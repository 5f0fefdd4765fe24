"""Llama Stack's remote authentication providers: `oauth2_token` (JWT against a JWKS, or RFC 7662
introspection) and `custom` (a webhook). JOSE is PyJWT's; the HTTP calls are aiohttp's."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
import time
from typing import Any
from urllib.parse import urlparse

import aiohttp
import jwt
from aiohttp import hdrs, web
from pydantic import BaseModel, ValidationError

from pocketstack.security.auth import TokenRejected
from pocketstack.security.config import CustomAuthConfig, OAuth2JWKSConfig, OAuth2TokenAuthConfig
from pocketstack.security.principal import User

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=10)
# A token naming a key the cached JWKS lacks refetches it (the issuer rotated its keys), at most this often.
UNKNOWN_KID_REFETCH_S = 10.0
# Asymmetric signatures only: a JWKS holds public keys, and `none` or HMAC with a public key is an attack.
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA", "Ed25519"}
)
# Not sent to a custom webhook: the credentials themselves and other secrets a request may carry.
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "x-llamastack-provider-data"})


def attributes_from_claims(claims: dict[str, Any], mapping: dict[str, str]) -> dict[str, list[str]]:
    """Llama Stack's get_attributes_from_claims: a claim (dotted path, else a literal dotted key) -> an
    attribute; a string claim is split on spaces (OAuth2 `scope`), a list taken as is."""
    attributes: dict[str, list[str]] = {}
    for claim_key, attribute_key in mapping.items():
        claim: object = claims
        for key in claim_key.split("."):
            if isinstance(claim, dict) and key in claim:
                claim = claim[key]
            else:
                claim = None
                break
        if claim is None and claim_key in claims:
            claim = claims[claim_key]
        if isinstance(claim, list):
            values = [str(value) for value in claim]
        elif isinstance(claim, str):
            values = claim.split()
        else:
            continue
        attributes.setdefault(attribute_key, []).extend(values)
    return attributes


def _ssl_of(verify: bool, cafile: str | None) -> ssl.SSLContext | bool:
    if not verify:
        return False
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    return True


class _Http:
    """One client session per provider, made in the server's loop when first needed."""

    def __init__(self, ssl_setting: ssl.SSLContext | bool = True) -> None:
        self._ssl = ssl_setting
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT, connector=aiohttp.TCPConnector(ssl=self._ssl))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class JwksCache:
    """The issuer's public keys by kid: fetched when first needed, again every `key_recheck_period`
    seconds, and when a token names a kid not in them (no more than once per UNKNOWN_KID_REFETCH_S)."""

    def __init__(self, config: OAuth2JWKSConfig, http: _Http) -> None:
        self._config = config
        self._http = http
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = -math.inf
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None) -> jwt.PyJWK:
        now = time.monotonic()
        if now - self._fetched_at >= self._config.key_recheck_period or not self._keys:
            await self._refresh(self._fetched_at)
        found = self._lookup(kid)
        if found is None and time.monotonic() - self._fetched_at >= UNKNOWN_KID_REFETCH_S:
            await self._refresh(self._fetched_at)
            found = self._lookup(kid)
        if found is None:
            raise TokenRejected("Invalid JWT token: its signing key is not in the issuer's key set")
        return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))  # a token without kid, an issuer with one key
        return self._keys.get(kid)

    async def _refresh(self, seen: float) -> None:
        async with self._lock:
            if self._fetched_at != seen:
                return  # another request refreshed them meanwhile
            headers = {hdrs.AUTHORIZATION: f"Bearer {self._config.token}"} if self._config.token else {}
            try:
                async with self._http.session.get(self._config.uri, headers=headers) as response:
                    if response.status != 200:
                        raise aiohttp.ClientResponseError(
                            response.request_info, (), status=response.status, message="JWKS fetch failed"
                        )
                    document = await response.json(content_type=None)
                self.fetches += 1
                key_set = jwt.PyJWKSet.from_dict(document)
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as exc:
                self._fetched_at = time.monotonic()  # rate-limit retries too
                if self._keys:
                    log.warning("refetching the JWKS from %s failed (%s); keeping the keys held", self._config.uri, exc)
                    return
                log.warning("fetching the JWKS from %s failed: %s", self._config.uri, exc)
                raise aiohttp.ClientError("JWKS unavailable") from exc
            self._keys = {key.key_id: key for key in key_set.keys}
            self._fetched_at = time.monotonic()


class OAuth2TokenProvider:
    def __init__(self, config: OAuth2TokenAuthConfig) -> None:
        self._config = config
        cafile = config.tls_cafile.expanduser().as_posix() if config.tls_cafile else None
        self._http = _Http(_ssl_of(config.verify_tls, cafile))
        self.jwks = JwksCache(config.jwks, self._http) if config.jwks is not None else None

    async def validate(self, token: str, request: web.Request) -> User:
        if self.jwks is not None:
            return await self._validate_jwt(token, self.jwks)
        return await self._introspect(token)

    async def _validate_jwt(self, token: str, jwks: JwksCache) -> User:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("Invalid JWT token") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenRejected("Invalid JWT token: unsupported signing algorithm")
        kid = header.get("kid")
        key = await jwks.key(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self._config.audience,
                issuer=self._config.issuer,
                options={"verify_exp": True, "verify_aud": True, "verify_iss": self._config.issuer is not None},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("Invalid JWT token: expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("Invalid JWT token: wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("Invalid JWT token: wrong issuer") from None
        except jwt.PyJWTError:
            raise TokenRejected("Invalid JWT token") from None
        principal = claims.get("sub")
        if not isinstance(principal, str) or not principal:
            raise TokenRejected("Invalid JWT token: no subject")
        return User(principal, attributes_from_claims(claims, self._config.claims_mapping))

    async def _introspect(self, token: str) -> User:
        introspection = self._config.introspection
        assert introspection is not None  # the config has one of jwks and introspection
        form = {"token": token}
        headers = {}
        if introspection.send_secret_in_body:
            form |= {"client_id": introspection.client_id, "client_secret": introspection.client_secret}
        else:
            headers[hdrs.AUTHORIZATION] = aiohttp.encode_basic_auth(
                introspection.client_id, introspection.client_secret
            )
        async with self._http.session.post(introspection.url, data=form, headers=headers) as response:
            if response.status != 200:
                log.warning("token introspection answered %s", response.status)
                raise TokenRejected(f"Token introspection failed: {response.status}")
            try:
                fields = await response.json(content_type=None)
            except (json.JSONDecodeError, aiohttp.ContentTypeError):
                raise TokenRejected("Token introspection error") from None
        if not isinstance(fields, dict) or not fields.get("active"):
            raise TokenRejected("Token not active")
        principal = fields.get("sub") or fields.get("username")
        if not isinstance(principal, str) or not principal:
            raise TokenRejected("Token introspection error: no sub or username")
        return User(principal, attributes_from_claims(fields, self._config.claims_mapping))

    def missing_message(self) -> str:
        if self._config.issuer:
            return f"Authentication required. Please provide a valid OAuth2 Bearer token from {self._config.issuer}"
        if self._config.introspection:
            domain = urlparse(self._config.introspection.url).netloc
            return f"Authentication required. Please provide a valid OAuth2 Bearer token validated by {domain}"
        return "Authentication required. Please provide a valid OAuth2 Bearer token in the Authorization header"

    async def close(self) -> None:
        await self._http.close()


class _AuthResponse(BaseModel):
    """What a custom endpoint answers (Llama Stack's AuthResponse)."""

    principal: str
    attributes: dict[str, list[str]] | None = None
    message: str | None = None


class CustomProvider:
    """POSTs Llama Stack's AuthRequest `{"api_key", "request": {"path", "headers", "params"}}` to the endpoint;
    a 200 with `{"principal", "attributes"}` authenticates, any other status refuses."""

    def __init__(self, config: CustomAuthConfig) -> None:
        self._config = config
        self._http = _Http()

    async def validate(self, token: str, request: web.Request) -> User:
        headers = {name.lower(): value for name, value in request.headers.items()}
        params: dict[str, list[str]] = {}
        for name, value in request.query.items():
            params.setdefault(name, []).append(value)
        body = {
            "api_key": token,
            "request": {
                "path": request.path,
                "headers": {name: value for name, value in headers.items() if name not in _PRIVATE_HEADERS},
                "params": params,
            },
        }
        async with self._http.session.post(self._config.endpoint, json=body) as response:
            if response.status != 200:
                log.warning("the authentication endpoint answered %s", response.status)
                raise TokenRejected(f"Authentication failed: {response.status}")
            try:
                answer = _AuthResponse.model_validate(await response.json(content_type=None))
            except (json.JSONDecodeError, aiohttp.ContentTypeError, ValidationError):
                raise TokenRejected("Invalid authentication response format") from None
        return User(answer.principal, answer.attributes or {})

    def missing_message(self) -> str:
        domain = urlparse(self._config.endpoint).netloc
        if domain:
            return f"Authentication required. Please provide your API key as a Bearer token (validated by {domain})"
        return "Authentication required. Please provide your API key as a Bearer token in the Authorization header"

    async def close(self) -> None:
        await self._http.close()
