"""Inference: chat, text completion and embeddings, routed to the provider that owns the model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from pocketstack._generated import models
from pocketstack.apis.models import ModelsApi
from pocketstack.errors import BadRequestError, ServiceUnavailableError
from pocketstack.providers.base import InferenceProvider, ServedModel
from pocketstack.stack import Stack

_ARTICLE = {"llm": "an", "embedding": "an", "rerank": "a"}


class InferenceApi:
    def __init__(self, stack: Stack, models_api: ModelsApi) -> None:
        self.stack = stack
        self.models = models_api

    async def _route(self, model_id: str, model_type: str, purpose: str) -> tuple[ServedModel, InferenceProvider]:
        resource = await self.models.lookup(model_id)
        actual = resource.body["model_type"]
        if actual != model_type:
            raise BadRequestError(
                f"Model '{resource.identifier}' is {_ARTICLE[actual]} {actual} model; {purpose} needs "
                f"{_ARTICLE[model_type]} {model_type} model.",
                code="wrong_model_type",
                param="model",
            )
        instance = self.stack.providers.get(resource.provider_id)
        if instance is None:
            raise ServiceUnavailableError(
                f"Provider '{resource.provider_id}' of model '{resource.identifier}' is not running."
            )
        served = ServedModel(resource.identifier, resource.provider_resource_id, actual, resource.body["metadata"])
        return served, cast(InferenceProvider, instance.impl)

    async def openai_chat_completion(
        self, request: models.ChatCompletionRequest
    ) -> models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]:
        served, provider = await self._route(request.model, "llm", "chat")
        return await provider.chat_completion(served, request)

    async def openai_completion(
        self, request: models.CompletionRequest
    ) -> models.Completion | AsyncIterator[models.Completion]:
        served, provider = await self._route(request.model, "llm", "text completion")
        return await provider.completion(served, request)

    async def openai_embeddings(self, request: models.EmbeddingsRequest) -> models.EmbeddingsResponse:
        served, provider = await self._route(request.model, "embedding", "embedding")
        return await provider.embeddings(served, request)
