"""The running distribution: its providers, its storage and its registry, built from one config."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from pocketstack.config import ConfigError, ProviderConfig, StackConfig, pocketstack_home
from pocketstack.providers import PROVIDERS, ProviderSpec
from pocketstack.providers.base import Provider, ProviderContext
from pocketstack.registry import Registry
from pocketstack.storage import Database, open_database

log = logging.getLogger(__name__)

# The APIs this build serves, besides inspect/providers/models which are always on.
KNOWN_APIS = frozenset({"inference"})


@dataclass(frozen=True)
class ProviderInstance:
    api: str
    config: ProviderConfig
    spec: ProviderSpec
    settings: BaseModel
    impl: Provider


def build_providers(config: StackConfig) -> dict[str, ProviderInstance]:
    """Validate and construct every provider (no I/O yet); ConfigError names the one at fault."""
    unknown = sorted(set(config.apis) - KNOWN_APIS)
    if unknown:
        raise ConfigError(
            f"apis: {', '.join(unknown)} not served by this build (it serves {', '.join(sorted(KNOWN_APIS))})"
        )
    instances: dict[str, ProviderInstance] = {}
    for api, entries in config.providers.items():
        if api not in config.apis:
            raise ConfigError(f"providers.{api}: the API is not listed under apis")
        for index, entry in enumerate(entries):
            where = f"providers.{api}[{index}] ({entry.provider_id})"
            spec = PROVIDERS.get(entry.provider_type)
            if spec is None:
                known = ", ".join(sorted(PROVIDERS))
                raise ConfigError(f"{where}: unknown provider_type '{entry.provider_type}'; known: {known}")
            if spec.api != api:
                raise ConfigError(f"{where}: {entry.provider_type} serves the {spec.api} API, not {api}")
            if entry.provider_id in instances:
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
            context = ProviderContext(provider_id=entry.provider_id, home=pocketstack_home())
            impl = spec.create(provider_config, context)
            instances[entry.provider_id] = ProviderInstance(api, entry, spec, provider_config, impl)
    return instances


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.providers = build_providers(config)
        self._database: Database | None = None
        self._registry: Registry | None = None

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

    def providers_of(self, api: str) -> list[ProviderInstance]:
        return [p for p in self.providers.values() if p.api == api]

    async def start(self) -> None:
        self._database = open_database(self.config.storage.metadata_db())
        self._registry = Registry(self._database)
        started: list[ProviderInstance] = []
        try:
            for instance in self.providers.values():
                await instance.impl.initialize()
                started.append(instance)
        except BaseException:
            await self._shutdown(started)
            raise

    async def stop(self) -> None:
        await self._shutdown(list(self.providers.values()))

    async def _shutdown(self, instances: list[ProviderInstance]) -> None:
        for instance in reversed(instances):
            try:
                await instance.impl.shutdown()
            except Exception:
                log.exception("provider %s failed to shut down cleanly", instance.config.provider_id)
        if self._database is not None:
            self._database.close()
            self._database = None
            self._registry = None


def describe(config: StackConfig) -> list[dict[str, Any]]:
    """What `pocketstack providers` prints: the providers this config would start."""
    return [
        {"api": p.api, "provider_id": p.config.provider_id, "provider_type": p.config.provider_type}
        for p in build_providers(config).values()
    ]
