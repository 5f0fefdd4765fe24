"""Eval (Llama Stack 0.7's `/v1alpha/eval/benchmarks/{id}/…`): evaluations of given rows, and jobs.

The benchmark names the eval provider that runs it; the provider keeps the jobs. Who may see a
job follows its owner (the user who ran it); a job that is not visible, or that belongs to
another benchmark, is a 404 (Llama Stack answers an unknown job with a 400).
"""

from __future__ import annotations

from pocketstack._generated import models, protocols
from pocketstack.apis.eval.benchmarks import BenchmarksApi, benchmark_ref
from pocketstack.errors import NotFoundError
from pocketstack.providers.eval import EvalProvider
from pocketstack.security.access import EVAL_JOB, Action
from pocketstack.storage.eval_jobs import StoredJob
from pocketstack.wire.fields import given


def job_response(job: StoredJob) -> models.Job:
    return models.Job.model_validate(
        {
            "job_id": job.job_id,
            "status": job.status,
            "rows_done": job.rows_done,
            "rows_total": job.rows_total,
            "results_dataset_id": job.results_dataset_id,
            "error": job.error,
        }
    )


class EvalApi(protocols.Eval):
    def __init__(self, benchmarks: BenchmarksApi) -> None:
        self.benchmarks = benchmarks
        self.access = benchmarks.stack.access

    async def start(self) -> None:
        """Resume the jobs a stop interrupted, once every API the providers call is assembled."""
        for instance in self.benchmarks.stack.providers_of("eval"):
            provider: EvalProvider = instance.impl  # type: ignore[assignment]
            await provider.start()

    async def stop(self) -> None:
        for instance in self.benchmarks.stack.providers_of("eval"):
            provider: EvalProvider = instance.impl  # type: ignore[assignment]
            await provider.pause()

    async def _job(self, benchmark_id: str, job_id: str, action: Action) -> tuple[EvalProvider, StoredJob]:
        resource = await self.benchmarks.lookup(benchmark_id)
        _, provider = self.benchmarks.provider(resource.provider_id)
        missing = NotFoundError(f"Job {job_id} not found for benchmark '{benchmark_id}'.", code="job_not_found")
        job = await provider.find_job(resource.identifier, job_id)
        if job is None:
            raise missing
        self.access.check(action, EVAL_JOB, job.job_id, job.owner, missing)
        return provider, job

    async def evaluate_rows(self, request: models.EvaluateRowsRequest) -> models.EvaluateResponse:
        resource = await self.benchmarks.lookup(request.benchmark_id)
        _, provider = self.benchmarks.provider(resource.provider_id)
        return await provider.evaluate_rows(
            list(request.input_rows), list(request.scoring_functions), request.benchmark_config
        )

    async def run_eval(self, request: models.RunEvalRequest) -> models.Job:
        resource = await self.benchmarks.lookup(request.benchmark_id)
        _, provider = self.benchmarks.provider(resource.provider_id)
        self.access.check_create(EVAL_JOB, resource.identifier)
        job = await provider.run_eval(
            benchmark_ref(resource),
            request.benchmark_config,
            background=bool(given(request.background, False)),
            owner=self.access.owner(),
        )
        return job_response(job)

    async def job_status(self, request: models.JobStatusRequest) -> models.Job:
        _, job = await self._job(request.benchmark_id, request.job_id, Action.READ)
        return job_response(job)

    async def job_cancel(self, request: models.JobCancelRequest) -> None:
        provider, job = await self._job(request.benchmark_id, request.job_id, Action.DELETE)
        await provider.cancel(job)

    async def job_result(self, request: models.JobResultRequest) -> models.EvaluateResponse:
        provider, job = await self._job(request.benchmark_id, request.job_id, Action.READ)
        return await provider.result(job)
