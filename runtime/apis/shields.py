"""Shields: safety classifiers registered against safety providers, in the resource registry.

A shield's `provider_resource_id` is what its provider runs (for llama-guard, the model; for
pattern-based providers, just a name), and its `params` are the provider's settings for it, as
the provider checked and completed them at registration.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from pocketstack._generated import models
from pocketstack.config import ConfigError, ShieldInput
from pocketstack.errors import BadRequestError, PocketStackError, ResourceNotFoundError, ServiceUnavailableError
from pocketstack.fields import given
from pocketstack.providers.base import SafetyProvider
from pocketstack.registry import Resource, Source
from pocketstack.stack import Stack

log = logging.getLogger(__name__)
SHIELD = "shield"


def shield_response(resource: Resource) -> models.Shield:
    return models.Shield(
        identifier=resource.identifier,
        provider_id=resource.provider_id,
        provider_resource_id=resource.provider_resource_id,
        params=resource.body.get("params", {}),
    )


class ShieldsApi:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def provider(self, provider_id: str | None) -> tuple[str, SafetyProvider]:
        instances = self.stack.providers_of("safety")
        if not instances:
            raise ServiceUnavailableError(
                "The safety API is not enabled in this distribution (add `safety` to `apis` and a safety provider).",
                code="service_not_enabled",
            )
        if provider_id is None:
            if len(instances) > 1:
                known = ", ".join(i.config.provider_id for i in instances)
                raise BadRequestError(f"Name the shield's provider_id (one of {known}).", param="provider_id")
            return instances[0].config.provider_id, cast(SafetyProvider, instances[0].impl)
        for instance in instances:
            if instance.config.provider_id == provider_id:
                return provider_id, cast(SafetyProvider, instance.impl)
        known = ", ".join(i.config.provider_id for i in instances)
        raise BadRequestError(f"No safety provider '{provider_id}' (known: {known}).", param="provider_id")

    async def _build(self, shield: ShieldInput, source: Source) -> Resource:
        provider_id, provider = self.provider(shield.provider_id)
        provider_resource_id = shield.provider_shield_id or shield.shield_id
        params = await provider.check_shield(provider_resource_id, shield.params)
        return Resource(SHIELD, shield.shield_id, provider_id, provider_resource_id, source, 0, {"params": params})

    async def sync_from_config(self) -> None:
        """Register `registered_resources.shields`; one a provider refuses stops start-up."""
        resources = []
        for index, shield in enumerate(self.stack.config.registered_resources.shields):
            if shield.provider_id in self.stack.skipped:
                log.info(
                    "shield %s left out with its provider: %s", shield.shield_id, self.stack.skipped[shield.provider_id]
                )
                continue
            try:
                resources.append(await self._build(shield, "config"))
            except PocketStackError as exc:
                raise ConfigError(f"registered_resources.shields[{index}] ({shield.shield_id}): {exc.message}") from exc
        await self.stack.registry.sync_source(SHIELD, "config", resources)

    async def lookup(self, identifier: str) -> Resource:
        resource = await self.stack.registry.get(SHIELD, identifier)
        if resource is None:
            raise ResourceNotFoundError("shield", identifier)
        return resource

    async def list_shields(self) -> models.ListShieldsResponse:
        return models.ListShieldsResponse(data=[shield_response(r) for r in await self.stack.registry.all(SHIELD)])

    async def register_shield(self, request: models.RegisterShieldRequest) -> models.Shield:
        params: dict[str, Any] = given(request.params, {})
        shield = ShieldInput(
            shield_id=request.shield_id,
            provider_id=given(request.provider_id),
            provider_shield_id=given(request.provider_shield_id),
            params=params,
        )
        resource = await self._build(shield, "api")
        added = await self.stack.registry.add(
            SHIELD, resource.identifier, resource.provider_id, resource.provider_resource_id, resource.body
        )
        return shield_response(added)

    async def get_shield(self, request: models.GetShieldRequest) -> models.Shield:
        return shield_response(await self.lookup(request.identifier))

    async def unregister_shield(self, request: models.UnregisterShieldRequest) -> None:
        resource = await self.lookup(request.identifier)
        if resource.source == "config":
            raise BadRequestError(
                f"Shield '{resource.identifier}' comes from the run config's registered_resources; "
                "remove it there (it would be registered again at the next start).",
                code="shield_from_config",
            )
        await self.stack.registry.remove(SHIELD, resource.identifier)
