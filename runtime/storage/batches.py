"""Batches and their finished request lines, in SQLite (migration 0019): a batch outlives a restart."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pocketstack.storage.owners import OWNER_COLUMNS, Owner, Visibility, owner_of, owner_values
from pocketstack.storage.pages import Page, page
from pocketstack.storage.sqlite import Database

# Statuses a batch still has work in: the runner (re)starts these.
UNFINISHED = ("validating", "in_progress", "finalizing", "cancelling")
_COLUMNS = f"id, record, {OWNER_COLUMNS}"


@dataclass(frozen=True)
class StoredBatch:
    record: dict[str, Any]  # OpenAI's Batch object, as JSON
    owner: Owner | None


@dataclass(frozen=True)
class LineResult:
    line: int
    succeeded: bool
    output: dict[str, Any]  # the output (or error) file's line


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class Tally:
    completed: int
    failed: int
    usage: Usage


class BatchStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, record: dict[str, Any], owner: Owner | None) -> None:
        await self._db.execute(
            f"INSERT INTO batches (id, status, record, {OWNER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (record["id"], record["status"], json.dumps(record), *owner_values(owner)),
        )

    async def get(self, batch_id: str) -> StoredBatch | None:
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM batches WHERE id = ?", (batch_id,))
        return StoredBatch(json.loads(rows[0]["record"]), owner_of(rows[0])) if rows else None

    async def save(self, record: dict[str, Any]) -> None:
        await self._db.execute(
            "UPDATE batches SET status = ?, record = ? WHERE id = ?",
            (record["status"], json.dumps(record), record["id"]),
        )

    async def unfinished(self) -> list[str]:
        marks = ", ".join("?" for _ in UNFINISHED)
        rows = await self._db.fetch(f"SELECT id FROM batches WHERE status IN ({marks}) ORDER BY seq", UNFINISHED)
        return [row["id"] for row in rows]

    async def page(
        self, *, after: str | None, limit: int, visible: Visibility | None
    ) -> tuple[list[StoredBatch], bool]:
        found: Page = await page(
            self._db,
            table="batches",
            columns=_COLUMNS,
            after=after,
            limit=limit,
            descending=True,
            what="batch",
            visible=visible,
        )
        return [StoredBatch(json.loads(row["record"]), owner_of(row)) for row in found.rows], found.has_more

    async def add_result(self, batch_id: str, result: LineResult, usage: Usage) -> None:
        """Keep one finished line; a line already kept stays as it was (a resumed batch never redoes one)."""
        await self.add_results(batch_id, [(result, usage)])

    async def add_results(self, batch_id: str, results: list[tuple[LineResult, Usage]]) -> None:
        """Lines at once (an embeddings group) in one transaction; a line already kept stays as it was."""
        await self._db.transaction(
            (
                "INSERT OR IGNORE INTO batch_results (batch_id, line, succeeded, input_tokens, cached_tokens, "
                "output_tokens, reasoning_tokens, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch_id,
                    r.line,
                    int(r.succeeded),
                    u.input_tokens,
                    u.cached_tokens,
                    u.output_tokens,
                    u.reasoning_tokens,
                    json.dumps(r.output),
                ),
            )
            for r, u in results
        )

    async def finished_lines(self, batch_id: str) -> set[int]:
        rows = await self._db.fetch("SELECT line FROM batch_results WHERE batch_id = ?", (batch_id,))
        return {row["line"] for row in rows}

    async def results(self, batch_id: str) -> list[LineResult]:
        rows = await self._db.fetch(
            "SELECT line, succeeded, output FROM batch_results WHERE batch_id = ? ORDER BY line", (batch_id,)
        )
        return [LineResult(row["line"], bool(row["succeeded"]), json.loads(row["output"])) for row in rows]

    async def tally(self, batch_id: str) -> Tally:
        rows = await self._db.fetch(
            "SELECT COALESCE(SUM(succeeded), 0) AS ok, COUNT(*) AS n, COALESCE(SUM(input_tokens), 0) AS i, "
            "COALESCE(SUM(cached_tokens), 0) AS c, COALESCE(SUM(output_tokens), 0) AS o, "
            "COALESCE(SUM(reasoning_tokens), 0) AS r FROM batch_results WHERE batch_id = ?",
            (batch_id,),
        )
        row = rows[0]
        return Tally(row["ok"], row["n"] - row["ok"], Usage(row["i"], row["c"], row["o"], row["r"]))

    async def forget_results(self, batch_id: str) -> None:
        """The lines' rows, once the output and error files hold them."""
        await self._db.execute("DELETE FROM batch_results WHERE batch_id = ?", (batch_id,))
