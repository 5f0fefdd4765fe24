"""PocketStack's built-in benchmarks: small, written for this project, shipped with the package, so
`pocketstack eval run pocketstack::arithmetic --model <id>` works offline out of the box.

Each is a dataset (listed as the datasetio provider's own, its rows loaded at the first start)
and a benchmark (the eval provider's own). The benchmark's metadata carries the candidate
settings its scoring expects: the system message that asks for the parsed answer format, and
max_tokens, and scoring params whose parsing regexes read the answers small models give ("C. Earth",
"33 + 25 = 58") besides the strict formats Llama Stack's defaults expect ("Answer: C", "The final
answer is $\\boxed{58}$"); a client (the CLI) passes them unless told otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pocketstack.apis.datasets import DatasetsApi
from pocketstack.apis.eval.benchmarks import BenchmarksApi
from pocketstack.config import DatasetInput
from pocketstack.core.registry import Resource
from pocketstack.core.resources import BENCHMARK
from pocketstack.core.stack import Stack


@dataclass(frozen=True)
class BuiltinBenchmark:
    benchmark_id: str
    dataset_file: str
    scoring_function: str
    system_message: str
    max_tokens: int
    description: str
    parsing_regexes: tuple[str, ...]

    @property
    def dataset_id(self) -> str:
        return self.benchmark_id.replace("::", "/")

    def metadata(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "system_message": self.system_message,
            "max_tokens": self.max_tokens,
            "scoring_params": {
                self.scoring_function: {
                    "type": "regex_parser",
                    "parsing_regexes": list(self.parsing_regexes),
                    "aggregation_functions": ["accuracy"],
                }
            },
            "builtin": True,
        }


BUILTIN_BENCHMARKS = (
    BuiltinBenchmark(
        benchmark_id="pocketstack::arithmetic",
        dataset_file="arithmetic.jsonl",
        scoring_function="basic::regex_parser_math_response",
        system_message="Solve the arithmetic problem. End your answer with: The final answer is $\\boxed{N}$ "
        "where N is the number.",
        max_tokens=96,
        description="50 additions, subtractions and multiplications of small integers; "
        "the answer parsed from 'The final answer is $\\boxed{N}$', else the first '= N'.",
        # One regex (the function takes one): the boxed final answer, else the first "= N".
        parsing_regexes=(r"(?:final answer is:?\s*\$?\\boxed\{|=\s*)(-?\d+)",),
    ),
    BuiltinBenchmark(
        benchmark_id="pocketstack::multiple-choice",
        dataset_file="multiple_choice.jsonl",
        scoring_function="basic::regex_parser_multiple_choice_answer",
        system_message="Answer the multiple-choice question with the letter of the correct option, as: Answer: X",
        max_tokens=32,
        description="50 general-knowledge questions with four options (A-D); the letter parsed from "
        "'Answer: X', else from an answer that starts with it ('C. Earth').",
        parsing_regexes=(r"(?i)answer\s*(?:is)?\s*:?\s*\(?([A-D])\b", r"^\s*\(?([A-D])[.):]"),
    ),
)


def _rows(name: str) -> list[dict[str, Any]]:
    text = resources.files("pocketstack.distributions").joinpath("benchmarks", name).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def builtin_datasets() -> list[DatasetInput]:
    return [
        DatasetInput(
            dataset_id=benchmark.dataset_id,
            purpose="eval/question-answer",
            source={"type": "rows", "rows": _rows(benchmark.dataset_file)},
            metadata={"description": benchmark.description, "builtin": True},
        )
        for benchmark in BUILTIN_BENCHMARKS
    ]


def builtin_benchmarks(provider_id: str) -> list[Resource]:
    return [
        Resource(
            BENCHMARK.type,
            benchmark.benchmark_id,
            provider_id,
            benchmark.benchmark_id,
            "provider",
            0,
            {
                "dataset_id": benchmark.dataset_id,
                "scoring_functions": [benchmark.scoring_function],
                "metadata": benchmark.metadata(),
            },
        )
        for benchmark in BUILTIN_BENCHMARKS
    ]


async def sync_builtin(stack: Stack, datasets: DatasetsApi, benchmarks: BenchmarksApi) -> None:
    """List the built-in benchmarks and their datasets, where eval and datasetio are served."""
    evals, datasetios = stack.providers_of("eval"), stack.providers_of("datasetio")
    if not evals or not datasetios:
        return
    await datasets.sync_builtin(builtin_datasets())
    provider_id = evals[0].config.provider_id
    await benchmarks.table.sync_provider(provider_id, builtin_benchmarks(provider_id))
