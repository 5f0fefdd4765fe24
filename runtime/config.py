"""The run config: Llama Stack's YAML keys, loaded once into pydantic and passed down.

Values may use `${env.NAME}` (required), `${env.NAME:=default}` (default when unset or empty)
and `${env.NAME:+value}` (value only when set). A value that substitutes to an empty string
becomes null, so `provider_id: ${env.OLLAMA_URL:+ollama}` switches a provider off.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pocketstack.security.config import AuthenticationConfig, CorsConfig, OutboundConfig, QuotaConfig, cors_of

DEFAULT_PORT = 8321
HOME_ENV = "POCKETSTACK_HOME"
MERGE_TAG = "tag:yaml.org,2002:merge"
_ENV_PATTERN = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?:(:=|:\+)([^}]*))?\}")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, line and key."""


def pocketstack_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or "~/.pocketstack").expanduser()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderConfig(_Strict):
    provider_id: str
    provider_type: str
    config: dict[str, Any] = Field(default_factory=dict)
    module: str | None = None
    # True: when the provider's packages (an extra) are not installed, leave it out, and the
    # shields registered against it, instead of refusing to start.
    optional: bool = False


class ModelTarget(_Strict):
    provider_id: str
    provider_model_id: str


class ModelInput(_Strict):
    model_id: str
    provider_id: str | None = None
    provider_model_id: str | None = None
    fallbacks: list[ModelTarget] = Field(default_factory=list)
    model_type: Literal["llm", "embedding", "rerank"] | None = None  # None: what the provider says
    metadata: dict[str, Any] = Field(default_factory=dict)


class VectorStoreInput(_Strict):
    """Llama Stack's registered vector store: created empty at start-up when it does not exist."""

    vector_store_id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    embedding_model: str | None = None  # default: vector_stores.default_embedding_model, else the built-in
    embedding_dimension: int | None = Field(default=None, ge=1)
    provider_id: str | None = None  # default: vector_stores.default_provider_id, else the first vector_io provider
    vector_store_name: str | None = None


class ShieldInput(_Strict):
    """Llama Stack's registered shield."""

    shield_id: str = Field(min_length=1)
    provider_id: str | None = None  # default: the only safety provider
    provider_shield_id: str | None = None  # default: the shield_id
    params: dict[str, Any] = Field(default_factory=dict)


Stage = Literal["input", "output"]
STAGES: tuple[Stage, ...] = ("input", "output")


class GuardrailInput(_Strict):
    """A shield run over chat completions: their input messages, their answers, or both."""

    shield_id: str = Field(min_length=1)
    stages: list[Stage] = Field(default_factory=lambda: list(STAGES), min_length=1)
    models: list[str] | None = None  # the model ids it guards; None: every chat model


class SafetyConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    default_shield_id: str | None = None  # serves /v1/moderations requests that name no model
    guardrails: list[GuardrailInput] = Field(default_factory=list)


class QualifiedModel(_Strict):
    provider_id: str
    model_id: str

    @property
    def identifier(self) -> str:
        return f"{self.provider_id}/{self.model_id}"


class FileIngestionParams(BaseModel):
    """How `auto` chunking cuts files (Llama Stack's field names); unset, OpenAI's 800 / 400 tokens."""

    model_config = ConfigDict(extra="allow")
    default_chunk_size_tokens: int | None = Field(default=None, ge=100, le=4096)
    default_chunk_overlap_tokens: int | None = Field(default=None, ge=0)


DEFAULT_REWRITE_PROMPT = (
    "Expand this query with relevant synonyms and related terms. Return only the improved query, no explanations:"
    "\n\n{query}\n\nImproved query:"
)  # Llama Stack 0.7's RewriteQueryParams.prompt


class RewriteQueryParams(BaseModel):
    """The chat model that rewrites search queries (`rewrite_query: true`); Llama Stack's fields and defaults."""

    model_config = ConfigDict(extra="allow")
    model: QualifiedModel | None = None
    prompt: str = DEFAULT_REWRITE_PROMPT
    max_tokens: int = Field(default=100, ge=1, le=4096)
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)

    @field_validator("prompt")
    @classmethod
    def _has_query(cls, value: str) -> str:
        if "{query}" not in value:
            raise ValueError("prompt must contain {query} placeholder")
        try:
            value.format(query="")
        except (KeyError, IndexError, ValueError) as exc:  # other {fields}: write literal braces as {{ }}
            raise ValueError(f"prompt is a format string with {{query}} as its only field ({exc!r})") from exc
        return value


class ContextualRetrievalParams(BaseModel):
    """Contextual chunking's defaults (a chunking_strategy's `contextual` settings win); Llama Stack's fields."""

    model_config = ConfigDict(extra="allow")
    model: QualifiedModel | None = None
    default_timeout_seconds: int = Field(default=120, ge=10)
    default_max_concurrency: int = Field(default=3, ge=1)
    max_document_tokens: int = Field(default=100000, ge=1000)


class VectorStoresConfig(BaseModel):
    """Llama Stack's `vector_stores` section; the other keys (search and prompt params) are accepted."""

    model_config = ConfigDict(extra="allow")
    default_provider_id: str | None = None
    default_embedding_model: QualifiedModel | None = None
    file_ingestion_params: FileIngestionParams = Field(default_factory=FileIngestionParams)
    # How long attaching files (one, a batch, or at store creation) waits for their ingestion before
    # answering with their status then (Llama Stack answers once ingestion is over); what is still in
    # progress goes on in the background. 0 answers at once (`in_progress`).
    attach_wait_s: float = Field(default=5.0, ge=0, le=600)
    rewrite_query_params: RewriteQueryParams | None = None  # None: searches cannot rewrite_query
    contextual_retrieval_params: ContextualRetrievalParams = Field(default_factory=ContextualRetrievalParams)

    @field_validator("file_ingestion_params", "contextual_retrieval_params", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any) -> Any:
        return {} if value is None else value


class ToolGroupInput(_Strict):
    toolgroup_id: str = Field(min_length=1)
    provider_id: str = Field(min_length=1)
    mcp_endpoint: dict[str, str] | None = None  # {"uri": ...}
    args: dict[str, Any] | None = None


class ConnectorInput(_Strict):
    """Llama Stack's connector (`connectors` in the run config): an MCP server the Connectors API lists and an
    `mcp` tool of Responses may name by `connector_id`. The operator's URL: not checked by the outbound guard."""

    connector_type: Literal["mcp"] = "mcp"
    connector_id: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://", description="streamable HTTP, or SSE when it ends in /sse")
    server_label: str | None = None


class DatasetInput(_Strict):
    """Llama Stack's registered dataset: its rows are loaded once, at the first start that lists it."""

    dataset_id: str = Field(min_length=1)
    purpose: Literal["eval/question-answer", "eval/messages-answer", "post-training/messages"]
    source: dict[str, Any]  # {type: uri, uri} or {type: rows, rows}, checked as the API checks it
    metadata: dict[str, Any] = Field(default_factory=dict)
    provider_id: str | None = None  # default: the first datasetio provider


class ScoringFnInput(_Strict):
    """Llama Stack's registered scoring function: a provider's function under its own id and params."""

    scoring_fn_id: str = Field(min_length=1)
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    return_type: dict[str, Any] = Field(default_factory=lambda: {"type": "number"})
    params: dict[str, Any] | None = None  # basic / regex_parser / llm_as_judge params, checked as the API does
    provider_id: str | None = None  # default: the provider whose function provider_scoring_fn_id names
    provider_scoring_fn_id: str | None = None  # default: the scoring_fn_id


class BenchmarkInput(_Strict):
    """Llama Stack's registered benchmark: a dataset and the scoring functions that judge answers to it."""

    benchmark_id: str = Field(min_length=1)
    dataset_id: str = Field(min_length=1)
    scoring_functions: list[str] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    provider_id: str | None = None  # default: the only eval provider
    provider_benchmark_id: str | None = None  # default: the benchmark_id


class RegisteredResources(_Strict):
    models: list[ModelInput] = Field(default_factory=list)
    vector_stores: list[VectorStoreInput] = Field(default_factory=list)
    shields: list[ShieldInput] = Field(default_factory=list)
    datasets: list[DatasetInput] = Field(default_factory=list)
    scoring_fns: list[ScoringFnInput] = Field(default_factory=list)
    benchmarks: list[BenchmarkInput] = Field(default_factory=list)
    tool_groups: list[ToolGroupInput] = Field(default_factory=list)


class SqliteBackend(_Strict):
    type: Literal["kv_sqlite", "sql_sqlite"]
    db_path: Path


class StoreReference(BaseModel):
    backend: str
    namespace: str | None = None
    table_name: str | None = None
    model_config = ConfigDict(extra="allow")


def _default_backends() -> dict[str, SqliteBackend]:
    return {"sql_default": SqliteBackend(type="sql_sqlite", db_path=pocketstack_home() / "state.db")}


class StorageConfig(_Strict):
    backends: dict[str, SqliteBackend] = Field(default_factory=_default_backends)
    stores: dict[str, StoreReference] = Field(default_factory=dict)

    def metadata_db(self) -> Path:
        """The SQLite file of the resource registry (`stores.metadata`, else the first backend)."""
        reference = self.stores.get("metadata")
        name = reference.backend if reference else next(iter(self.backends), None)
        if name is None or name not in self.backends:
            raise ConfigError(f"storage.stores.metadata names backend '{name}', which storage.backends lacks")
        return self.backends[name].db_path.expanduser()


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    shutdown_timeout: float = Field(default=30.0, ge=0, description="seconds in-flight requests get to finish")
    max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, gt=0, description="largest file upload (OpenAI's 512 MB)")
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_cafile: str | None = None
    auth: AuthenticationConfig | None = None
    quota: QuotaConfig | None = None
    cors: bool | CorsConfig | None = None
    workers: int | None = None
    # PocketStack's own: the Host names it answers to (default: loopback names when it listens on
    # loopback, any name beyond), and whether it may listen beyond loopback with no authentication.
    allowed_hosts: list[str] | None = None
    allow_unauthenticated: bool = False
    # PocketStack's own: where URLs a user supplies (MCP servers...) may lead (security/config.py).
    outbound: OutboundConfig = Field(default_factory=OutboundConfig)

    @property
    def cors_config(self) -> CorsConfig | None:
        return cors_of(self.cors)


class TelemetryConfig(_Strict):
    """Traces and metrics (runtime/telemetry/): kept in the local store, exported where a collector is named.

    Llama Stack's key is `enabled`; the rest is PocketStack's own. Unset, the OTLP endpoint is the
    standard `OTEL_EXPORTER_OTLP_ENDPOINT` (none: nothing leaves the machine).
    """

    enabled: bool = True
    service_name: str = "pocketstack"
    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://")
    # Prompt and completion text on spans: off unless asked for (they may hold anything users typed).
    capture_content: bool = False
    # The local store keeps spans this long, and at most this many (the oldest traces go first).
    retention_days: float = Field(default=7.0, gt=0)
    max_spans: int = Field(default=200_000, ge=100)
    # Under `sample_ratio` < 1 only that share of new traces is recorded (a `traceparent` that says
    # "sampled" is always followed).
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class StackConfig(_Strict):
    version: int = 2
    distro_name: str | None = None
    image_name: str | None = None
    apis: list[str] = Field(default_factory=list)
    providers: dict[str, list[ProviderConfig]] = Field(default_factory=dict)
    registered_resources: RegisteredResources = Field(default_factory=RegisteredResources)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    # Llama Stack keys whose features later issues serve; accepted so its configs load.
    vector_stores: VectorStoresConfig = Field(default_factory=VectorStoresConfig)

    @field_validator("vector_stores", "safety", "telemetry", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        return {} if value is None else value  # a section left empty in YAML

    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    connectors: list[ConnectorInput] = Field(default_factory=list)

    @field_validator("connectors", mode="before")
    @classmethod
    def _no_connectors(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("connectors")
    @classmethod
    def _unique_connectors(cls, value: list[ConnectorInput]) -> list[ConnectorInput]:
        ids = [connector.connector_id for connector in value]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"connector_id {', '.join(twice)} is used twice")
        return value

    logging: dict[str, Any] | None = None
    external_providers_dir: str | None = None
    external_apis_dir: str | None = None

    @property
    def name(self) -> str:
        return self.distro_name or self.image_name or "custom"


def substitute_env(value: str, environ: dict[str, str] | os._Environ[str], where: str) -> str | None:
    """Apply `${env...}` forms to one scalar; None when the whole value comes out empty."""

    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
        current = environ.get(name, "")
        if operator == ":=":
            return current or argument
        if operator == ":+":
            return argument if current else ""
        if name not in environ:
            raise ConfigError(
                f"{where}: environment variable {name} is not set (write ${{env.{name}:=default}} for a default)"
            )
        return current

    result = _ENV_PATTERN.sub(replace, value)
    if result == "" and value != "":
        return None
    return result


def _resolve(node: yaml.Node, environ: dict[str, str] | os._Environ[str], source: str) -> Any:
    """YAML node tree -> plain data, substituting env forms in string scalars."""
    where = f"{source} line {node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *defaults`: explicit keys win, whatever their order
                bases = _resolve(value_node, environ, source)
                for base in bases if isinstance(bases, list) else [bases]:
                    if not isinstance(base, dict):
                        raise ConfigError(f"{where}: `<<` merges mappings only")
                    merged = {**base, **merged}
                continue
            key = _resolve(key_node, environ, source)
            if not isinstance(key, str | int | float | bool):
                raise ConfigError(f"{where}: keys must be plain scalars, not {type(key).__name__}")
            if key in result:
                raise ConfigError(f"{where}: key '{key}' appears twice")
            result[str(key)] = _resolve(value_node, environ, source)
        return {**merged, **result}
    if isinstance(node, yaml.SequenceNode):
        return [_resolve(item, environ, source) for item in node.value]
    try:
        value = yaml.constructor.SafeConstructor().construct_object(node)  # typed: int, bool, null...
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: {getattr(exc, 'problem', None) or exc}") from exc
    if isinstance(value, str) and "${env." in value:
        return substitute_env(value, environ, f"{where}, {value!r}")
    return value


def _line_of(root: yaml.Node, loc: tuple[int | str, ...]) -> int | None:
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            matches = [v for k, v in node.value if k.value == part]
            if not matches:
                break
            node = matches[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _drop_disabled_providers(data: dict[str, Any]) -> None:
    for api, providers in (data.get("providers") or {}).items():
        if isinstance(providers, list):
            data["providers"][api] = [
                p for p in providers if not (isinstance(p, dict) and "provider_id" in p and p["provider_id"] is None)
            ]


def parse_config(text: str, source: str, environ: dict[str, str] | os._Environ[str] | None = None) -> StackConfig:
    environ = os.environ if environ is None else environ
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if root is None:
        raise ConfigError(f"{source}: the file is empty")
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{source} line {root.start_mark.line + 1}: the top level must be a mapping of keys")
    data = _resolve(root, environ, source)
    _drop_disabled_providers(data)
    try:
        return StackConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{source} line {_line_of(root, loc)}: {key}: {message}")
        raise ConfigError("invalid run config:\n  " + "\n  ".join(problems)) from exc


def load_config(path: Path, environ: dict[str, str] | os._Environ[str] | None = None) -> StackConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from exc
    return parse_config(text, str(path), environ)
