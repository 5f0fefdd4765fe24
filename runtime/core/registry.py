"""The resource registry: which provider owns each model, shield, vector store..., in SQLite.

Resources come from three sources: the run config (`registered_resources`, re-synced at every
start), the API (explicit registration) and providers (automatic listing). A resource's body is
its API's response model, stored as JSON, so each API decides its own shape.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from pocketstack.errors import ConflictError
from pocketstack.storage import Database
from pocketstack.storage.owners import Owner, owner_of, owner_values

Source = Literal["config", "api", "provider"]


@dataclass(frozen=True)
class Resource:
    type: str
    identifier: str
    provider_id: str
    provider_resource_id: str
    source: Source
    created_at: int
    body: dict[str, Any]
    owner: Owner | None = None  # who registered it through the API; None: the config, a provider, no auth


def _resource(row: Any) -> Resource:
    return Resource(
        type=row["type"],
        identifier=row["identifier"],
        provider_id=row["provider_id"],
        provider_resource_id=row["provider_resource_id"],
        source=row["source"],
        created_at=row["created_at"],
        body=json.loads(row["body"]),
        owner=owner_of(row),
    )


_COLUMNS = (
    "type, identifier, provider_id, provider_resource_id, source, created_at, body, owner_principal, owner_attributes"
)
_MARKS = ", ".join("?" for _ in _COLUMNS.split(","))


class Registry:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, type: str, identifier: str) -> Resource | None:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM resources WHERE type = ? AND identifier = ?", (type, identifier)
        )
        return _resource(rows[0]) if rows else None

    async def find_by_provider_resource_id(self, type: str, provider_resource_id: str) -> list[Resource]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM resources WHERE type = ? AND provider_resource_id = ? ORDER BY identifier",
            (type, provider_resource_id),
        )
        return [_resource(row) for row in rows]

    async def all(self, type: str) -> list[Resource]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM resources WHERE type = ? ORDER BY created_at, identifier", (type,)
        )
        return [_resource(row) for row in rows]

    async def add(
        self,
        type: str,
        identifier: str,
        provider_id: str,
        provider_resource_id: str,
        body: dict[str, Any],
        source: Source = "api",
        owner: Owner | None = None,
    ) -> Resource:
        """Register a new resource; ConflictError when the identifier is taken."""
        resource = Resource(type, identifier, provider_id, provider_resource_id, source, int(time.time()), body, owner)
        rows = await self._db.fetch(
            f"INSERT INTO resources ({_COLUMNS}) VALUES ({_MARKS}) "
            "ON CONFLICT (type, identifier) DO NOTHING RETURNING identifier",
            self._values(resource),
        )
        if not rows:
            raise ConflictError(f"{type.capitalize()} '{identifier}' is already registered.", code=f"{type}_exists")
        return resource

    async def remove(self, type: str, identifier: str) -> bool:
        rows = await self._db.fetch(
            "DELETE FROM resources WHERE type = ? AND identifier = ? RETURNING identifier", (type, identifier)
        )
        return bool(rows)

    async def sync_source(
        self, type: str, source: Source, resources: list[Resource], provider_id: str | None = None
    ) -> None:
        """Make the `source` resources of `type` (of one provider, if given) exactly `resources`.

        One transaction. Entries from elsewhere with the same id are replaced: the config wins,
        as it does in Llama Stack; a provider listing never overrides the config or the API.
        """
        keep = [r.identifier for r in resources]
        where = "type = ? AND source = ?" + (" AND provider_id = ?" if provider_id is not None else "")
        scope: tuple[Any, ...] = (type, source) + ((provider_id,) if provider_id is not None else ())
        # `NOT IN ()` is not SQL, and `NOT IN (NULL)` matches nothing: an empty list drops all.
        stale = f" AND identifier NOT IN ({', '.join('?' for _ in keep)})" if keep else ""
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (f"DELETE FROM resources WHERE {where}{stale}", (*scope, *keep))
        ]
        replace = (
            "DO UPDATE SET provider_id = excluded.provider_id, "
            "provider_resource_id = excluded.provider_resource_id, source = excluded.source, body = excluded.body, "
            "owner_principal = excluded.owner_principal, owner_attributes = excluded.owner_attributes"
        )
        on_conflict = "DO NOTHING" if source == "provider" else replace
        insert = f"INSERT INTO resources ({_COLUMNS}) VALUES ({_MARKS}) ON CONFLICT (type, identifier) "
        statements += [(insert + on_conflict, self._values(resource)) for resource in resources]
        await self._db.transaction(statements)

    @staticmethod
    def _values(resource: Resource) -> tuple[Any, ...]:
        return (
            resource.type,
            resource.identifier,
            resource.provider_id,
            resource.provider_resource_id,
            resource.source,
            resource.created_at,
            json.dumps(resource.body),
            *owner_values(resource.owner),
        )
