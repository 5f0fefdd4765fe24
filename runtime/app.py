"""create_app(config): the whole server as an aiohttp Application; CLI, tests and binary share it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from pocketstack import LLAMA_STACK_VERSION
from pocketstack._generated.routes import Apis, add_routes, served_tags
from pocketstack.apis.inference import InferenceApi
from pocketstack.apis.inspect import InspectApi
from pocketstack.apis.models import ModelsApi
from pocketstack.apis.providers import ProvidersApi
from pocketstack.config import StackConfig
from pocketstack.middlewares import (
    add_response_headers,
    client_version_middleware,
    error_middleware,
    provider_data_middleware,
    request_id_middleware,
)
from pocketstack.stack import Stack

STACK = web.AppKey("stack", Stack)
DISABLE_VERSION_CHECK_ENV = ("LLAMA_STACK_DISABLE_VERSION_CHECK", "POCKETSTACK_DISABLE_VERSION_CHECK")


def _version_check_disabled() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in DISABLE_VERSION_CHECK_ENV)


def create_app(config: StackConfig) -> web.Application:
    """Build (but do not start) the server; ConfigError when the config cannot work."""
    stack = Stack(config)
    middlewares: list[Middleware] = [request_id_middleware, error_middleware, provider_data_middleware]
    if not _version_check_disabled():
        middlewares.append(client_version_middleware(LLAMA_STACK_VERSION))
    app = web.Application(middlewares=middlewares, client_max_size=config.server.max_request_bytes)
    app[STACK] = stack
    app.on_response_prepare.append(add_response_headers)

    models_api = ModelsApi(stack)
    apis = Apis(providers=ProvidersApi(stack), models=models_api, inference=InferenceApi(stack, models_api))
    inspect = InspectApi(stack, served_tags(apis) | {"Inspect"})
    add_routes(app, dataclasses.replace(apis, inspect=inspect))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await stack.start()
        try:
            await models_api.sync_from_providers()
            await models_api.sync_from_config()
        except BaseException:
            await stack.stop()
            raise
        yield
        await stack.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
