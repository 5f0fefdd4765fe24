"""Request id, client-version check and the one error shape, as aiohttp middlewares."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from pocketstack.errors import (
    InsufficientStorageError,
    PocketStackError,
    UpgradeRequiredError,
    disk_full,
    error_body,
)
from pocketstack.web.context import SERVED_BY_HEADER, provider_data, read_provider_data, served_by

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID = "X-Request-ID"
CLIENT_VERSION = "X-LlamaStack-Client-Version"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
SERVED_BY_KEY = web.RequestKey("served_by", str)
INTERNAL_MESSAGE = "Internal server error: An unexpected error occurred."

# aiohttp's own HTTP errors (routing, body size) keep their status; these name their type.
_HTTP_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "method_not_allowed",
    413: "invalid_request_error",
}
# Exceptions from the standard library that Llama Stack maps to statuses of their own.
_BUILTIN_STATUSES: tuple[tuple[type[BaseException], int, str], ...] = (
    (NotImplementedError, 501, "not_implemented_error"),
    (asyncio.TimeoutError, 504, "timeout_error"),
    (ConnectionError, 502, "upstream_error"),
)


_BUILTIN_MESSAGES = {
    501: "Not implemented by this server or provider.",
    502: "An upstream service could not be reached.",
    504: "The operation timed out.",
}


def _json_error(status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request gets an id (the caller's, or a new one) that log lines and the answer carry."""
    request[REQUEST_ID_KEY] = request.headers.get(REQUEST_ID) or uuid.uuid4().hex
    return await handler(request)


@web.middleware
async def provider_data_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Per-request provider keys from X-LlamaStack-Provider-Data, for the providers to read."""
    token = provider_data.set(read_provider_data(request))
    served_by.set(None)
    try:
        response = await handler(request)
        # A plain response is prepared after this returns, outside the handler's context.
        request[SERVED_BY_KEY] = served_by.get() or ""
        return response
    finally:
        provider_data.reset(token)


async def add_response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the request id on every answer (streams and errors too); who served it."""
    response.headers[REQUEST_ID] = request.get(REQUEST_ID_KEY) or request.headers.get(REQUEST_ID) or uuid.uuid4().hex
    provider = request.get(SERVED_BY_KEY) or served_by.get()
    if provider is not None:
        response.headers[SERVED_BY_HEADER] = provider


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Whatever goes wrong, the caller gets `{"error": {...}}` JSON, never aiohttp's plain text."""
    try:
        return await handler(request)
    except PocketStackError as exc:
        if exc.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.path, exc.status, exc.message)
        return _json_error(exc.status, exc.body(), exc.headers or None)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.text is None or exc.text.startswith(f"{exc.status}:") else exc.text
        if exc.status == 404:
            message = f"No route matches {request.method} {request.path}."
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}; allowed: {exc.headers.get('Allow', '')}."
        kind = _HTTP_TYPES.get(exc.status, "http_error")
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        return _json_error(exc.status, error_body(message, type=kind), headers)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if disk_full(exc):  # wherever it ran out (a spooled upload, SQLite, a provider's store): the same 507
            log.error("%s %s -> 507: the disk is full: %r", request.method, request.path, exc)
            full = InsufficientStorageError()
            return _json_error(full.status, full.body())
        for exception_class, status, type_name in _BUILTIN_STATUSES:
            if isinstance(exc, exception_class):
                log.warning("%s %s -> %s: %r", request.method, request.path, status, exc, exc_info=exc)
                return _json_error(status, error_body(_BUILTIN_MESSAGES[status], type=type_name))
        log.exception(
            "unhandled error in %s %s (request %s)", request.method, request.path, request.get(REQUEST_ID_KEY)
        )
        return _json_error(500, error_body(INTERNAL_MESSAGE, type="internal_server_error"))


def client_version_middleware(server_version: str, legacy_routes: frozenset[str] = frozenset()) -> Middleware:
    """426 when the client's major.minor differs from the server's (Llama Stack's rule).

    A header that is absent or does not parse as a version is let through, as Llama Stack does; so
    is a request to one of the `legacy_routes` (an older Llama Stack's paths, served for its clients).
    """
    server_parts = _major_minor(server_version)
    if server_parts is None:
        raise ValueError(f"server version {server_version!r} has no major.minor")

    @web.middleware
    async def check_client_version(request: web.Request, handler: Handler) -> web.StreamResponse:
        client_version = request.headers.get(CLIENT_VERSION, "")
        client_parts = _major_minor(client_version)
        legacy = request.match_info.route.resource is not None and (
            request.match_info.route.resource.canonical in legacy_routes
        )
        if client_parts is not None and client_parts != server_parts and not legacy:
            raise UpgradeRequiredError(
                f"Client version {client_version} is not compatible with server version {server_version}. "
                f"Use a {server_parts[0]}.{server_parts[1]}.x client "
                "(or set LLAMA_STACK_DISABLE_VERSION_CHECK=1 on the server).",
                code="client_version_mismatch",
            )
        return await handler(request)

    return check_client_version


def _major_minor(version: str) -> tuple[int, int] | None:
    parts = version.strip().split(".")
    if len(parts) < 2:
        return None
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return None
