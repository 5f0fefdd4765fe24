"""Static API keys: a key is shown once at creation; only its SHA-256 is stored.

Keys are 256 random bits, so a fast hash is the right one (a slow password hash guards guessable
secrets, which these are not); lookup is by the hash, the key itself is never written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from pocketstack.storage.sqlite import Database

KEY_PREFIX = "psk-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    principal: str
    attributes: dict[str, list[str]] = field(default_factory=dict)
    name: str | None = None
    created_at: int = 0
    revoked_at: int | None = None


def _key(row: Any) -> ApiKey:
    return ApiKey(
        row["key_id"],
        row["principal"],
        json.loads(row["attributes"]),
        row["name"],
        row["created_at"],
        row["revoked_at"],
    )


class ApiKeyStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(
        self, principal: str, attributes: dict[str, list[str]], name: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for `principal`: its record, and the key itself (to show once, never stored)."""
        key = new_key()
        record = ApiKey("key_" + secrets.token_hex(8), principal, attributes, name, int(time.time()))
        await self._db.execute(
            "INSERT INTO api_keys (key_id, key_hash, principal, attributes, name, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (record.key_id, hash_key(key), principal, json.dumps(attributes), name, record.created_at),
        )
        return record, key

    async def list(self) -> list[ApiKey]:
        rows = await self._db.fetch("SELECT * FROM api_keys ORDER BY created_at, key_id")
        return [_key(row) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        """True when the key existed and was live."""
        rows = await self._db.fetch(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL RETURNING key_id",
            (int(time.time()), key_id),
        )
        return bool(rows)

    async def find(self, key: str) -> ApiKey | None:
        """The live key this secret is, if any."""
        rows = await self._db.fetch(
            "SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (hash_key(key),)
        )
        return _key(rows[0]) if rows else None
