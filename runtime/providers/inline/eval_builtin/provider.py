"""inline::builtin eval: a benchmark's rows through a candidate, scored, kept as a dataset.

A job numbers like Llama Stack's builtin provider ("0", "1"…) and, as there, `run_eval` answers
when the job has run (completed or failed); `background: true` answers at once. Either way the
job runs as a task of this provider, so a client that leaves does not stop it, and a stop
leaves it unfinished: the next start resumes it.

Rows go in batches of `max_concurrency`, generated concurrently (the inference provider's queue
takes them, and batches them where it can), scored together, then appended to the job's results
dataset in row order: each results row is the input row plus `generated_answer` plus one column
per scoring function holding its score row. The results dataset is the job's progress: a
resumed job starts at its row count, so no row is generated or scored twice, and a batch cut
short by a stop or a cancel is dropped whole. The aggregates are computed once, at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pocketstack._generated import models
from pocketstack.errors import BadRequestError, ConflictError, PocketStackError
from pocketstack.providers.base import Health, ProviderContext
from pocketstack.providers.eval import BenchmarkRef
from pocketstack.providers.inline.eval_builtin import candidates
from pocketstack.providers.inline.eval_builtin.config import BuiltinEvalConfig
from pocketstack.providers.priority import background_work, patiently
from pocketstack.providers.scoring import aggregate, aggregation_functions
from pocketstack.security.principal import User, reset_current_user, set_current_user
from pocketstack.storage.eval_jobs import EvalJobStore, StoredJob
from pocketstack.storage.owners import Owner
from pocketstack.telemetry import evaluation
from pocketstack.telemetry.background import creating_context, failed

log = logging.getLogger(__name__)
Row = dict[str, Any]
Answer = Callable[[Row, int], Awaitable[Row]]
PAGE = 1000  # rows read per iterrows call
RETRIES = 8  # a full inference queue (429) is waited out this many times per row (other clients first)


class BuiltinEval:
    def __init__(self, config: BuiltinEvalConfig, context: ProviderContext) -> None:
        if context.database is None:
            raise RuntimeError("inline::builtin eval needs the state database")
        self._jobs = EvalJobStore(context.database)
        self._routers = context.routers
        self._provider_id = context.provider_id
        self._concurrency = config.max_concurrency
        self._tasks: dict[str, asyncio.Task[PocketStackError | None]] = {}
        self._numbering = asyncio.Lock()

    async def initialize(self) -> None:
        return None

    async def health(self) -> Health:
        return Health("OK")

    async def start(self) -> None:
        for job in await self._jobs.unfinished(self._provider_id):
            log.info("eval job %s (%s) resumes", job.job_id, job.benchmark_id)
            self._launch(job)

    async def shutdown(self) -> None:
        await self.pause()

    async def pause(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- generation ---------------------------------------------------------------------------

    async def _check_candidate(self, config: models.BenchmarkConfig) -> None:
        """An unknown model is the request's 404, before a job exists."""
        candidate = config.eval_candidate
        model = candidate.config.model if isinstance(candidate, models.AgentCandidate) else candidate.model
        await self._routers.models.get_model(models.GetModelRequest(model_id=model))

    @contextlib.asynccontextmanager
    async def _answerer(self, config: models.BenchmarkConfig) -> AsyncIterator[Answer]:
        """What answers a row; an agent candidate is created for the run and deleted after it."""
        candidate = config.eval_candidate
        if isinstance(candidate, models.ModelCandidate):
            yield lambda row, index: candidates.model_answer(self._routers, candidate, row, index)
            return
        created = await self._routers.agents.create_agent(
            models.AgentCreation.model_validate({"agent_config": candidate.config.model_dump(mode="json")})
        )
        try:
            yield lambda row, index: candidates.agent_answer(self._routers, created.agent_id, row, index)
        finally:
            await asyncio.shield(
                self._routers.agents.delete_agent(models.DeleteAgentRequest(agent_id=created.agent_id))
            )

    async def _generate(
        self, answer: Answer, rows: list[Row], first_index: int, spans: list[evaluation.RowSpan]
    ) -> list[Row]:
        """Each row's answer, its `evaluate_row` span (added to `spans`, for its scores) current meanwhile."""
        limit = asyncio.Semaphore(self._concurrency)

        async def one(offset: int, row: Row) -> Row:
            async with limit:
                span = evaluation.RowSpan(first_index + offset)
                spans.append(span)
                with span.current():
                    return await patiently(lambda: answer(row, first_index + offset), retries=RETRIES)

        tasks = [asyncio.ensure_future(one(offset, row)) for offset, row in enumerate(rows)]
        try:
            return list(await asyncio.gather(*tasks))
        finally:  # a row that failed fails the batch: the others stop rather than run on unseen
            for task in tasks:
                task.cancel()

    async def _evaluate(
        self, answer: Answer, rows: list[Row], first_index: int, functions: list[str], config: models.BenchmarkConfig
    ) -> tuple[list[Row], dict[str, models.ScoringResult]]:
        """Rows generated, then scored together; each row's span ends with its scores on it."""
        spans: list[evaluation.RowSpan] = []
        try:
            generations = await self._generate(answer, rows, first_index, spans)
            scores = await self._score(rows, generations, functions, config)
            for span in spans:
                offset = span.index - first_index
                span.scored({fn: result.score_rows[offset] for fn, result in scores.items()})
            return generations, scores
        finally:
            for span in spans:
                span.end()

    async def _score(
        self, rows: list[Row], generations: list[Row], functions: list[str], config: models.BenchmarkConfig
    ) -> dict[str, models.ScoringResult]:
        params = given_params(config)
        request = models.ScoreRequest.model_validate(
            {
                "input_rows": [row | generated for row, generated in zip(rows, generations, strict=True)],
                "scoring_functions": {fn: params.get(fn) for fn in functions},
            }
        )
        return (await self._routers.scoring.score(request)).results

    async def evaluate_rows(
        self, rows: list[Row], scoring_functions: list[str], config: models.BenchmarkConfig
    ) -> models.EvaluateResponse:
        await self._check_candidate(config)
        async with self._answerer(config) as answer:
            generations, scores = await self._evaluate(answer, rows, 0, scoring_functions, config)
        return models.EvaluateResponse(generations=generations, scores=scores)

    # -- jobs ---------------------------------------------------------------------------------

    async def _count(self, dataset_id: str, limit: int | None) -> int:
        total, start = 0, 0
        while limit is None or total < limit:
            page = await self._routers.dataset_io.iterrows(
                models.IterrowsRequest(dataset_id=dataset_id, start_index=start, limit=PAGE)
            )
            total += len(page.data)
            start += len(page.data)
            if not page.has_more:
                break
        return total if limit is None else min(total, limit)

    async def run_eval(
        self, benchmark: BenchmarkRef, config: models.BenchmarkConfig, *, background: bool, owner: Owner | None
    ) -> StoredJob:
        await self._check_candidate(config)
        num_examples = config.num_examples if isinstance(config.num_examples, int) else None
        rows_total = await self._count(benchmark.dataset_id, num_examples)
        request = {
            "benchmark_config": config.model_dump(mode="json", exclude_unset=True),
            "dataset_id": benchmark.dataset_id,
            "scoring_functions": benchmark.scoring_functions,
            # The creating request's span, for the job's runs to link to (a resumed run included).
            evaluation.TRACE_CONTEXT: creating_context(),
        }
        async with self._numbering:
            number = await self._jobs.next_number()
            while not await self._results_dataset(number, benchmark.benchmark_id):
                number += 1  # the name is another dataset's: the job takes the next number
            results_id = f"eval-job-{number}"
            job = await self._jobs.create(
                number, benchmark.benchmark_id, self._provider_id, request, rows_total, results_id, owner
            )
        task = self._launch(job)
        if not background:
            # As Llama Stack: the call answers when the job has run, and a bad request (an unknown
            # model, a malformed row) is its error. A client that leaves leaves the job running.
            try:
                failure = await asyncio.shield(task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not task.cancelled() or (current is not None and current.cancelling()):
                    raise  # this request was cancelled, not the job
                failure = None  # the job was cancelled meanwhile (a DELETE, or a stop): its status says so
            if failure is not None:
                raise failure
        found = await self._jobs.get(job.job_id)
        assert found is not None
        return found

    async def _results_dataset(self, number: int, benchmark_id: str) -> bool:
        """Register job `number`'s (empty) results dataset; False when another dataset has its name.

        The dataset is registered before the job is recorded, so a server killed in between leaves
        one that no job owns, under the number the next job takes: that one is registered afresh
        (it has no rows) rather than refused with a 409 at every job from then on.
        """
        results_id = f"eval-job-{number}"
        request = models.RegisterDatasetRequest.model_validate(
            {
                "dataset_id": results_id,
                "purpose": "eval/question-answer",
                "source": {"type": "rows", "rows": []},
                "metadata": {"eval_job_id": str(number), "benchmark_id": benchmark_id},
            }
        )
        datasets = self._routers.datasets
        try:
            await datasets.register_dataset(request)
            return True
        except ConflictError:
            pass
        try:  # one this user may not see or remove is left as it is: the job takes the next number
            existing = await datasets.get_dataset(models.GetDatasetRequest(dataset_id=results_id))
            if (existing.metadata or {}).get("eval_job_id") != str(number):
                return False
            await datasets.unregister_dataset(models.UnregisterDatasetRequest(dataset_id=results_id))
        except PocketStackError:
            return False
        log.info("eval job %s: its results dataset was left by a server that stopped before recording it", number)
        await datasets.register_dataset(request)
        return True

    def _launch(self, job: StoredJob) -> asyncio.Task[PocketStackError | None]:
        task = asyncio.create_task(self._run(job), name=f"eval-job-{job.job_id}")
        self._tasks[job.job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job.job_id, None))
        return task

    async def _run(self, job: StoredJob) -> PocketStackError | None:
        """Run the job to its end; the error it failed with, if it failed with one of ours."""
        # A resumed job acts as its owner: the datasets it reads and writes are checked against them.
        owner = job.owner
        user = User(owner.principal, {k: list(v) for k, v in owner.attributes.items()}) if owner else None
        token = set_current_user(user)
        # Its own trace, started as the owner (so the spans are theirs), linked to the creating request.
        tracing = evaluation.job_span(
            job.benchmark_id, job.job_id, job.rows_total, job.rows_done, job.request.get(evaluation.TRACE_CONTEXT)
        )
        try:
            with tracing as span:
                try:
                    await self._jobs.set_status(job.job_id, "in_progress")
                    with background_work():  # a job's rows wait behind interactive requests for the same model
                        aggregates, rows_done = await self._work(job)
                    await self._jobs.finish(job.job_id, "completed", aggregates=aggregates)
                    evaluation.job_ended(span, "completed", rows_done, aggregates)
                    return None
                except asyncio.CancelledError:
                    evaluation.job_ended(span, "stopped", None, None)  # not a failure: a cancel or a server stop
                    raise  # a stop (resumed at the next start) or a cancel (already recorded)
                except PocketStackError as exc:
                    await self._jobs.finish(job.job_id, "failed", error=exc.message)
                    evaluation.job_ended(span, "failed", None, None)
                    failed(span, type(exc).__name__, exc.message)
                    return exc
                except Exception as exc:  # the job fails; the server goes on
                    log.exception("eval job %s failed", job.job_id)
                    await self._jobs.finish(job.job_id, "failed", error=f"{type(exc).__name__}: {exc}")
                    evaluation.job_ended(span, "failed", None, None)
                    failed(span, type(exc).__name__)
                    return None
        finally:
            reset_current_user(token)

    async def _results(self, job: StoredJob, start_index: int = 0) -> list[Row]:
        page = await self._routers.dataset_io.iterrows(
            models.IterrowsRequest(dataset_id=job.results_dataset_id, start_index=start_index, limit=-1)
        )
        return list(page.data)

    async def _work(self, job: StoredJob) -> tuple[dict[str, Any], int]:
        """The job's aggregates and its rows done."""
        config = models.BenchmarkConfig.model_validate(job.request["benchmark_config"])
        # rows_done is written after each append, so it can only lag the dataset: count from there.
        done = job.rows_done + len(await self._results(job, job.rows_done))
        await self._jobs.progress(job.job_id, done)
        async with self._answerer(config) as answer:
            await self._run_batches(job, config, answer, done)
        results = await self._results(job)
        return await self._aggregates(results, job.request["scoring_functions"], config), len(results)

    async def _run_batches(self, job: StoredJob, config: models.BenchmarkConfig, answer: Answer, done: int) -> None:
        functions: list[str] = job.request["scoring_functions"]
        batch = max(self._concurrency, 1)
        while done < job.rows_total:
            page = await self._routers.dataset_io.iterrows(
                models.IterrowsRequest(
                    dataset_id=job.request["dataset_id"], start_index=done, limit=min(batch, job.rows_total - done)
                )
            )
            rows = list(page.data)
            if not rows:
                break  # the dataset shrank under the job: it ends with what there is
            generations, scores = await self._evaluate(answer, rows, done, functions, config)
            results = [
                rows[i] | generations[i] | {fn: scores[fn].score_rows[i] for fn in functions} for i in range(len(rows))
            ]
            await self._routers.dataset_io.append_rows(
                models.AppendRowsRequest(dataset_id=job.results_dataset_id, rows=results)
            )
            done += len(rows)
            await self._jobs.progress(job.job_id, done)

    async def _aggregates(
        self, results: list[Row], functions: list[str], config: models.BenchmarkConfig
    ) -> dict[str, Any]:
        params = given_params(config)
        aggregates = {}
        for fn in functions:
            fn_params = params.get(fn)
            if fn_params is None:
                registered = await self._routers.scoring_functions.get_scoring_function(
                    models.GetScoringFunctionRequest(scoring_fn_id=fn)
                )
                fn_params = registered.model_dump(mode="json").get("params")
            aggregates[fn] = aggregate([row.get(fn) or {} for row in results], aggregation_functions(fn_params))
        return aggregates

    async def find_job(self, benchmark_id: str, job_id: str) -> StoredJob | None:
        job = await self._jobs.get(job_id)
        return job if job is not None and job.benchmark_id == benchmark_id else None

    async def cancel(self, job: StoredJob) -> None:
        if job.status == "cancelled":
            return
        if not await self._jobs.set_status(job.job_id, "cancelled"):
            raise BadRequestError(
                f"Job {job.job_id} has already {job.status}; only a scheduled or running job can be cancelled.",
                code="job_finished",
            )
        task = self._tasks.get(job.job_id)
        if task is not None:
            task.cancel()

    async def result(self, job: StoredJob) -> models.EvaluateResponse:
        if job.status != "completed":
            raise BadRequestError(f"Job is not completed, Status: {job.status}", code="job_not_completed")
        results = await self._results(job)
        functions: list[str] = job.request["scoring_functions"]
        aggregates = job.aggregates or {}
        return models.EvaluateResponse(
            generations=[{"generated_answer": row.get("generated_answer")} for row in results],
            scores={
                fn: models.ScoringResult(
                    score_rows=[row.get(fn) or {} for row in results], aggregated_results=aggregates.get(fn, {})
                )
                for fn in functions
            },
        )


def given_params(config: models.BenchmarkConfig) -> dict[str, dict[str, Any]]:
    """The benchmark config's scoring params, as JSON, by function id."""
    raw = config.model_dump(mode="json", exclude_unset=True).get("scoring_params") or {}
    return {fn: params for fn, params in raw.items() if isinstance(params, dict)}
