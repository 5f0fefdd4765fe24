"""Prompts and their versions, in SQLite (migration 0018).

A prompt row holds what every version shares (owner, latest and default version); each version
holds its template and variable names. Updates are compare-and-set on `latest_version`, in one
transaction, so of several updates based on the same version exactly one lands.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import Enum

from pocketstack.storage.owners import OWNER_COLUMNS, Owner, Visibility, owner_of, owner_values, restrict
from pocketstack.storage.sqlite import Database, Row, storable


@dataclass(frozen=True)
class StoredPrompt:
    """What every version of a prompt shares."""

    prompt_id: str
    latest_version: int
    default_version: int
    owner: Owner | None


@dataclass(frozen=True)
class PromptVersion:
    prompt_id: str
    version: int
    prompt: str
    variables: list[str]
    is_default: bool


class Update(Enum):
    """How a compare-and-set update ended."""

    SAVED = "saved"
    STALE = "stale"  # the prompt has a newer version than the one the update was based on
    GONE = "gone"  # the prompt was deleted meanwhile


def _version(row: Row, default_version: int) -> PromptVersion:
    return PromptVersion(
        prompt_id=row["prompt_id"],
        version=row["version"],
        prompt=row["prompt"],
        variables=json.loads(row["variables"]),
        is_default=row["version"] == default_version,
    )


class PromptStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, prompt_id: str, prompt: str, variables: list[str], owner: Owner | None) -> None:
        now = int(time.time())
        await self._db.transaction(
            [
                (
                    "INSERT INTO prompts (prompt_id, latest_version, default_version, created_at, "
                    f"{OWNER_COLUMNS}) VALUES (?, 1, 1, ?, ?, ?)",
                    (prompt_id, now, *owner_values(owner)),
                ),
                (
                    "INSERT INTO prompt_versions (prompt_id, version, prompt, variables, created_at) "
                    "VALUES (?, 1, ?, ?, ?)",
                    (prompt_id, prompt, json.dumps(variables), now),
                ),
            ]
        )

    async def get(self, prompt_id: str) -> StoredPrompt | None:
        rows = await self._db.fetch(
            f"SELECT prompt_id, latest_version, default_version, {OWNER_COLUMNS} FROM prompts WHERE prompt_id = ?",
            (prompt_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return StoredPrompt(row["prompt_id"], row["latest_version"], row["default_version"], owner_of(row))

    async def version(self, prompt_id: str, version: int | None) -> PromptVersion | None:
        """One version (None: the default one), marked default or not as it is now."""
        if version is not None and not storable(version):
            return None
        rows = await self._db.fetch(
            "SELECT v.prompt_id, v.version, v.prompt, v.variables, p.default_version "
            "FROM prompts p JOIN prompt_versions v ON v.prompt_id = p.prompt_id "
            "AND v.version = COALESCE(?, p.default_version) WHERE p.prompt_id = ?",
            (version, prompt_id),
        )
        return _version(rows[0], rows[0]["default_version"]) if rows else None

    async def versions(self, prompt_id: str) -> list[PromptVersion]:
        rows = await self._db.fetch(
            "SELECT v.prompt_id, v.version, v.prompt, v.variables, p.default_version "
            "FROM prompts p JOIN prompt_versions v ON v.prompt_id = p.prompt_id "
            "WHERE p.prompt_id = ? ORDER BY v.version",
            (prompt_id,),
        )
        return [_version(row, row["default_version"]) for row in rows]

    async def defaults(self, visible: Visibility) -> list[PromptVersion]:
        """Every prompt `visible` lets the request see, at its default version, by id descending (the
        order Llama Stack lists them in)."""
        clauses: list[str] = []
        params: list[object] = []
        restrict(visible, clauses, params, prefix="p.")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._db.fetch(
            "SELECT v.prompt_id, v.version, v.prompt, v.variables, p.default_version, "
            f"p.owner_principal, p.owner_attributes FROM prompts p JOIN prompt_versions v "
            f"ON v.prompt_id = p.prompt_id AND v.version = p.default_version {where} ORDER BY p.prompt_id DESC",
            params,
        )
        keep = visible.keep
        return [
            _version(row, row["default_version"])
            for row in rows
            if keep is None or keep(row["prompt_id"], owner_of(row))
        ]

    async def update(
        self, prompt_id: str, based_on: int, prompt: str, variables: list[str], *, set_as_default: bool
    ) -> Update:
        """Save version `based_on + 1`, if `based_on` is still the latest. Both statements carry the same
        condition inside one transaction: the version row and the counter land together, or neither does."""
        new = based_on + 1
        if not (storable(based_on) and storable(new)):  # a number SQLite cannot hold is not the latest version
            return Update.STALE if await self.get(prompt_id) is not None else Update.GONE
        saved = await self._db.transaction(
            [
                (
                    "INSERT INTO prompt_versions (prompt_id, version, prompt, variables, created_at) "
                    "SELECT prompt_id, ?, ?, ?, ? FROM prompts WHERE prompt_id = ? AND latest_version = ?",
                    (new, prompt, json.dumps(variables), int(time.time()), prompt_id, based_on),
                ),
                (
                    "UPDATE prompts SET latest_version = ?, "
                    "default_version = CASE WHEN ? THEN ? ELSE default_version END "
                    "WHERE prompt_id = ? AND latest_version = ? RETURNING prompt_id",
                    (new, set_as_default, new, prompt_id, based_on),
                ),
            ]
        )
        if saved:
            return Update.SAVED
        return Update.STALE if await self.get(prompt_id) is not None else Update.GONE

    async def set_default(self, prompt_id: str, version: int) -> bool:
        """Make `version` the default; False when the prompt has no such version."""
        if not storable(version):
            return False
        rows = await self._db.fetch(
            "UPDATE prompts SET default_version = ? WHERE prompt_id = ? AND EXISTS "
            "(SELECT 1 FROM prompt_versions WHERE prompt_id = ? AND version = ?) RETURNING prompt_id",
            (version, prompt_id, prompt_id, version),
        )
        return bool(rows)

    async def delete(self, prompt_id: str) -> bool:
        """Delete the prompt and (by cascade) every version of it."""
        rows = await self._db.fetch("DELETE FROM prompts WHERE prompt_id = ? RETURNING prompt_id", (prompt_id,))
        return bool(rows)
