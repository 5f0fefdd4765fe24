"""What every provider is: a config model, an implementation, and a factory in PROVIDERS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel

from pocketstack.security.outbound import OutboundGuard

if TYPE_CHECKING:  # the generated models load with the APIs, after the server listens
    from pocketstack._generated import models
    from pocketstack._generated.protocols import (
        Agents,
        DatasetIO,
        Datasets,
        Inference,
        Models,
        Scoring,
        ScoringFunctions,
        VectorIO,
    )
    from pocketstack.storage import Database
    from pocketstack.storage.owners import Owner, Visibility
    from pocketstack.web.uploads import FileBody, Upload

HealthStatus = Literal["OK", "Error", "Not Implemented"]


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status} | ({"message": self.message} if self.message else {})


class Routers:
    """The APIs a provider may call in turn (llama-guard runs a chat model through inference, eval runs
    a candidate and scores its answers).

    Typed by the generated Protocols, so a provider depends on the wire contract, never on an API
    module. Filled in as the stack assembles the APIs, after every provider has started: a
    provider uses them while serving requests, never in `initialize`.
    """

    def __init__(self) -> None:
        self._apis: dict[str, Any] = {}

    def _get(self, name: str) -> Any:
        if name not in self._apis:
            raise RuntimeError(f"the {name} API is not assembled yet")
        return self._apis[name]

    @property
    def inference(self) -> Inference:
        return self._get("inference")  # type: ignore[no-any-return]

    @inference.setter
    def inference(self, api: Inference) -> None:
        self._apis["inference"] = api

    @property
    def models(self) -> Models:
        return self._get("models")  # type: ignore[no-any-return]

    @models.setter
    def models(self, api: Models) -> None:
        self._apis["models"] = api

    @property
    def vector_io(self) -> VectorIO:
        return self._get("vector_io")  # type: ignore[no-any-return]

    @vector_io.setter
    def vector_io(self, api: VectorIO) -> None:
        self._apis["vector_io"] = api

    @property
    def datasets(self) -> Datasets:
        return self._get("datasets")  # type: ignore[no-any-return]

    @datasets.setter
    def datasets(self, api: Datasets) -> None:
        self._apis["datasets"] = api

    @property
    def dataset_io(self) -> DatasetIO:
        return self._get("dataset_io")  # type: ignore[no-any-return]

    @dataset_io.setter
    def dataset_io(self, api: DatasetIO) -> None:
        self._apis["dataset_io"] = api

    @property
    def scoring_functions(self) -> ScoringFunctions:
        return self._get("scoring_functions")  # type: ignore[no-any-return]

    @scoring_functions.setter
    def scoring_functions(self, api: ScoringFunctions) -> None:
        self._apis["scoring_functions"] = api

    @property
    def scoring(self) -> Scoring:
        return self._get("scoring")  # type: ignore[no-any-return]

    @scoring.setter
    def scoring(self, api: Scoring) -> None:
        self._apis["scoring"] = api

    @property
    def agents(self) -> Agents:
        return self._get("agents")  # type: ignore[no-any-return]

    @agents.setter
    def agents(self, api: Agents) -> None:
        self._apis["agents"] = api


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may rely on from the server: its id, where state lives, the other APIs."""

    provider_id: str
    home: Path
    database: Database | None = None  # the state database (open before providers start)
    routers: Routers = field(default_factory=Routers)
    outbound: OutboundGuard = field(default_factory=OutboundGuard)  # for URLs a user supplies


class Provider(Protocol):
    async def initialize(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def health(self) -> Health: ...


class Stateless:
    """For providers with nothing to open or close: always healthy while the process runs."""

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def health(self) -> Health:
        return Health("OK")


@dataclass(frozen=True)
class ModelCheck:
    """A provider's verdict on a model being registered: its type and metadata to store."""

    model_type: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderModel:
    """A model a provider serves without registration (its own listing)."""

    provider_model_id: str
    model_type: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServedModel:
    """The registered model a request resolved to, as the provider needs it."""

    identifier: str
    provider_model_id: str
    model_type: str
    metadata: dict[str, Any]


class ModelProvider(Provider, Protocol):
    """A provider that serves models (inference): it vets registrations and lists its own."""

    async def check_model(self, provider_model_id: str, model_type: str | None, *, trusted: bool = False) -> ModelCheck:
        """Raise BadRequestError when the provider cannot serve this model (of that type). `trusted`: the
        operator wrote it in the run config (a model file may be anywhere); else a user asks, through the API."""
        ...

    async def list_models(self) -> list[ProviderModel]: ...


class InferenceProvider(ModelProvider, Protocol):
    async def chat_completion(
        self, model: ServedModel, request: models.ChatCompletionRequest
    ) -> models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]: ...

    async def completion(
        self, model: ServedModel, request: models.CompletionRequest
    ) -> models.Completion | AsyncIterator[models.Completion]: ...

    async def embeddings(self, model: ServedModel, request: models.EmbeddingsRequest) -> models.EmbeddingsResponse: ...

    async def rerank(self, model: ServedModel, request: models.RerankRequest) -> models.RerankResponse: ...


@dataclass(frozen=True)
class TokenCounts:
    """Each text's length in a model's tokens, and how many tokens one input may have in all."""

    counts: list[int]
    context_length: int  # including the special tokens every input gets
    special_tokens: int  # added to every input (BOS/CLS, EOS/SEP)


class TokenCounter(Protocol):
    """An inference provider that can count tokens with a model's own tokenizer (optional)."""

    async def count_tokens(self, model: ServedModel, texts: list[str]) -> TokenCounts: ...


@dataclass(frozen=True)
class ProviderSpec:
    api: str
    provider_type: str
    description: str
    config_model: type[BaseModel]
    create: Callable[[Any, ProviderContext], Provider]
    requires: tuple[str, ...] = ()  # modules that must be importable (an extra's packages)
    extra: str | None = None  # the pip extra that installs them: pocketstack[<extra>]


class FilesProvider(Provider, Protocol):
    """Stores uploaded files: bytes somewhere, metadata answered in OpenAI's shapes."""

    async def upload(
        self, upload: Upload, purpose: str, expires_after_s: int | None, owner: Owner | None = None
    ) -> models.OpenAIFileObject: ...

    async def list_files(
        self, *, after: str | None, limit: int, order: str, purpose: str | None, visible: Visibility | None = None
    ) -> models.ListFilesResponse:
        """A page of the files `visible` lets the request see (storage/owners.py)."""
        ...

    async def get(self, file_id: str) -> models.OpenAIFileObject: ...

    async def owner(self, file_id: str) -> Owner | None:
        """Who uploaded the file (None: unowned); a 404 when there is no such file."""
        ...

    async def delete(self, file_id: str) -> models.OpenAIFileDeleteResponse: ...

    async def content(self, file_id: str) -> FileBody: ...

    def on_removed(self, listener: Callable[[list[str]], Awaitable[None]]) -> None:
        """Have `listener` called with the ids of files deleted or expired, after they are gone."""
        ...


# Safety: shields run by safety providers.


@dataclass(frozen=True)
class ServedShield:
    """The registered shield a request resolved to, as its provider needs it."""

    identifier: str
    provider_resource_id: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    """A shield's judgement of one text or conversation, in terms both wire shapes can express."""

    flagged: bool
    categories: dict[str, bool] = field(default_factory=dict)
    category_scores: dict[str, float] = field(default_factory=dict)
    violation_level: Literal["info", "warn", "error"] = "error"
    user_message: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ShieldMessage:
    role: str
    text: str


class SafetyProvider(Provider, Protocol):
    async def check_shield(self, provider_resource_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The shield's params as stored (defaults filled); BadRequestError when they cannot work."""
        ...

    async def run_shield(self, shield: ServedShield, messages: list[ShieldMessage]) -> Verdict: ...

    async def run_moderation(self, shield: ServedShield, texts: list[str]) -> list[Verdict]: ...
