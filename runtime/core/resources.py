"""Resource tables: one kind of registered resource over the registry, written once for every kind.

Models, shields, tool groups, datasets, scoring functions and benchmarks; prompts next.
Each kind shares the same access control (what the user may not read is not found, listed or
resolved; what the API registers records its owner; unregistering another's is a 404, or a 403
where the policy lets the user read but not delete it) and the same life: looked up by id (a 404
that names the kind), listed, registered through its API, declared in the run config's
`registered_resources` (synced at every start; an entry its provider refuses stops start-up,
naming the entry), and unregistered through the API unless the config or a provider declared it
(it would come back at the next start).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pocketstack.config import ConfigError
from pocketstack.core.registry import Registry, Resource
from pocketstack.errors import BadRequestError, PocketStackError, ResourceNotFoundError
from pocketstack.security.access import Access, Action, Kind

log = logging.getLogger(__name__)
Entry = TypeVar("Entry")


@dataclass(frozen=True)
class ResourceKind:
    type: str  # the registry's type column
    noun: str  # how messages name one: "tool group"
    config_key: str  # its list under registered_resources
    provider_note: str = ""  # why a provider-listed one cannot be unregistered, where it can happen


MODEL = ResourceKind(
    "model", "model", "models", provider_note=" (a file in its model store, or built in); remove it there"
)
SHIELD = ResourceKind("shield", "shield", "shields")
TOOL_GROUP = ResourceKind("tool_group", "tool group", "tool_groups")
DATASET = ResourceKind("dataset", "dataset", "datasets")
SCORING_FN = ResourceKind(
    "scoring_function", "scoring function", "scoring_fns", provider_note=" (one of its built-in functions)"
)
BENCHMARK = ResourceKind("benchmark", "benchmark", "benchmarks")


class ResourceTable:
    def __init__(self, registry: Registry, kind: ResourceKind, access: Access | None = None) -> None:
        self.registry = registry
        self.kind = kind
        self.access = access or Access()
        self.owned = Kind(kind.type, kind.noun)  # Llama Stack's resource type: model, shield, tool_group

    def _visible(self, resource: Resource) -> bool:
        return self.access.visible(self.owned, resource.identifier, resource.owner)

    async def find(self, identifier: str) -> Resource | None:
        found = await self.registry.get(self.kind.type, identifier)
        return found if found is not None and self._visible(found) else None

    async def get(self, identifier: str) -> Resource:
        found = await self.find(identifier)
        if found is None:
            raise ResourceNotFoundError(self.kind.noun, identifier)
        return found

    async def by_provider_resource_id(self, provider_resource_id: str) -> list[Resource]:
        found = await self.registry.find_by_provider_resource_id(self.kind.type, provider_resource_id)
        return [resource for resource in found if self._visible(resource)]

    async def all(self) -> list[Resource]:
        return [resource for resource in await self.registry.all(self.kind.type) if self._visible(resource)]

    async def add(self, resource: Resource) -> Resource:
        """Register through the API, owned by the request's user; ConflictError when the id is taken."""
        self.access.check_create(self.owned, resource.identifier)
        return await self.registry.add(
            self.kind.type,
            resource.identifier,
            resource.provider_id,
            resource.provider_resource_id,
            resource.body,
            owner=self.access.owner(),
        )

    async def sync_config(
        self,
        entries: Sequence[Entry],
        build: Callable[[Entry], Awaitable[Resource]],
        *,
        name: Callable[[Entry], str],
        left_out: Callable[[Entry], str | None] = lambda _: None,
    ) -> None:
        """Make the config-declared resources exactly `entries` (built and checked by their provider).

        `left_out` says why an entry is skipped (its provider was left out, e.g. an extra is not
        installed) or None; any other refusal stops start-up with the entry's place in the config.
        """
        resources = []
        for index, entry in enumerate(entries):
            reason = left_out(entry)
            if reason is not None:
                log.info("%s %s left out with its provider: %s", self.kind.noun, name(entry), reason)
                continue
            try:
                resources.append(await build(entry))
            except PocketStackError as exc:
                raise ConfigError(
                    f"registered_resources.{self.kind.config_key}[{index}] ({name(entry)}): {exc.message}"
                ) from exc
        await self.registry.sync_source(self.kind.type, "config", resources)

    async def sync_provider(self, provider_id: str, resources: list[Resource]) -> None:
        """Make what one provider lists on its own exactly `resources`."""
        await self.registry.sync_source(self.kind.type, "provider", resources, provider_id=provider_id)

    async def remove(self, resource: Resource) -> None:
        """Unregister what the API registered; what the config or a provider declared stays."""
        missing = ResourceNotFoundError(self.kind.noun, resource.identifier)
        self.access.check(Action.DELETE, self.owned, resource.identifier, resource.owner, missing)
        noun = self.kind.noun.capitalize()
        if resource.source == "provider":
            raise BadRequestError(
                f"{noun} '{resource.identifier}' is served by its provider on its own{self.kind.provider_note}.",
                code=f"{self.kind.type}_from_provider",
            )
        if resource.source == "config":
            raise BadRequestError(
                f"{noun} '{resource.identifier}' comes from the run config's registered_resources; "
                "remove it there (it would be registered again at the next start).",
                code=f"{self.kind.type}_from_config",
            )
        await self.registry.remove(self.kind.type, resource.identifier)


def skipped_provider(skipped: Mapping[str, str], provider_id: str | None) -> str | None:
    """Why a config entry's provider was left out at start-up, if it was."""
    return skipped.get(provider_id) if provider_id is not None else None
