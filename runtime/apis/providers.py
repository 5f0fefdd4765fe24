"""Providers: what the distribution started, with redacted config and a live health probe."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pocketstack._generated import models, protocols
from pocketstack.core.stack import ProviderInstance, Stack
from pocketstack.errors import ResourceNotFoundError
from pocketstack.providers.base import Health

HEALTH_TIMEOUT_S = 5.0
REDACTED = "********"
_SECRET_KEY = re.compile(r"(api_?key|password|secret|token|credential)", re.IGNORECASE)


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) and v else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


async def probe(instance: ProviderInstance) -> Health:
    try:
        return await asyncio.wait_for(instance.impl.health(), HEALTH_TIMEOUT_S)
    except TimeoutError:
        return Health("Error", f"health check timed out after {HEALTH_TIMEOUT_S:g} s")
    except Exception as exc:  # a failing probe is the answer, not a failure of this request
        return Health("Error", f"health check failed: {exc}")


class ProvidersApi(protocols.Providers):
    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def _info(self, instance: ProviderInstance) -> models.ProviderInfo:
        health = await probe(instance)
        return models.ProviderInfo(
            api=instance.api,
            provider_id=instance.config.provider_id,
            provider_type=instance.config.provider_type,
            config=redact(instance.settings.model_dump(mode="json")),
            health=health.as_dict(),
        )

    async def list_providers(self) -> models.ListProvidersResponse:
        infos = await asyncio.gather(*(self._info(p) for p in self.stack.providers.values()))
        return models.ListProvidersResponse(data=list(infos))

    async def inspect_provider(self, request: models.InspectProviderRequest) -> models.ProviderInfo:
        instance = self.stack.providers.get(request.provider_id)
        if instance is None:
            raise ResourceNotFoundError("provider", request.provider_id)
        return await self._info(instance)
