"""inline::basic scoring: Llama Stack's basic functions, answers compared without a model.

`basic::equality` and `basic::subset_of` compare `generated_answer` with `expected_answer`;
the regex parsers first parse the answer out of the response (a multiple-choice letter, a math
answer, by the function's `parsing_regexes` or the call's); `basic::docvqa` normalises both
sides as DocVQA does; `basic::ifeval` checks IFEval's instructions. Scores are 1.0 / 0.0 (ifeval:
the share of instructions followed, weighted by their count).

Scoring is plain Python over plain dicts, a list comprehension per function: no model is built
per row, so a large call costs little more than reading its rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import ProviderContext, Stateless
from pocketstack.providers.inline.scoring_basic import docvqa, ifeval
from pocketstack.providers.inline.scoring_basic.config import BasicScoringConfig
from pocketstack.providers.inline.scoring_basic.math_answers import MATH_ANSWER_REGEXES, math_answers_match
from pocketstack.providers.inline.scoring_basic.multiple_choice import MULTIPLE_CHOICE_REGEXES
from pocketstack.providers.scoring import (
    Row,
    Scored,
    ScoreRow,
    ScoringFnDef,
    aggregate,
    aggregation_functions,
    compile_regexes,
    first_match,
    require_columns,
)

ANSWERS = ("generated_answer", "expected_answer")
Scorer = Callable[[list[Row]], list[ScoreRow]]


def _text(value: Any) -> str:
    # CSV rows hold text; JSON rows may hold a number ("expected_answer": 4): compared as its text.
    return value if isinstance(value, str) else json.dumps(value)


def _equality(rows: list[Row]) -> list[ScoreRow]:
    # Compared as given, as Llama Stack does (4 and "4" differ).
    return [{"score": 1.0 if row["expected_answer"] == row["generated_answer"] else 0.0} for row in rows]


def _subset_of(rows: list[Row]) -> list[ScoreRow]:
    return [{"score": 1.0 if _text(row["expected_answer"]) in _text(row["generated_answer"]) else 0.0} for row in rows]


def _docvqa_answers(row: Row, index: int) -> list[str]:
    """The accepted answers: `expected_answer` is a JSON list of them (as in DocVQA's data)."""
    try:
        answers = json.loads(row["expected_answer"]) if isinstance(row["expected_answer"], str) else None
    except ValueError:
        answers = None
    if not isinstance(answers, list):
        raise BadRequestError(
            f"Row {index}'s expected_answer is not a JSON list of accepted answers (basic::docvqa).",
            param=f"input_rows.{index}.expected_answer",
            code="malformed_row",
        )
    return [_text(answer) for answer in answers]


def _docvqa(rows: list[Row]) -> list[ScoreRow]:
    scored = []
    for index, row in enumerate(rows):
        accepted = {docvqa.normalize_answer(answer) for answer in _docvqa_answers(row, index)}
        scored.append({"score": 1.0 if docvqa.normalize_answer(_text(row["generated_answer"])) in accepted else 0.0})
    return scored


def _ifeval_instructions(row: Row, index: int) -> list[tuple[str, dict[str, Any]]]:
    try:
        return ifeval.instruction_args(row)
    except ValueError as exc:
        raise BadRequestError(
            f"Row {index}: {exc} (basic::ifeval).", param=f"input_rows.{index}", code="malformed_row"
        ) from None


def _ifeval(rows: list[Row]) -> list[ScoreRow]:
    scored = []
    for index, row in enumerate(rows):
        try:
            scored.append(ifeval.score_instructions(_text(row["generated_answer"]), _ifeval_instructions(row, index)))
        except ifeval.InstructionArgsError as exc:
            raise BadRequestError(
                f"Row {index}: instruction {exc} (basic::ifeval).", param=f"input_rows.{index}.kwargs"
            ) from None
    return scored


def _multiple_choice(regexes: list[str]) -> Scorer:
    patterns = compile_regexes(regexes, "parsing_regexes")

    def score(rows: list[Row]) -> list[ScoreRow]:
        scored = []
        for row in rows:
            parsed = first_match(patterns, _text(row["generated_answer"]))
            scored.append({"score": 1.0 if parsed and parsed == row["expected_answer"] else 0.0})
        return scored

    return score


def _math(regexes: list[str]) -> Scorer:
    if len(regexes) != 1:
        raise BadRequestError(
            "basic::regex_parser_math_response parses with exactly one regex (its group is the answer).",
            param="params.parsing_regexes",
        )
    compile_regexes(regexes, "parsing_regexes")
    regex = regexes[0]

    def score(rows: list[Row]) -> list[ScoreRow]:
        return [
            {"score": 1.0 if math_answers_match(_text(generated), _text(expected), regex) else 0.0}
            for generated, expected in ((row["generated_answer"], row["expected_answer"]) for row in rows)
        ]

    return score


@dataclass(frozen=True)
class BasicFunction:
    definition: ScoringFnDef
    columns: tuple[str, ...]  # what a row must have
    scorer: Callable[[list[str] | None], Scorer]  # given the parsing regexes in force (regex functions only)
    parses: bool = False  # takes regex_parser params
    # Its columns hold structure (a JSON list of answers, instruction arguments): checking a row means
    # reading it, so check_rows scores it once (these functions are cheap).
    reads_structure: bool = False

    @property
    def default_aggregations(self) -> list[str]:
        return list((self.definition.params or {}).get("aggregation_functions") or [])


def _fixed(scorer: Scorer) -> Callable[[list[str] | None], Scorer]:
    return lambda _regexes: scorer


def _accuracy_params(kind: str = "basic", **more: Any) -> dict[str, Any]:
    return {"type": kind, **more, "aggregation_functions": ["accuracy"]}


FUNCTIONS = [
    BasicFunction(
        ScoringFnDef(
            "basic::equality",
            "equality",
            "Returns 1.0 if the input is equal to the target, 0.0 otherwise.",
            params=_accuracy_params(),
        ),
        ANSWERS,
        _fixed(_equality),
    ),
    BasicFunction(
        ScoringFnDef(
            "basic::subset_of",
            "subset-of",
            "Returns 1.0 if the expected is included in generated, 0.0 otherwise.",
            params=_accuracy_params(),
        ),
        ANSWERS,
        _fixed(_subset_of),
    ),
    BasicFunction(
        ScoringFnDef(
            "basic::regex_parser_multiple_choice_answer",
            "regex-parser-multiple-choice-answer",
            "Extract answer from response matching Answer: [the_answer_letter], and compare with expected result",
            params=_accuracy_params("regex_parser", parsing_regexes=MULTIPLE_CHOICE_REGEXES),
        ),
        ANSWERS,
        lambda regexes: _multiple_choice(regexes or MULTIPLE_CHOICE_REGEXES),
        parses=True,
    ),
    BasicFunction(
        ScoringFnDef(
            "basic::regex_parser_math_response",
            "regex-parser-math-response",
            "For math related benchmarks, extract answer from the generated response and expected_answer and see "
            "if they match",
            params=_accuracy_params("regex_parser", parsing_regexes=MATH_ANSWER_REGEXES),
        ),
        ANSWERS,
        lambda regexes: _math(regexes or MATH_ANSWER_REGEXES),
        parses=True,
    ),
    BasicFunction(
        ScoringFnDef(
            "basic::ifeval",
            "ifeval",
            "Eval intruction follow capacity by checkping how many instructions can be followed in each example",
            params={"type": "basic", "aggregation_functions": ["weighted_average"]},
        ),
        ("generated_answer", "instruction_id_list", "kwargs"),
        _fixed(_ifeval),
        reads_structure=True,
    ),
    BasicFunction(
        ScoringFnDef(
            "basic::docvqa",
            "docvqa",
            "DocVQA Visual Question & Answer scoring function",
            params=_accuracy_params(),
        ),
        ANSWERS,
        _fixed(_docvqa),
        reads_structure=True,
    ),
]


class BasicScoring(Stateless):
    def __init__(self, config: BasicScoringConfig, context: ProviderContext) -> None:
        self.provider_id = context.provider_id
        self._by_id = {function.definition.provider_resource_id: function for function in FUNCTIONS}

    def functions(self) -> list[ScoringFnDef]:
        return [function.definition for function in FUNCTIONS]

    def _function(self, provider_fn_id: str) -> BasicFunction:
        function = self._by_id.get(provider_fn_id)
        if function is None:
            raise BadRequestError(
                f"Scoring provider '{self.provider_id}' (inline::basic) has no function '{provider_fn_id}' "
                f"(it has: {', '.join(self._by_id)}).",
                param="provider_scoring_fn_id",
                code="unknown_scoring_function",
            )
        return function

    def _prepared(self, provider_fn_id: str, params: dict[str, Any] | None) -> tuple[BasicFunction, Scorer, list[str]]:
        """The function, its scorer for `params` and the aggregation functions they ask for (400 when unfit)."""
        function = self._function(provider_fn_id)
        name = function.definition.identifier
        given = params or {}
        # Read by field, not by `type`: params sent without one are read as regex_parser params (the
        # generated union is not discriminated), which must not make aggregation_functions alone fail.
        if given.get("type") == "llm_as_judge":
            raise BadRequestError(f"{name} takes basic or regex_parser params, not llm_as_judge.", param="params.type")
        regexes = given.get("parsing_regexes")
        if regexes is not None and not function.parses:
            raise BadRequestError(
                f"{name} takes basic params: it parses nothing, so parsing_regexes do not apply.",
                param="params.parsing_regexes",
            )
        scorer = function.scorer(list(regexes) if regexes else None)
        return function, scorer, aggregation_functions(params, function.default_aggregations)

    def check_function(self, provider_fn_id: str, params: dict[str, Any] | None) -> None:
        self._prepared(provider_fn_id, params)

    def check_rows(self, provider_fn_id: str, params: dict[str, Any] | None, rows: list[Row]) -> None:
        function, scorer, _ = self._prepared(provider_fn_id, params)
        require_columns(rows, function.columns)
        if function.reads_structure:
            scorer(rows)

    async def score(self, provider_fn_id: str, params: dict[str, Any] | None, rows: list[Row]) -> Scored:
        function, scorer, aggregations = self._prepared(provider_fn_id, params)
        require_columns(rows, function.columns)
        score_rows = scorer(rows)
        return Scored(score_rows, aggregate(score_rows, aggregations))
