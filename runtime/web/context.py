"""Per-request values that cross the API boundary without being API fields.

`X-LlamaStack-Provider-Data` carries per-request provider keys (`openai_api_key`, ...); which
provider served a request goes back out as `X-PocketStack-Provider`. Both travel in context
variables, so API methods keep taking one request model.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

from aiohttp import web

from pocketstack.errors import BadRequestError

PROVIDER_DATA_HEADER = "X-LlamaStack-Provider-Data"
SERVED_BY_HEADER = "X-PocketStack-Provider"

provider_data: ContextVar[dict[str, Any]] = ContextVar("provider_data", default={})  # noqa: B039 (never mutated)
served_by: ContextVar[str | None] = ContextVar("served_by", default=None)


def read_provider_data(request: web.Request) -> dict[str, Any]:
    raw = request.headers.get(PROVIDER_DATA_HEADER)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequestError(f"{PROVIDER_DATA_HEADER} is not valid JSON: {exc}", code="invalid_provider_data") from exc
    if not isinstance(data, dict):
        raise BadRequestError(f"{PROVIDER_DATA_HEADER} must be a JSON object.", code="invalid_provider_data")
    return data
