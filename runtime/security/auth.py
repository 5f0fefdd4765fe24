"""Authentication (`server.auth`): every request but the open ones carries `Authorization: Bearer ...`,
which the configured provider turns into a `User` (principal and attributes) or refuses with a 401.

Providers, as in Llama Stack 0.7: `oauth2_token` (a JWT checked against the issuer's JWKS, or RFC
7662 introspection) and `custom` (a webhook), in security/oauth2.py; and PocketStack's `api_keys`
(here): static keys made with `pocketstack keys create`, stored hashed in the state database.

The token is never logged, nor put in an error message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp
from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from pocketstack.errors import AuthenticationError
from pocketstack.security.config import ApiKeysAuthConfig, AuthenticationConfig, CustomAuthConfig
from pocketstack.security.principal import User, reset_current_user, set_current_user
from pocketstack.storage import Database
from pocketstack.storage.api_keys import ApiKeyStore, hash_key

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Llama Stack's public routes (openapi_extra x-public): monitors and load balancers reach them without a token.
PUBLIC_PATHS = frozenset({"/v1/health", "/v1/version"})
USER_KEY = web.RequestKey("user", User)


class TokenRejected(Exception):
    """The credentials are not valid; the message says why, without repeating them."""


class AuthProvider(Protocol):
    async def validate(self, token: str, request: web.Request) -> User: ...

    def missing_message(self) -> str:
        """What a request without credentials is told."""
        ...

    async def close(self) -> None: ...


class ApiKeysProvider:
    """Static keys from the state database; a found key is remembered for `cache_seconds`."""

    MAX_CACHED = 10_000

    def __init__(self, config: ApiKeysAuthConfig, database: Callable[[], Database]) -> None:
        self._config = config
        self._database = database
        self._cache: dict[str, tuple[float, User]] = {}

    async def validate(self, token: str, request: web.Request) -> User:
        digest = hash_key(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await ApiKeyStore(self._database()).find(token)
        if found is None:
            self._cache.pop(digest, None)
            raise TokenRejected("Invalid API key")
        user = User(found.principal, found.attributes)
        if self._config.cache_seconds > 0:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = (now + self._config.cache_seconds, user)
        return user

    def missing_message(self) -> str:
        return "Authentication required. Please provide your API key as a Bearer token in the Authorization header"

    async def close(self) -> None:
        self._cache.clear()


def create_provider(config: AuthenticationConfig, database: Callable[[], Database]) -> AuthProvider | None:
    """The provider `server.auth.provider_config` names; None when there is none (policies only)."""
    from pocketstack.security import oauth2

    provider_config = config.provider_config
    if provider_config is None:
        return None
    if isinstance(provider_config, ApiKeysAuthConfig):
        return ApiKeysProvider(provider_config, database)
    if isinstance(provider_config, CustomAuthConfig):
        return oauth2.CustomProvider(provider_config)
    return oauth2.OAuth2TokenProvider(provider_config)


def bearer_token(request: web.Request, provider: AuthProvider) -> str:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if not header:
        raise AuthenticationError(provider.missing_message(), code="missing_credentials")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("Invalid Authorization header format", code="invalid_authorization_header")
    return token


def authentication_middleware(provider: AuthProvider) -> Middleware:
    """Sets the request's User (security/principal.py) for the handler and everything it calls."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in PUBLIC_PATHS or path.rstrip("/") in PUBLIC_PATHS:
            return await handler(request)
        token = bearer_token(request, provider)
        try:
            user = await provider.validate(token, request)
        except TokenRejected as exc:
            raise AuthenticationError(str(exc), code="invalid_credentials") from None
        except TimeoutError:
            log.warning("authentication service timed out (%s %s)", request.method, path)
            raise AuthenticationError("Authentication service timeout", code="auth_service_timeout") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.warning("authentication service error (%s %s): %s", request.method, path, type(exc).__name__)
            raise AuthenticationError("Authentication service error", code="auth_service_error") from None
        request[USER_KEY] = user
        reset = set_current_user(user)
        try:
            return await handler(request)
        finally:
            reset_current_user(reset)

    return authenticate
