"""Benchmarks (Llama Stack 0.7's `/v1alpha/eval/benchmarks`): a dataset and the scoring functions
that judge a candidate's answers to it, registered against an eval provider.

Registering checks what the benchmark names: an unknown dataset or scoring function is a 404
naming it (Llama Stack registers anything and fails at run time). PocketStack's built-in
benchmarks (apis/eval/builtin.py) are listed as the eval provider's own.
"""

from __future__ import annotations

from typing import Any, cast

from pocketstack._generated import models, protocols
from pocketstack.config import BenchmarkInput
from pocketstack.core.registry import Resource, Source
from pocketstack.core.resources import BENCHMARK, skipped_provider
from pocketstack.core.stack import Stack
from pocketstack.providers.eval import BenchmarkRef, EvalProvider
from pocketstack.wire.fields import given


def benchmark_response(resource: Resource) -> models.Benchmark:
    return models.Benchmark.model_validate(
        {
            "identifier": resource.identifier,
            "provider_id": resource.provider_id,
            "provider_resource_id": resource.provider_resource_id,
            "type": "benchmark",
            "dataset_id": resource.body["dataset_id"],
            "scoring_functions": resource.body["scoring_functions"],
            "metadata": resource.body.get("metadata", {}),
        }
    )


def benchmark_ref(resource: Resource) -> BenchmarkRef:
    return BenchmarkRef(resource.identifier, resource.body["dataset_id"], list(resource.body["scoring_functions"]))


class BenchmarksApi(protocols.Benchmarks):
    def __init__(
        self, stack: Stack, datasets: protocols.Datasets, scoring_functions: protocols.ScoringFunctions
    ) -> None:
        self.stack = stack
        self.datasets = datasets
        self.scoring_functions = scoring_functions
        self.table = stack.table(BENCHMARK)

    def provider(self, provider_id: str | None = None) -> tuple[str, EvalProvider]:
        instance = self.stack.provider_for("eval", provider_id, must_name="benchmark", example="inline::builtin")
        return instance.config.provider_id, cast(EvalProvider, instance.impl)

    async def build(self, entry: BenchmarkInput, source: Source) -> Resource:
        provider_id, _ = self.provider(entry.provider_id)
        await self.datasets.get_dataset(models.GetDatasetRequest(dataset_id=entry.dataset_id))
        for fn in entry.scoring_functions:
            await self.scoring_functions.get_scoring_function(models.GetScoringFunctionRequest(scoring_fn_id=fn))
        body: dict[str, Any] = {
            "dataset_id": entry.dataset_id,
            "scoring_functions": list(entry.scoring_functions),
            "metadata": entry.metadata,
        }
        provider_resource_id = entry.provider_benchmark_id or entry.benchmark_id
        return Resource(BENCHMARK.type, entry.benchmark_id, provider_id, provider_resource_id, source, 0, body)

    async def sync_from_config(self) -> None:
        """Register `registered_resources.benchmarks`; one naming an unknown dataset or function stops start-up."""
        await self.table.sync_config(
            self.stack.config.registered_resources.benchmarks,
            lambda entry: self.build(entry, "config"),
            name=lambda entry: entry.benchmark_id,
            left_out=lambda entry: skipped_provider(self.stack.skipped, entry.provider_id),
        )

    async def lookup(self, benchmark_id: str) -> Resource:
        return await self.table.get(benchmark_id)

    async def list_benchmarks(self) -> models.ListBenchmarksResponse:
        return models.ListBenchmarksResponse(data=[benchmark_response(r) for r in await self.table.all()])

    async def register_benchmark(self, request: models.RegisterBenchmarkRequest) -> None:
        entry = BenchmarkInput(
            benchmark_id=request.benchmark_id,
            dataset_id=request.dataset_id,
            scoring_functions=list(request.scoring_functions),
            metadata=given(request.metadata) or {},
            provider_id=given(request.provider_id),
            provider_benchmark_id=given(request.provider_benchmark_id),
        )
        await self.table.add(await self.build(entry, "api"))

    async def get_benchmark(self, request: models.GetBenchmarkRequest) -> models.Benchmark:
        return benchmark_response(await self.lookup(request.benchmark_id))

    async def unregister_benchmark(self, request: models.UnregisterBenchmarkRequest) -> None:
        await self.table.remove(await self.lookup(request.benchmark_id))
