"""inline::llm-as-judge scoring: a chat model judges each row, a regex reads the score from its verdict.

The judge prompt is the function's `prompt_template` filled with the row's `input_query`,
`generated_answer` and `expected_answer` (Llama Stack's placeholders; a row needs only those its
template names). The call goes through the inference router (`context.routers.inference`), so
the judge can be any registered llm model: inline, remote, with its offload and fallbacks. The
row's score is the first group of the first `judge_score_regexes` regex that matches the verdict
(as text, as Llama Stack keeps it: "7", "A"); a verdict none matches is scored None, with the
verdict and the reason in the row, never an error for the call.

Rows are judged a few at a time (`max_concurrency`), not one after another; a judge call answered
429 (a busy model, a rate-limited remote) is tried again after a pause that doubles.

Functions: `llm-as-judge::base`, which has no params of its own (a call or a registration gives
judge_model, prompt_template and judge_score_regexes), and `llm-as-judge::405b-simpleqa`, the
SimpleQA grader, whose template and regexes fill what the params leave out. Any other id is a
judge defined by its params alone, as Llama Stack registers any id on this provider.
"""

from __future__ import annotations

import asyncio
import re
import string
from dataclasses import dataclass
from typing import Any

from pocketstack._generated import models
from pocketstack.errors import BadRequestError, ResourceNotFoundError
from pocketstack.providers.base import ProviderContext, Stateless
from pocketstack.providers.inline.scoring_llm_as_judge.config import LlmAsJudgeScoringConfig
from pocketstack.providers.inline.scoring_llm_as_judge.simpleqa import SIMPLEQA_GRADER_TEMPLATE, SIMPLEQA_JUDGE_REGEXES
from pocketstack.providers.priority import patiently
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

PLACEHOLDERS = ("input_query", "generated_answer", "expected_answer")
FIRST_RETRY_S = 0.5
LONGEST_RETRY_S = 30.0

BASE = ScoringFnDef("llm-as-judge::base", "llm-as-judge-base", "Llm As Judge Scoring Function", params=None)
SIMPLEQA = ScoringFnDef(
    "llm-as-judge::405b-simpleqa",
    "llm-as-judge-405b-simpleqa",
    "Llm As Judge Scoring Function for SimpleQA Benchmark (https://github.com/openai/simple-evals/blob/main/"
    "simpleqa_eval.py)",
    params={
        "type": "llm_as_judge",
        "judge_model": "meta-llama/Llama-3.1-405B-Instruct",  # Llama Stack's; give any registered llm in params
        "prompt_template": SIMPLEQA_GRADER_TEMPLATE,
        "judge_score_regexes": SIMPLEQA_JUDGE_REGEXES,
        "aggregation_functions": ["categorical_count"],
    },
)
FUNCTIONS = (BASE, SIMPLEQA)


@dataclass(frozen=True)
class Judge:
    """A judge function with the params in force, checked."""

    name: str
    model: str
    template: str
    patterns: list[re.Pattern[str]]
    columns: tuple[str, ...]  # the placeholders the template names: what a row must have
    aggregations: list[str]


def template_columns(template: str) -> tuple[str, ...]:
    """The row columns `template` names; BadRequestError for a placeholder that is not one of PLACEHOLDERS."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise BadRequestError(
            f"prompt_template is not a format string ({exc}); write a literal brace as {{{{ or }}}}.",
            param="params.prompt_template",
        ) from None
    names = []
    for field in fields:
        name = re.split(r"[.\[]", field, maxsplit=1)[0]
        if name not in PLACEHOLDERS:
            raise BadRequestError(
                f"prompt_template names {{{field}}}; its placeholders are {{input_query}}, {{generated_answer}} "
                "and {expected_answer} (write a literal brace as {{ or }}).",
                param="params.prompt_template",
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def _verdict_text(completion: models.ChatCompletion) -> str:
    content = completion.choices[0].message.content if completion.choices else None
    return content if isinstance(content, str) else ""  # no text: a refusal, or tool calls only


class LlmAsJudgeScoring(Stateless):
    def __init__(self, config: LlmAsJudgeScoringConfig, context: ProviderContext) -> None:
        self.config = config
        self.routers = context.routers
        self._defaults = {function.provider_resource_id: function for function in FUNCTIONS}

    def functions(self) -> list[ScoringFnDef]:
        return list(FUNCTIONS)

    def _judge(self, provider_fn_id: str, params: dict[str, Any] | None) -> Judge:
        function = self._defaults.get(provider_fn_id)
        name = function.identifier if function is not None else provider_fn_id
        kind = (params or {}).get("type", "llm_as_judge")
        # A type-less body is read as regex_parser params (the generated union is not discriminated):
        # only params that say nothing of a judge are the wrong kind.
        if kind != "llm_as_judge" and not {"judge_model", "prompt_template", "judge_score_regexes"} & set(params or {}):
            raise BadRequestError(f"{name} takes llm_as_judge params, not {kind}.", param="params.type")
        defaults = (function.params if function is not None else None) or {}
        # The call's params over the function's own: SimpleQA's template and regexes stay unless replaced.
        effective = {**defaults, **{key: value for key, value in (params or {}).items() if value is not None}}
        missing = [key for key in ("judge_model", "prompt_template", "judge_score_regexes") if not effective.get(key)]
        if missing:
            raise BadRequestError(
                f"{name} needs params with {', '.join(missing)} (type llm_as_judge; judge_model: any registered "
                "llm model).",
                param=f"params.{missing[0]}",
                code="missing_judge_params",
            )
        return Judge(
            name=name,
            model=str(effective["judge_model"]),
            template=str(effective["prompt_template"]),
            patterns=compile_regexes(list(effective["judge_score_regexes"]), "judge_score_regexes"),
            columns=template_columns(str(effective["prompt_template"])),
            aggregations=aggregation_functions(params, defaults.get("aggregation_functions")),
        )

    def check_function(self, provider_fn_id: str, params: dict[str, Any] | None) -> None:
        self._judge(provider_fn_id, params)

    def check_rows(self, provider_fn_id: str, params: dict[str, Any] | None, rows: list[Row]) -> None:
        require_columns(rows, self._judge(provider_fn_id, params).columns)

    async def _check_model(self, judge: Judge) -> None:
        """Once per call, not once per row: a judge model that is not there fails the call at once."""
        try:
            model = await self.routers.models.get_model(models.GetModelRequest(model_id=judge.model))
        except ResourceNotFoundError:
            raise BadRequestError(
                f"{judge.name}: the judge model '{judge.model}' is not registered.",
                param="params.judge_model",
                code="judge_model_not_found",
            ) from None
        if model.model_type != "llm":
            raise BadRequestError(
                f"{judge.name}: the judge model '{judge.model}' is a {model.model_type} model, not an llm.",
                param="params.judge_model",
            )

    async def _complete(self, request: models.ChatCompletionRequest) -> models.ChatCompletion:
        answer = await patiently(
            lambda: self.routers.inference.openai_chat_completion(request),
            retries=self.config.max_retries,
            longest_s=LONGEST_RETRY_S,
        )
        assert isinstance(answer, models.ChatCompletion)  # not streamed
        return answer

    async def _judge_row(self, judge: Judge, row: Row) -> ScoreRow:
        prompt = judge.template.format(**{column: row[column] for column in judge.columns})
        body: dict[str, Any] = {
            "model": judge.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "store": False,
        }
        if self.config.max_tokens is not None:
            body["max_tokens"] = self.config.max_tokens
        verdict = _verdict_text(await self._complete(models.ChatCompletionRequest.model_validate(body)))
        score = first_match(judge.patterns, verdict)
        if score is None:
            return {
                "score": None,
                "judge_feedback": verdict,
                "error": "no judge_score_regexes matched the judge's answer",
            }
        return {"score": score, "judge_feedback": verdict}

    async def score(self, provider_fn_id: str, params: dict[str, Any] | None, rows: list[Row]) -> Scored:
        judge = self._judge(provider_fn_id, params)
        require_columns(rows, judge.columns)
        if rows:
            await self._check_model(judge)
        score_rows: list[ScoreRow] = [{} for _ in rows]
        pending = iter(range(len(rows)))  # shared by the workers: each takes the next row

        async def worker() -> None:
            for index in pending:
                score_rows[index] = await self._judge_row(judge, rows[index])

        workers = [asyncio.create_task(worker()) for _ in range(min(self.config.max_concurrency, len(rows)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return Scored(score_rows, aggregate(score_rows, judge.aggregations))
