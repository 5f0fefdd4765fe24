"""The running distribution: its providers, its storage and its registry, built from one config."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from pocketstack.config import ConfigError, ProviderConfig, StackConfig, pocketstack_home
from pocketstack.core.registry import Registry
from pocketstack.core.resources import ResourceKind, ResourceTable
from pocketstack.errors import BadRequestError, ServiceUnavailableError
from pocketstack.providers import PROVIDERS, SHARED_TYPES, ProviderSpec
from pocketstack.providers.base import Provider, ProviderContext, Routers
from pocketstack.security.access import Access
from pocketstack.security.outbound import OutboundGuard
from pocketstack.security.policy import parse_policies
from pocketstack.storage import Database, open_database

if TYPE_CHECKING:
    from pocketstack.telemetry.pipeline import Telemetry

log = logging.getLogger(__name__)

# The APIs this build serves, besides inspect/providers/models which are always on.
KNOWN_APIS = frozenset(
    {
        "inference",
        "files",
        "file_processors",
        "vector_io",
        "safety",
        "responses",
        "tool_runtime",
        "datasetio",
        "scoring",
        "eval",
        "batches",
    }
)


@dataclass(frozen=True)
class ProviderPlan:
    """A provider whose config is valid; its implementation is built when the stack starts."""

    api: str
    config: ProviderConfig
    spec: ProviderSpec
    settings: BaseModel


@dataclass(frozen=True)
class ProviderInstance(ProviderPlan):
    impl: Provider


def missing_packages(spec: ProviderSpec) -> list[str]:
    """The Python packages `spec` needs that are not installed (found without importing them)."""
    return [module for module in spec.requires if importlib.util.find_spec(module) is None]


def plan_providers(config: StackConfig, skipped: dict[str, str] | None = None) -> dict[str, ProviderPlan]:
    """Validate every provider's config (no I/O, no implementation imported); ConfigError names the one at fault.

    An `optional` provider whose packages are not installed is left out; `skipped` gets its id and why.
    """
    unknown = sorted(set(config.apis) - KNOWN_APIS)
    if unknown:
        raise ConfigError(
            f"apis: {', '.join(unknown)} not served by this build (it serves {', '.join(sorted(KNOWN_APIS))})"
        )
    plans: dict[str, ProviderPlan] = {}
    for api, entries in config.providers.items():
        if api not in config.apis:
            raise ConfigError(f"providers.{api}: the API is not listed under apis")
        for index, entry in enumerate(entries):
            where = f"providers.{api}[{index}] ({entry.provider_id})"
            spec = SHARED_TYPES.get((api, entry.provider_type)) or PROVIDERS.get(entry.provider_type)
            if spec is None:
                known = ", ".join(sorted(PROVIDERS))
                raise ConfigError(f"{where}: unknown provider_type '{entry.provider_type}'; known: {known}")
            if spec.api != api:
                raise ConfigError(f"{where}: {entry.provider_type} serves the {spec.api} API, not {api}")
            if entry.provider_id in plans:
                raise ConfigError(f"{where}: provider_id '{entry.provider_id}' is used twice")
            try:
                provider_config = spec.config_model.model_validate(entry.config)
            except ValidationError as exc:
                details = "; ".join(
                    f"config.{'.'.join(map(str, e['loc']))}: "
                    + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"])
                    for e in exc.errors(include_url=False)
                )
                raise ConfigError(f"{where}: {details}") from exc
            missing = missing_packages(spec)
            if missing:
                why = f"{entry.provider_type} needs {', '.join(missing)}" + (
                    f" (pip install 'pocketstack[{spec.extra}]')" if spec.extra else ""
                )
                if not entry.optional:
                    raise ConfigError(f"{where}: {why}")
                log.info("leaving out provider %s: %s", entry.provider_id, why)
                if skipped is not None:
                    skipped[entry.provider_id] = why
                continue
            plans[entry.provider_id] = ProviderPlan(api, entry, spec, provider_config)
    return plans


class Stack:
    """Config, storage and providers. Storage opens before the server listens; the providers'
    implementations are imported and started after (app.py says why)."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.skipped: dict[str, str] = {}  # optional providers left out: id -> why
        self.plans = plan_providers(config, self.skipped)
        self.providers: dict[str, ProviderInstance] = {}
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._on_models_changed: list[Callable[[], Awaitable[None]]] = []
        self._database: Database | None = None
        self._registry: Registry | None = None
        self.routers = Routers()
        self.telemetry: Telemetry | None = None  # started with storage: the first request is traced too
        self.outbound = OutboundGuard(config.server.outbound)  # what a user's URL may reach
        auth = config.server.auth
        try:
            self.access = Access(*parse_policies(auth.access_policy, auth.route_policy)) if auth else Access()
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    @property
    def database(self) -> Database:
        if self._database is None:
            raise RuntimeError("the stack has not started")
        return self._database

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            raise RuntimeError("the stack has not started")
        return self._registry

    def table(self, kind: ResourceKind) -> ResourceTable:
        """One kind of registered resource (core/resources.py): models, shields, tool groups..."""
        return ResourceTable(self.registry, kind, self.access)

    def providers_of(self, api: str) -> list[ProviderInstance]:
        return [p for p in self.providers.values() if p.api == api]

    def provider_for(
        self, api: str, provider_id: str | None, *, must_name: str | None = None, example: str | None = None
    ) -> ProviderInstance:
        """The `api` provider `provider_id`, or, none named, the first one; with `must_name` (what
        names it, e.g. "shield") a 400 asking for it when there are several. A 503 saying how to
        enable the API when it has no provider, a 400 listing the known ones for an unknown id."""
        instances = self.providers_of(api)
        if not instances:
            raise ServiceUnavailableError(
                f"The {api} API is not enabled in this distribution (add `{api}` to `apis` and a {api} provider"
                + (f", e.g. {example})." if example else ")."),
                code="service_not_enabled",
            )
        known = ", ".join(i.config.provider_id for i in instances)
        if provider_id is None:
            if must_name is not None and len(instances) > 1:
                raise BadRequestError(f"Name the {must_name}'s provider_id (one of {known}).", param="provider_id")
            return instances[0]
        for instance in instances:
            if instance.config.provider_id == provider_id:
                return instance
        raise BadRequestError(f"No {api} provider '{provider_id}' (known: {known}).", param="provider_id")

    def open_storage(self) -> None:
        self._database = open_database(self.config.storage.metadata_db())
        self._registry = Registry(self._database)
        self._start_telemetry()

    async def start_providers(self) -> None:
        """Build and initialize every provider; on failure the ones started are shut down again."""
        home = pocketstack_home()
        for provider_id, plan in self.plans.items():
            context = ProviderContext(
                provider_id=provider_id, home=home, database=self.database, routers=self.routers, outbound=self.outbound
            )
            impl = plan.spec.create(plan.settings, context)
            instance = ProviderInstance(plan.api, plan.config, plan.spec, plan.settings, impl)
            self.providers[provider_id] = instance
            try:
                await impl.initialize()
            except BaseException:
                del self.providers[provider_id]
                await self._stop_providers()
                raise

    def on_models_changed(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Have `callback` run when a provider's own models changed while serving (an import)."""
        self._on_models_changed.append(callback)

    async def models_changed(self) -> None:
        for callback in self._on_models_changed:
            await callback()

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` when the stack stops, before the providers (background work that uses them)."""
        self._on_stop.append(callback)

    async def stop(self) -> None:
        for callback in reversed(self._on_stop):
            try:
                await callback()
            except Exception:
                log.exception("a shutdown step failed")
        self._on_stop.clear()
        await self._stop_providers()
        self._close_storage()

    async def _stop_providers(self) -> None:
        for instance in reversed(list(self.providers.values())):
            try:
                await instance.impl.shutdown()
            except Exception:
                log.exception("provider %s failed to shut down cleanly", instance.config.provider_id)
        self.providers.clear()

    def _start_telemetry(self) -> None:
        """Install OpenTelemetry's SDK and attach this server's exporters (imported here: ~30 ms, only when on)."""
        if not self.config.telemetry.enabled:
            return
        from pocketstack.telemetry.pipeline import Telemetry

        self.telemetry = Telemetry(self.config.telemetry, self.database)
        self.telemetry.start()

    def _close_storage(self) -> None:
        if self.telemetry is not None:
            self.telemetry.stop()  # its last spans are written before the database closes
            self.telemetry = None
        if self._database is not None:
            self._database.close()
            self._database = None
            self._registry = None


def describe(config: StackConfig) -> list[dict[str, Any]]:
    """What `pocketstack providers` prints: the providers this config would start."""
    return [
        {"api": p.api, "provider_id": p.config.provider_id, "provider_type": p.config.provider_type}
        for p in plan_providers(config).values()
    ]
