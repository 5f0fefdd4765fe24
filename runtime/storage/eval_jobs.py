"""Eval jobs (the builtin eval provider's), in SQLite: a job outlives a restart and resumes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pocketstack.storage.owners import OWNER_COLUMNS, Owner, owner_of, owner_values
from pocketstack.storage.sqlite import Database, Row

UNFINISHED = ("scheduled", "in_progress")


@dataclass(frozen=True)
class StoredJob:
    job_id: str
    benchmark_id: str
    provider_id: str
    status: str
    request: dict[str, Any]  # what the job runs: the benchmark config, scoring functions, dataset
    rows_total: int
    rows_done: int
    results_dataset_id: str
    aggregates: dict[str, Any] | None
    error: str | None
    owner: Owner | None


def _job(row: Row) -> StoredJob:
    return StoredJob(
        job_id=str(row["job_number"]),
        benchmark_id=row["benchmark_id"],
        provider_id=row["provider_id"],
        status=row["status"],
        request=json.loads(row["request"]),
        rows_total=row["rows_total"],
        rows_done=row["rows_done"],
        results_dataset_id=row["results_dataset_id"],
        aggregates=json.loads(row["aggregates"]) if row["aggregates"] else None,
        error=row["error"],
        owner=owner_of(row),
    )


class EvalJobStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def next_number(self) -> int:
        rows = await self._db.fetch("SELECT COALESCE(MAX(job_number) + 1, 0) AS n FROM eval_jobs")
        return int(rows[0]["n"])

    async def create(
        self,
        number: int,
        benchmark_id: str,
        provider_id: str,
        request: dict[str, Any],
        rows_total: int,
        results_dataset_id: str,
        owner: Owner | None,
    ) -> StoredJob:
        await self._db.execute(
            "INSERT INTO eval_jobs (job_number, benchmark_id, provider_id, status, request, rows_total, "
            f"results_dataset_id, created_at, {OWNER_COLUMNS}) VALUES (?, ?, ?, 'scheduled', ?, ?, ?, ?, ?, ?)",
            (
                number,
                benchmark_id,
                provider_id,
                json.dumps(request),
                rows_total,
                results_dataset_id,
                int(time.time()),
                *owner_values(owner),
            ),
        )
        found = await self.get(str(number))
        assert found is not None
        return found

    async def get(self, job_id: str) -> StoredJob | None:
        if not job_id.isdigit():
            return None
        rows = await self._db.fetch("SELECT * FROM eval_jobs WHERE job_number = ?", (int(job_id),))
        return _job(rows[0]) if rows else None

    async def unfinished(self, provider_id: str) -> list[StoredJob]:
        rows = await self._db.fetch(
            "SELECT * FROM eval_jobs WHERE provider_id = ? AND status IN (?, ?) ORDER BY job_number",
            (provider_id, *UNFINISHED),
        )
        return [_job(row) for row in rows]

    async def set_status(self, job_id: str, status: str, *, only_from: tuple[str, ...] = UNFINISHED) -> bool:
        """Move an unfinished job to `status`; False when it had already finished (or is unknown)."""
        marks = ", ".join("?" for _ in only_from)
        before = await self.get(job_id)
        if before is None or before.status not in only_from:
            return False
        await self._db.execute(
            f"UPDATE eval_jobs SET status = ? WHERE job_number = ? AND status IN ({marks})",
            (status, int(job_id), *only_from),
        )
        return True

    async def progress(self, job_id: str, rows_done: int) -> None:
        await self._db.execute("UPDATE eval_jobs SET rows_done = ? WHERE job_number = ?", (rows_done, int(job_id)))

    async def finish(
        self, job_id: str, status: str, *, aggregates: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        """Record a job's end, unless it was cancelled meanwhile (a cancel wins)."""
        await self._db.execute(
            "UPDATE eval_jobs SET status = ?, aggregates = ?, error = ?, finished_at = ? "
            "WHERE job_number = ? AND status IN (?, ?)",
            (
                status,
                json.dumps(aggregates) if aggregates is not None else None,
                error,
                int(time.time()),
                int(job_id),
                *UNFINISHED,
            ),
        )
