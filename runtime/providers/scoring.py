"""The scoring contract: a provider offers scoring functions and scores rows with them.

A provider lists its built-in functions (`basic::equality`, `llm-as-judge::base`…); the Scoring
Functions API registers them under their own ids, and users register more on top of a provider's
function with their own params (a judge model and template, parsing regexes). Scoring hands the
provider the function it names (`provider_fn_id`), the params in force (the call's, else the
registered ones), and the rows; the provider answers one score row per input row, in order, and
the aggregates its params ask for (`aggregate`, shared by every provider).

Rows are plain dicts with Llama Stack's columns: `input_query`, `generated_answer`,
`expected_answer` (and `chat_completion_input`, `completion_input` for eval). A row the function
cannot read is a BadRequestError naming the row (`check_rows`, which the API runs for every
function of a call before any of them scores, so a bad row never costs a judge model's time); a
row it can read but cannot score (a judge answer no regex matches) gets a score row saying so,
never an error for the whole call.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import Provider

Row = dict[str, Any]
ScoreRow = dict[str, Any]


@dataclass(frozen=True)
class ScoringFnDef:
    """A provider's built-in function, as the Scoring Functions API lists it."""

    identifier: str  # e.g. "basic::equality": the id the Scoring Functions API lists it under
    provider_resource_id: str  # the provider's own name for it, as Llama Stack's: "equality", "subset-of"
    description: str
    return_type: dict[str, Any] = field(default_factory=lambda: {"type": "number"})
    params: dict[str, Any] | None = None  # the default params (a ScoringFnParams as JSON), or None


@dataclass(frozen=True)
class Scored:
    score_rows: list[ScoreRow]
    aggregated_results: dict[str, Any]


class ScoringProvider(Provider, Protocol):
    def functions(self) -> list[ScoringFnDef]:
        """The built-in functions this provider offers."""
        ...

    def check_function(self, provider_fn_id: str, params: dict[str, Any] | None) -> None:
        """Raise a BadRequestError when `provider_fn_id` is not this provider's or `params` do not suit it."""
        ...

    def check_rows(self, provider_fn_id: str, params: dict[str, Any] | None, rows: list[Row]) -> None:
        """Raise a BadRequestError naming the first row the function cannot read (a column it needs missing)."""
        ...

    async def score(self, provider_fn_id: str, params: dict[str, Any] | None, rows: list[Row]) -> Scored:
        """Score `rows` (one score row each, in order) and aggregate as `params` ask; checks them first."""
        ...


def require_columns(rows: list[Row], columns: tuple[str, ...]) -> None:
    """BadRequestError naming the first row without one of `columns` ("Row 3 has no generated_answer")."""
    for index, row in enumerate(rows):
        for column in columns:
            if column not in row:
                raise BadRequestError(
                    f"Row {index} has no {column}.", param=f"input_rows.{index}", code="missing_column"
                )


def _number(score: Any) -> float | None:
    """A score as a number: judges answer with text ("7"), which counts when it reads as one."""
    if isinstance(score, bool) or not isinstance(score, int | float | str):
        return None
    try:
        return float(score)
    except ValueError:
        return None


def _scores(rows: list[ScoreRow]) -> list[float]:
    return [number for row in rows if (number := _number(row.get("score"))) is not None]


def _accuracy(rows: list[ScoreRow]) -> dict[str, Any]:
    # A row that could not be scored (score None: a judge answer no regex matched) counts as wrong.
    correct = sum(_scores(rows))
    return {"accuracy": correct / len(rows) if rows else 0.0, "num_correct": correct, "num_total": len(rows)}


def _average(rows: list[ScoreRow]) -> dict[str, Any]:
    scores = _scores(rows)
    return {"average": statistics.fmean(scores) if scores else None}


def _weighted_average(rows: list[ScoreRow]) -> dict[str, Any]:
    pairs = [
        (score, float(row.get("weight", 1.0)))
        for row in rows
        if (score := _number(row.get("score"))) is not None and isinstance(row.get("weight", 1.0), int | float)
    ]
    total = sum(weight for _, weight in pairs)
    return {"weighted_average": sum(score * weight for score, weight in pairs) / total if total else None}


def _median(rows: list[ScoreRow]) -> dict[str, Any]:
    scores = _scores(rows)
    return {"median": statistics.median(scores) if scores else None}


def _categorical_count(rows: list[ScoreRow]) -> dict[str, Any]:
    counts = Counter(str(row.get("score")) for row in rows)
    return {"categorical_count": dict(sorted(counts.items()))}


AGGREGATIONS: dict[str, Callable[[list[ScoreRow]], dict[str, Any]]] = {
    "accuracy": _accuracy,
    "average": _average,
    "weighted_average": _weighted_average,
    "median": _median,
    "categorical_count": _categorical_count,
}


def aggregation_functions(params: dict[str, Any] | None, default: list[str] | None = None) -> list[str]:
    """The aggregation functions `params` (a ScoringFnParams as JSON) ask for; `default` when they do not
    say (an empty list says none). BadRequestError for a name that is not one of AGGREGATIONS."""
    asked = (params or {}).get("aggregation_functions")
    names = list(default or []) if asked is None else list(asked)
    unknown = [name for name in names if name not in AGGREGATIONS]
    if unknown:
        raise BadRequestError(
            f"Unknown aggregation function {unknown[0]!r} (known: {', '.join(AGGREGATIONS)}).",
            param="params.aggregation_functions",
        )
    return names


def aggregate(rows: list[ScoreRow], functions: list[str]) -> dict[str, Any]:
    """Llama Stack's aggregated_results: each function's name -> its metrics (accuracy: accuracy,
    num_correct, num_total; average; weighted_average (a row's `weight`, default 1); median;
    categorical_count). Rows without a numeric score (a number, or text that reads as one) are left out
    of the means, and wrong for accuracy."""
    return {name: AGGREGATIONS[name](rows) for name in functions}


def compile_regexes(regexes: list[str], param: str) -> list[re.Pattern[str]]:
    """The params' regexes compiled; one that does not compile is a 400 naming it (`param`: its field)."""
    patterns = []
    for index, regex in enumerate(regexes):
        try:
            patterns.append(re.compile(regex))
        except re.error as exc:
            raise BadRequestError(
                f"{param}[{index}] {regex!r} is not a valid regex: {exc}.",
                param=f"params.{param}",
                code="invalid_regex",
            ) from None
    return patterns


def first_match(patterns: list[re.Pattern[str]], text: str) -> str | None:
    """The first group (the whole match if it has none) of the first pattern that matches."""
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return match.group(1) if pattern.groups else match.group(0)
    return None
