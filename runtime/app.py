"""create_app(config): the whole server as an aiohttp Application; CLI, tests and binary share it.

Start-up runs in two halves so that the server listens within its cold-start budget however
large the API grows. Before it listens, only what can reject a bad setup runs: the config and
every provider's settings are validated, storage opens, and every route is registered from the
light operation table. The API modules, the generated models and the providers' implementations
(most of the import time) load right after, off the event loop (`pocketstack.assembly`), and
the providers start; a request that arrives meanwhile waits for them, `/v1/health` answers at
once. A failure in that half stops `pocketstack run` with its message like any start-up error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from types import ModuleType

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from pocketstack import LLAMA_STACK_VERSION
from pocketstack._generated.operations import API_TAGS, OPERATIONS
from pocketstack.config import ConfigError, StackConfig, pocketstack_home
from pocketstack.core.stack import Stack
from pocketstack.errors import ServiceUnavailableError
from pocketstack.providers.threads import quiet_blas
from pocketstack.security.auth import authentication_middleware, create_provider
from pocketstack.security.browser import BrowserGuard, is_loopback
from pocketstack.security.quota import Quota
from pocketstack.storage import Database, open_database
from pocketstack.telemetry.instruments import tracer
from pocketstack.telemetry.middleware import add_trace_header, telemetry_middleware
from pocketstack.web.middlewares import (
    add_response_headers,
    client_version_middleware,
    error_middleware,
    provider_data_middleware,
    request_id_middleware,
)
from pocketstack.web.uploads import SPOOL, UploadSpool

log = logging.getLogger(__name__)
DISABLE_VERSION_CHECK_ENV = ("LLAMA_STACK_DISABLE_VERSION_CHECK", "POCKETSTACK_DISABLE_VERSION_CHECK")


class Readiness:
    """The handler of every operation, once the APIs are assembled, or why they could not be."""

    def __init__(self) -> None:
        self.task: asyncio.Task[dict[str, Handler]] | None = None

    @property
    def failure(self) -> BaseException | None:
        task = self.task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def handlers(self) -> dict[str, Handler]:
        if self.task is None:
            raise ServiceUnavailableError("the server has not started")
        try:
            return await asyncio.shield(self.task)  # a client that leaves must not cancel start-up
        except Exception as exc:
            raise ServiceUnavailableError(f"the server failed to start: {exc}") from exc

    def dispatcher(self, operation_id: str, tag: str) -> Handler:
        span_name = f"{tag}.{operation_id}"
        attributes = {"pocketstack.api": tag, "pocketstack.operation": operation_id}

        async def dispatch(request: web.Request) -> web.StreamResponse:
            handler = (await self.handlers())[operation_id]
            with tracer.start_as_current_span(span_name, attributes=attributes):  # the API span
                return await handler(request)

        return dispatch

    def health(self, operation_id: str) -> Handler:
        """Health answers while the APIs load (the process is up and queues requests)."""
        dispatch = self.dispatcher(operation_id, "Inspect")

        async def health(request: web.Request) -> web.StreamResponse:
            if self.task is not None and self.task.done():
                if self.failure is not None:
                    message = f"the server failed to start: {self.failure}"
                    return web.json_response({"status": "Error", "message": message}, status=503)
                return await dispatch(request)
            return web.json_response({"status": "OK"})

        return health


STACK = web.AppKey("stack", Stack)
METRICS_PATH = "/metrics"  # Prometheus' default scrape path; behind authentication like every route


async def prometheus_metrics(request: web.Request) -> web.Response:
    from pocketstack.telemetry.pipeline import prometheus_text  # the SDK: loaded with the APIs, not before

    body = await asyncio.to_thread(prometheus_text)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


# APIs Llama Stack 0.7 no longer serves: whoever calls them uses an older client, by definition.
PRE_0_7_TAGS = frozenset({"Agents", "ToolGroups", "ToolRuntime", "Telemetry"})


def _older_clients_routes() -> frozenset[str]:
    """Routes the client version check lets any client use: the APIs 0.7 dropped, and older paths."""
    routes = {op.aiohttp_path for op in OPERATIONS if op.tag in PRE_0_7_TAGS}
    routes |= {op.aiohttp_legacy_path for op in OPERATIONS if op.aiohttp_legacy_path is not None}
    return frozenset(routes)


READINESS = web.AppKey("readiness", Readiness)


def _version_check_disabled() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in DISABLE_VERSION_CHECK_ENV)


def _assembly() -> ModuleType:
    from pocketstack import assembly  # explicit, so PyInstaller's analysis sees it

    return assembly


async def _assemble(stack: Stack, served_tags: frozenset[str]) -> dict[str, Handler]:
    assembly = await asyncio.to_thread(_assembly)  # imports only: no event-loop state is touched
    handlers: dict[str, Handler] = await assembly.assemble(stack, served_tags)
    return handlers


def _check_exposure(config: StackConfig) -> None:
    """Beyond loopback, anyone on the network reaches the server: not without authentication (a token
    provider, or client certificates), unless the config says so (and then every start says it again)."""
    server = config.server
    authenticated = (server.auth is not None and server.auth.provider_config is not None) or bool(server.tls_cafile)
    if is_loopback(server.host) or authenticated:
        return
    if not server.allow_unauthenticated:
        raise ConfigError(
            f"server.host {server.host} is reachable beyond this machine and no authentication is configured "
            "(server.auth): anyone on the network could use the server. Configure server.auth, listen on "
            "127.0.0.1, or set server.allow_unauthenticated: true to serve everyone on purpose."
        )
    log.warning(
        "serving on %s with no authentication (server.allow_unauthenticated): anyone who reaches it can use it",
        server.host,
    )


def _quota_database(config: StackConfig, stack: Stack) -> Callable[[], Database]:
    """The database the quota counters live in: `server.quota.kvstore.backend`'s (the state database's
    connection when it is the same file)."""
    quota = config.server.quota
    assert quota is not None
    backend = config.storage.backends.get(quota.kvstore.backend)
    if backend is None:
        raise ConfigError(f"server.quota.kvstore names backend '{quota.kvstore.backend}', which storage.backends lacks")
    path = backend.db_path.expanduser()
    if path == config.storage.metadata_db():
        return lambda: stack.database
    opened: list[Database] = []

    async def close() -> None:
        while opened:
            opened.pop().close()

    def database() -> Database:
        if not opened:
            opened.append(open_database(path))
        return opened[0]

    stack.on_stop(close)
    return database


def create_app(config: StackConfig) -> web.Application:
    """Build (but do not start) the server; ConfigError when the config cannot work."""
    quiet_blas()
    _check_exposure(config)
    stack = Stack(config)
    guard = BrowserGuard.for_server(config.server.host, config.server.allowed_hosts, config.server.cors_config)
    middlewares: list[Middleware] = [telemetry_middleware] if config.telemetry.enabled else []
    middlewares += [
        request_id_middleware,
        error_middleware,
        guard.middleware(),
    ]
    auth_provider = create_provider(config.server.auth, lambda: stack.database) if config.server.auth else None
    if auth_provider is not None:
        middlewares.append(authentication_middleware(auth_provider))
    if stack.access.routes:  # server.auth.route_policy, once the user is known; no layer per request without one
        middlewares.append(stack.access.route_middleware())
    quota = Quota(config.server.quota, _quota_database(config, stack)) if config.server.quota else None
    if quota is not None:
        middlewares.append(quota.middleware())
    middlewares.append(provider_data_middleware)
    if not _version_check_disabled():
        middlewares.append(client_version_middleware(LLAMA_STACK_VERSION, _older_clients_routes()))
    app = web.Application(middlewares=middlewares, client_max_size=config.server.max_request_bytes)
    app[STACK] = stack
    readiness = app[READINESS] = Readiness()
    # Uploads land beside the default file store, so keeping one is a rename, not a copy.
    app[SPOOL] = UploadSpool(pocketstack_home() / "files" / ".incoming", config.server.max_upload_bytes)
    app.on_response_prepare.append(add_response_headers)
    if config.telemetry.enabled:
        app.on_response_prepare.append(add_trace_header)
    app.on_response_prepare.append(guard.add_cors_headers)
    if quota is not None:
        app.on_response_prepare.append(quota.add_headers)

    served_tags = frozenset(API_TAGS.values())  # this build implements every API of its spec
    for op in OPERATIONS:
        if op.tag in served_tags:
            handler = readiness.health(op.operation_id) if op.operation_id == "health" else None
            dispatch = readiness.dispatcher(op.operation_id, op.tag)
            app.router.add_route(op.method, op.aiohttp_path, handler or dispatch)
            if op.aiohttp_legacy_path is not None:
                app.router.add_route(op.method, op.aiohttp_legacy_path, dispatch)
    app.router.add_get(METRICS_PATH, prometheus_metrics)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        stack.open_storage()
        app[SPOOL].remove_stale()
        readiness.task = asyncio.create_task(_assemble(stack, served_tags), name="pocketstack-assemble")
        try:
            yield
        finally:
            if not readiness.task.done():
                readiness.task.cancel()
            with contextlib.suppress(BaseException):
                await readiness.task
            await stack.stop()
            if auth_provider is not None:
                await auth_provider.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def import_default_models(app: web.Application) -> None:
    """A fresh home's first run: the installed default embedding model is converted into the store.

    `pocketstack run` calls this once it listens. The conversion runs in a thread while the server
    answers; the model is listed (and usable) as soon as it is whole. A failure is logged, never
    fatal: chat works without it, and `pocketstack models import` says what went wrong.
    """
    from pocketstack.modelstore.defaults import import_default_embedding, needs_default_embedding
    from pocketstack.providers.inline.llama_cpp.provider import LlamaCppProvider

    stack = app[STACK]
    try:
        await app[READINESS].handlers()
    except ServiceUnavailableError:
        return  # start-up failed; serve() reports why
    for instance in stack.providers_of("inference"):
        provider = instance.impl
        if not isinstance(provider, LlamaCppProvider):
            continue
        models_dir = provider.config.models_dir.expanduser()
        if not needs_default_embedding(models_dir):
            continue
        log.info("first run: importing the default embedding model into %s (a few seconds)", models_dir)
        started = time.monotonic()
        try:
            result = await asyncio.to_thread(import_default_embedding, models_dir)
        except Exception as exc:  # the server keeps serving chat; the user can import by hand
            log.warning("the default embedding model was not imported (%s); try `pocketstack models import`", exc)
            continue
        if result is None:
            continue
        await provider.rediscover()
        await stack.models_changed()
        log.info(
            "imported %s in %.1f s: served as %s/%s",
            result.path.name,
            time.monotonic() - started,
            instance.config.provider_id,
            result.path.stem,
        )
