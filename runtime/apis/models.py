"""Models: registration against inference providers, lookup, and OpenAI-shaped listing."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from pocketstack._generated import models, protocols
from pocketstack.config import ModelInput, ModelTarget
from pocketstack.core.registry import Resource, Source
from pocketstack.core.resources import MODEL
from pocketstack.core.stack import ProviderInstance, Stack
from pocketstack.errors import BadRequestError, PocketStackError, ResourceNotFoundError
from pocketstack.providers.base import ModelProvider
from pocketstack.wire.fields import given

log = logging.getLogger(__name__)

LISTING_TIMEOUT_S = 5.0
OWNED_BY = "llama_stack"


def identifier_for(model_id: str, provider_id: str, provider_model_id: str) -> str:
    """Llama Stack's rule: an id that differs from the provider's is an alias and names the
    model; otherwise provider ids can clash, so `<provider_id>/<provider_model_id>` does."""
    return model_id if model_id != provider_model_id else f"{provider_id}/{provider_model_id}"


def model_response(resource: Resource) -> models.Model:
    return models.Model.model_validate(
        {**resource.body, "id": resource.identifier, "created": resource.created_at, "owned_by": OWNED_BY}
    )


def check_metadata(metadata: dict[str, Any]) -> None:
    """A registration's metadata may hold anything, except wrong shapes of the keys the server itself reads
    from it: `fallbacks` (the inference chain; only the `fallbacks` field, checked against its providers,
    sets it) and `sampling_defaults` (numbers a response echoes). Else the model registers and every later
    use of it fails."""
    if "fallbacks" in metadata:
        raise BadRequestError(
            "metadata.fallbacks is the server's own record; give fallbacks in the request's `fallbacks` field.",
            code="invalid_request",
            param="metadata.fallbacks",
        )
    defaults = metadata.get("sampling_defaults")
    if defaults is not None and not (
        isinstance(defaults, dict)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in defaults.values())
    ):
        raise BadRequestError(
            "metadata.sampling_defaults maps sampling parameters (temperature, top_p...) to numbers.",
            code="invalid_request",
            param="metadata.sampling_defaults",
        )


class ModelsApi(protocols.Models):
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.table = stack.table(MODEL)

    def _provider(self, provider_id: str | None) -> ProviderInstance:
        candidates = self.stack.providers_of("inference")
        if provider_id is None:
            if len(candidates) == 1:
                return candidates[0]
            if not candidates:
                raise BadRequestError("No inference provider is configured, so no model can be registered.")
            names = ", ".join(p.config.provider_id for p in candidates)
            raise BadRequestError(
                f"Several inference providers run ({names}): say which with provider_id.", param="provider_id"
            )
        for candidate in candidates:
            if candidate.config.provider_id == provider_id:
                return candidate
        names = ", ".join(p.config.provider_id for p in candidates) or "none"
        raise BadRequestError(
            f"Inference provider '{provider_id}' is not configured (configured: {names}).",
            code="provider_not_found",
            param="provider_id",
        )

    async def _build(self, model: ModelInput, source: Source) -> Resource:
        check_metadata(model.metadata)
        instance = self._provider(model.provider_id)
        provider_id = instance.config.provider_id
        provider_model_id = model.provider_model_id or model.model_id
        trusted = source == "config"  # the operator's paths, as written; a user's are confined (llama_cpp)
        check = await cast(ModelProvider, instance.impl).check_model(
            provider_model_id, model.model_type, trusted=trusted
        )
        model_type = model.model_type or check.model_type
        identifier = identifier_for(model.model_id, provider_id, provider_model_id)
        fallbacks = []
        for target in model.fallbacks:
            fallback = self._provider(target.provider_id)
            await cast(ModelProvider, fallback.impl).check_model(
                target.provider_model_id, model.model_type or model_type, trusted=trusted
            )
            fallbacks.append(target.model_dump())
        body = {
            "identifier": identifier,
            "provider_id": provider_id,
            "provider_resource_id": provider_model_id,
            "type": MODEL.type,
            "model_type": model_type,
            # The provider's facts win over the caller's claims.
            "metadata": {**model.metadata, **check.metadata, **({"fallbacks": fallbacks} if fallbacks else {})},
        }
        return Resource(MODEL.type, identifier, provider_id, provider_model_id, source, int(time.time()), body)

    async def sync_from_config(self) -> None:
        """Register `registered_resources.models`; a model the provider refuses stops start-up."""
        await self.table.sync_config(
            self.stack.config.registered_resources.models,
            lambda model: self._build(model, "config"),
            name=lambda model: model.model_id,
        )

    async def sync_from_providers(self) -> None:
        """Register what each inference provider serves on its own (its model listing)."""
        for instance in self.stack.providers_of("inference"):
            provider_id = instance.config.provider_id
            try:
                listed = await asyncio.wait_for(cast(ModelProvider, instance.impl).list_models(), LISTING_TIMEOUT_S)
            except (PocketStackError, TimeoutError) as exc:  # an offline remote keeps its last listing
                log.warning("models of %s not refreshed: %s", provider_id, getattr(exc, "message", exc) or "timeout")
                continue
            resources = [
                Resource(
                    MODEL.type,
                    f"{provider_id}/{m.provider_model_id}",
                    provider_id,
                    m.provider_model_id,
                    "provider",
                    int(time.time()),
                    {
                        "identifier": f"{provider_id}/{m.provider_model_id}",
                        "provider_id": provider_id,
                        "provider_resource_id": m.provider_model_id,
                        "type": MODEL.type,
                        "model_type": m.model_type,
                        "metadata": m.metadata,
                    },
                )
                for m in listed
            ]
            await self.table.sync_provider(provider_id, resources)

    async def lookup(self, model_id: str) -> Resource:
        """By identifier; else by the provider's id when exactly one model has it."""
        found = await self.table.find(model_id)
        if found is not None:
            return found
        matches = await self.table.by_provider_resource_id(model_id)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(m.identifier for m in matches)
            raise BadRequestError(f"Model '{model_id}' is ambiguous; use one of: {names}.", code="ambiguous_model")
        raise ResourceNotFoundError("model", model_id)

    async def register_model(self, request: models.RegisterModelRequest) -> models.Model:
        model_type = given(request.model_type)
        model = ModelInput(
            model_id=request.model_id,
            provider_id=given(request.provider_id),
            provider_model_id=given(request.provider_model_id),
            model_type=model_type.value if model_type is not None else None,
            metadata=given(request.metadata, {}),
            # The spec lets a target carry other keys (as Llama Stack's models ignore them); only these two
            # are read, so the others are dropped here rather than refused by the stored model's schema.
            fallbacks=[
                ModelTarget(provider_id=t.provider_id, provider_model_id=t.provider_model_id)
                for t in given(request.fallbacks, [])
            ],
        )
        resource = await self._build(model, "api")
        return model_response(await self.table.add(resource))

    async def get_model(self, request: models.GetModelRequest) -> models.Model:
        return model_response(await self.lookup(request.model_id))

    async def unregister_model(self, request: models.UnregisterModelRequest) -> models.DeleteModelResponse:
        resource = await self.lookup(request.model_id)
        await self.table.remove(resource)
        return models.DeleteModelResponse(id=resource.identifier, deleted=True)

    async def openai_list_models(self) -> models.OpenAIListModelsResponse:
        data = []
        for resource in await self.table.all():
            model = model_response(resource)
            data.append(
                models.OpenAIModel(
                    id=model.identifier,
                    created=model.created,
                    owned_by=model.owned_by,
                    custom_metadata={
                        **model.metadata,  # first: clients read model_type etc. from here, so those win
                        "model_type": model.model_type.value,
                        "provider_id": model.provider_id,
                        "provider_resource_id": model.provider_resource_id,
                    },
                )
            )
        return models.OpenAIListModelsResponse(data=data)
