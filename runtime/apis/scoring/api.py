"""Scoring (Llama Stack 0.7's `/v1/scoring/score` and `/score-batch`): rows scored by scoring functions.

Each function named is resolved first (an unknown one, or one the user may not read, is a 404),
with the params in force: the call's when it gives them, else the registered ones. Then every
function checks every row before any function scores (a row missing a column a function needs
is a 400 naming the row), so a bad row never costs a judge model's time. Each function's provider
scores the rows; the answer keeps its score rows as the provider made them (plain dicts, no model
built per row).

`score_batch` reads the dataset through the Datasets and DatasetIO APIs, a page at a time. With
`save_results_dataset` it registers a new dataset (Llama Stack raises NotImplementedError there):
each input row with one more column per scoring function, named by the function's id, holding
that row's score row; its id comes back in the answer's `dataset_id`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pocketstack._generated import models, protocols
from pocketstack.apis.scoring.functions import ScoringFunctionsApi
from pocketstack.errors import BadRequestError
from pocketstack.providers.scoring import Row, ScoringProvider
from pocketstack.telemetry import evaluation

PAGE_ROWS = 1000  # rows read from the dataset per iterrows call


@dataclass(frozen=True)
class _Planned:
    """One function of a call, resolved: who scores, with what."""

    scoring_fn_id: str
    provider: ScoringProvider
    provider_fn_id: str
    params: dict[str, Any] | None


class ScoringApi(protocols.Scoring):
    def __init__(
        self, functions: ScoringFunctionsApi, datasets: protocols.Datasets, dataset_io: protocols.DatasetIO
    ) -> None:
        self.functions = functions
        self.datasets = datasets
        self.dataset_io = dataset_io

    async def _plan(self, requested: models.ScoringFunctionsParams) -> list[_Planned]:
        if not requested.root:
            raise BadRequestError("Name at least one scoring function.", param="scoring_functions")
        planned = []
        for scoring_fn_id, call_params in requested.root.items():
            resource, provider = await self.functions.resolve(scoring_fn_id)
            params = call_params.model_dump(mode="json") if call_params is not None else resource.body.get("params")
            planned.append(_Planned(scoring_fn_id, provider, resource.provider_resource_id, params))
        return planned

    async def _score(self, planned: list[_Planned], rows: list[Row]) -> dict[str, models.ScoringResult]:
        for plan in planned:
            plan.provider.check_rows(plan.provider_fn_id, plan.params, rows)
        results = {}
        for plan in planned:
            # A span per function: a judge model's inference calls (LLM-as-judge) run under it.
            with evaluation.score_span(plan.scoring_fn_id, len(rows)) as span:
                scored = await plan.provider.score(plan.provider_fn_id, plan.params, rows)
                evaluation.score_aggregated(span, scored.aggregated_results)
            # Built without validation: the provider's rows are plain JSON values already, and a large call
            # would otherwise pay for a model per row.
            results[plan.scoring_fn_id] = models.ScoringResult.model_construct(
                score_rows=scored.score_rows, aggregated_results=scored.aggregated_results
            )
        return results

    async def score(self, request: models.ScoreRequest) -> models.ScoreResponse:
        planned = await self._plan(request.scoring_functions)
        return models.ScoreResponse.model_construct(results=await self._score(planned, request.input_rows))

    async def _rows(self, dataset_id: str) -> list[Row]:
        await self.datasets.get_dataset(models.GetDatasetRequest(dataset_id=dataset_id))  # 404 when not readable
        rows: list[Row] = []
        while True:
            page = await self.dataset_io.iterrows(
                models.IterrowsRequest(dataset_id=dataset_id, start_index=len(rows), limit=PAGE_ROWS)
            )
            rows.extend(page.data)
            if not page.has_more or not page.data:
                return rows

    async def _save(self, dataset_id: str, rows: list[Row], results: dict[str, models.ScoringResult]) -> str:
        saved_id = f"scored-{dataset_id}-{uuid.uuid4().hex[:8]}"
        scored_rows = [
            {**row, **{fn_id: result.score_rows[index] for fn_id, result in results.items()}}
            for index, row in enumerate(rows)
        ]
        metadata = {
            "source_dataset_id": dataset_id,
            "scoring_functions": list(results),
            "aggregated_results": {fn_id: result.aggregated_results for fn_id, result in results.items()},
        }
        await self.datasets.register_dataset(
            models.RegisterDatasetRequest.model_validate(
                {
                    "purpose": "eval/question-answer",
                    "source": {"type": "rows", "rows": scored_rows},
                    "metadata": metadata,
                    "dataset_id": saved_id,
                }
            )
        )
        return saved_id

    async def score_batch(self, request: models.ScoreBatchRequest) -> models.ScoreBatchResponse:
        planned = await self._plan(request.scoring_functions)
        rows = await self._rows(request.dataset_id)
        results = await self._score(planned, rows)
        if not request.save_results_dataset:
            return models.ScoreBatchResponse.model_construct(results=results)
        saved_id = await self._save(request.dataset_id, rows, results)
        return models.ScoreBatchResponse.model_construct(results=results, dataset_id=saved_id)
