"""The eval contract: a provider runs a benchmark's rows through a candidate and scores the answers.

The Eval API resolves the benchmark (its dataset and scoring functions) and checks who may see a
job; the provider generates, scores, keeps its jobs and their results. Jobs belong to a benchmark:
a job asked for under another benchmark is not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pocketstack.providers.base import Provider

if TYPE_CHECKING:
    from pocketstack._generated import models
    from pocketstack.storage.eval_jobs import StoredJob
    from pocketstack.storage.owners import Owner


@dataclass(frozen=True)
class BenchmarkRef:
    benchmark_id: str
    dataset_id: str
    scoring_functions: list[str]


class EvalProvider(Provider, Protocol):
    async def start(self) -> None:
        """Resume the jobs a stop interrupted (the APIs it calls are assembled by now)."""
        ...

    async def pause(self) -> None:
        """Stop running jobs before the APIs they call stop; they stay unfinished and resume at the next start."""
        ...

    async def evaluate_rows(
        self, rows: list[dict[str, Any]], scoring_functions: list[str], config: models.BenchmarkConfig
    ) -> models.EvaluateResponse: ...

    async def run_eval(
        self, benchmark: BenchmarkRef, config: models.BenchmarkConfig, *, background: bool, owner: Owner | None
    ) -> StoredJob:
        """Create a job and run it: to its end unless `background` (then it answers at once)."""
        ...

    async def find_job(self, benchmark_id: str, job_id: str) -> StoredJob | None: ...

    async def cancel(self, job: StoredJob) -> None: ...

    async def result(self, job: StoredJob) -> models.EvaluateResponse: ...
