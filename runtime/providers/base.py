"""What every provider is: a config model, an implementation, and a factory in PROVIDERS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

HealthStatus = Literal["OK", "Error", "Not Implemented"]


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status} | ({"message": self.message} if self.message else {})


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may rely on from the server: its id and where state lives."""

    provider_id: str
    home: Path


class Provider(Protocol):
    async def initialize(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def health(self) -> Health: ...


@dataclass(frozen=True)
class ModelCheck:
    """A provider's verdict on a model being registered: extra metadata to store with it."""

    metadata: dict[str, Any] = field(default_factory=dict)


class ModelProvider(Provider, Protocol):
    """A provider that serves models (inference): it vets registrations."""

    async def check_model(self, provider_model_id: str, model_type: str) -> ModelCheck:
        """Raise BadRequestError when the provider cannot serve this model."""
        ...


@dataclass(frozen=True)
class ProviderSpec:
    api: str
    provider_type: str
    description: str
    config_model: type[BaseModel]
    create: Callable[[Any, ProviderContext], Provider]
