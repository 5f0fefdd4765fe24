"""Shields: safety classifiers registered against safety providers, in the resource registry.

A shield's `provider_resource_id` is what its provider runs (for llama-guard, the model; for
pattern-based providers, just a name), and its `params` are the provider's settings for it, as
the provider checked and completed them at registration.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from pocketstack._generated import models, protocols
from pocketstack.config import ShieldInput
from pocketstack.core.registry import Resource, Source
from pocketstack.core.resources import SHIELD, skipped_provider
from pocketstack.core.stack import Stack
from pocketstack.providers.base import SafetyProvider
from pocketstack.wire.fields import given

log = logging.getLogger(__name__)


def shield_response(resource: Resource) -> models.Shield:
    return models.Shield(
        identifier=resource.identifier,
        provider_id=resource.provider_id,
        provider_resource_id=resource.provider_resource_id,
        params=resource.body.get("params", {}),
    )


class ShieldsApi(protocols.Shields):
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.table = stack.table(SHIELD)

    def provider(self, provider_id: str | None) -> tuple[str, SafetyProvider]:
        instance = self.stack.provider_for("safety", provider_id, must_name="shield")
        return instance.config.provider_id, cast(SafetyProvider, instance.impl)

    async def _build(self, shield: ShieldInput, source: Source) -> Resource:
        provider_id, provider = self.provider(shield.provider_id)
        provider_resource_id = shield.provider_shield_id or shield.shield_id
        params = await provider.check_shield(provider_resource_id, shield.params)
        return Resource(SHIELD.type, shield.shield_id, provider_id, provider_resource_id, source, 0, {"params": params})

    async def sync_from_config(self) -> None:
        """Register `registered_resources.shields`; one a provider refuses stops start-up."""
        await self.table.sync_config(
            self.stack.config.registered_resources.shields,
            lambda shield: self._build(shield, "config"),
            name=lambda shield: shield.shield_id,
            left_out=lambda shield: skipped_provider(self.stack.skipped, shield.provider_id),
        )

    async def lookup(self, identifier: str) -> Resource:
        return await self.table.get(identifier)

    async def list_shields(self) -> models.ListShieldsResponse:
        return models.ListShieldsResponse(data=[shield_response(r) for r in await self.table.all()])

    async def register_shield(self, request: models.RegisterShieldRequest) -> models.Shield:
        params: dict[str, Any] = given(request.params, {})
        shield = ShieldInput(
            shield_id=request.shield_id,
            provider_id=given(request.provider_id),
            provider_shield_id=given(request.provider_shield_id),
            params=params,
        )
        resource = await self._build(shield, "api")
        return shield_response(await self.table.add(resource))

    async def get_shield(self, request: models.GetShieldRequest) -> models.Shield:
        return shield_response(await self.lookup(request.identifier))

    async def unregister_shield(self, request: models.UnregisterShieldRequest) -> None:
        await self.table.remove(await self.lookup(request.identifier))
