"""Quota counters: requests and model tokens per client and window, each taken with one statement.

A request is admitted by a single conditional upsert (`... DO UPDATE ... WHERE requests < limit
RETURNING`): SQLite runs it as one write, so concurrent requests (and several processes sharing
the file) can never both take the last unit, which a read-then-write would allow.
"""

from __future__ import annotations

from dataclasses import dataclass

from pocketstack.storage.sqlite import Database

# The admission: a first request opens the window's row; later ones count up only while under both limits.
_TAKE = """
INSERT INTO quota_usage (client, window_start, requests, tokens) VALUES (?, ?, 1, 0)
ON CONFLICT (client, window_start) DO UPDATE SET requests = requests + 1
WHERE requests < ? AND tokens < ?
RETURNING requests, tokens
"""
_PEEK = "SELECT requests, tokens FROM quota_usage WHERE client = ? AND window_start = ?"
_CHARGE = """
INSERT INTO quota_usage (client, window_start, requests, tokens) VALUES (?, ?, 0, ?)
ON CONFLICT (client, window_start) DO UPDATE SET tokens = tokens + excluded.tokens
"""
_EXPIRE = "DELETE FROM quota_usage WHERE window_start < ?"
UNLIMITED = 2**62


@dataclass(frozen=True)
class Usage:
    requests: int
    tokens: int


class QuotaCounters:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def take(self, client: str, window_start: int, max_requests: int, max_tokens: int | None) -> Usage | None:
        """Count one request for `client` in this window; None (and nothing counted) when it is over a limit."""
        if max_requests <= 0 or (max_tokens is not None and max_tokens <= 0):
            return None
        token_limit = UNLIMITED if max_tokens is None else max_tokens
        rows = await self._db.fetch(_TAKE, (client, window_start, max_requests, token_limit))
        return Usage(rows[0]["requests"], rows[0]["tokens"]) if rows else None

    async def peek(self, client: str, window_start: int) -> Usage:
        rows = await self._db.fetch(_PEEK, (client, window_start))
        return Usage(rows[0]["requests"], rows[0]["tokens"]) if rows else Usage(0, 0)

    async def charge_tokens(self, client: str, window_start: int, tokens: int) -> None:
        if tokens > 0:
            await self._db.execute(_CHARGE, (client, window_start, tokens))

    async def expire(self, before: int) -> None:
        """Forget the windows that ended before `before`."""
        await self._db.execute(_EXPIRE, (before,))
