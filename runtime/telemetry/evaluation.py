"""Spans of evaluation: an eval job's run, each row it evaluates, each scoring function's call, and
every score as the GenAI conventions' `gen_ai.evaluation.result` event.

An eval job runs in the background, so its run is a trace of its own (`eval_job <benchmark>`),
linked to the span of the request that created it (kept with the job as a W3C `traceparent`, so
a run resumed after a restart links to it too). Each row is an `evaluate_row` span; the
candidate's generation (`chat <model>` of the inference router) runs under it, and notes itself
here (`generated`) so the row's scores can name the generation they judged.

The conventions want the event on the span of the generation it evaluates. The eval provider
scores a whole batch of rows after their generations have answered, so by then the `chat` span
has ended and an ended span takes no events: the event goes on the `evaluate_row` span, which
carries a span link to the generation's span (and `gen_ai.response.id`), so a trace viewer leads
from the score to what it judged. Were a generation still open when its scores are known, the
event would go on it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from pocketstack.telemetry import instruments
from pocketstack.telemetry.background import background_root, failed, launching_span, link_to

# The GenAI conventions name these (gen_ai.evaluation.*); the installed semantic conventions
# package (0.58b0) has no constants for them yet.
EVALUATION_RESULT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
SCORE_VALUE = "gen_ai.evaluation.score.value"
SCORE_LABEL = "gen_ai.evaluation.score.label"
EXPLANATION = "gen_ai.evaluation.explanation"

BENCHMARK_ID = "pocketstack.eval.benchmark_id"
JOB_ID = "pocketstack.eval.job_id"
ROW_INDEX = "pocketstack.eval.row_index"
ROWS_TOTAL = "pocketstack.eval.rows_total"
ROWS_DONE = "pocketstack.eval.rows_done"
ROWS_BEFORE = "pocketstack.eval.rows_resumed_from"  # rows an earlier run of the job had done
JOB_STATUS = "pocketstack.eval.status"
JOB_AGGREGATE = "pocketstack.eval.aggregate"  # + ".<scoring function>.<aggregation>.<field>"
SCORING_FN = "pocketstack.scoring.function_id"
SCORING_ROWS = "pocketstack.scoring.row_count"
SCORING_AGGREGATE = "pocketstack.scoring.aggregate"  # + ".<aggregation>.<field>"
# The score row's keys that hold a judge's reasoning (LLM-as-judge): content, recorded only on opt-in.
EXPLANATION_KEYS = ("judge_feedback", "explanation", "reason")
TRACE_CONTEXT = "trace_context"  # the key a job keeps its creating request's traceparent under


# -- the generation a row's scores judge ----------------------------------------------------------


@dataclass
class Generation:
    span: trace.Span
    response_id: str | None


_judged: ContextVar[list[Generation] | None] = ContextVar("pocketstack_judged_generations", default=None)


def generated(span: trace.Span, response_id: str | None) -> None:
    """A generation answered (the inference router's call, for each successful attempt): noted for the
    eval row it runs for, if any. Costs one context lookup elsewhere."""
    noted = _judged.get()
    if noted is not None:
        noted.append(Generation(span, response_id))


@dataclass
class RowSpan:
    """One `evaluate_row` span: started when the row's generation starts, ended once it is scored."""

    index: int
    span: trace.Span = field(init=False)
    generations: list[Generation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.span = instruments.tracer.start_span(
            "evaluate_row", attributes={ROW_INDEX: self.index}, record_exception=False, set_status_on_exception=False
        )

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """The row span current while its candidate answers, the answer's generation noted."""
        span_token = otel_context.attach(trace.set_span_in_context(self.span))
        noting = _judged.set(self.generations)
        try:
            yield
        except BaseException as exc:  # a row cancelled because another row of its batch failed: "cancelled"
            failed(self.span, "cancelled" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__)
            raise
        finally:
            _judged.reset(noting)
            otel_context.detach(span_token)

    def scored(self, scores: Mapping[str, Mapping[str, Any]]) -> None:
        """Each scoring function's score row for this row, as a `gen_ai.evaluation.result` event."""
        if not self.span.is_recording():
            return
        judged = self.generations[-1] if self.generations else None  # an agent's last generation is its answer
        target = self.span
        if judged is not None:
            if judged.span.is_recording():
                target = judged.span
            else:  # ended (the usual case, see the module's docstring): link the row to it
                self.span.add_link(judged.span.get_span_context())
        for function_id, score_row in scores.items():
            target.add_event(EVALUATION_RESULT, _result(function_id, score_row, judged))

    def end(self) -> None:
        self.span.end()


def _result(function_id: str, score_row: Mapping[str, Any], judged: Generation | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {EVALUATION_NAME: function_id}
    score = score_row.get("score")
    if isinstance(score, int | float):  # bool included: a pass/fail is 1.0 or 0.0
        attributes[SCORE_VALUE] = float(score)
    elif isinstance(score, str) and score:
        attributes[SCORE_LABEL] = score  # a judge's grade ("A"), a category
    label = score_row.get("label")
    if isinstance(label, str) and label:
        attributes[SCORE_LABEL] = label
    if judged is not None and judged.response_id:
        attributes[gen_ai.GEN_AI_RESPONSE_ID] = judged.response_id
    if instruments.capture_content():
        explanation = next((score_row[k] for k in EXPLANATION_KEYS if isinstance(score_row.get(k), str)), None)
        if explanation:
            attributes[EXPLANATION] = explanation
    return attributes


# -- an eval job's run ----------------------------------------------------------------------------


def job_span(
    benchmark_id: str, job_id: str, rows_total: int, rows_before: int, carrier: Mapping[str, Any] | None
) -> contextlib.AbstractContextManager[trace.Span]:
    """`eval_job <benchmark>`: one job run, linked to the request that created the job."""
    attributes = {BENCHMARK_ID: benchmark_id, JOB_ID: job_id, ROWS_TOTAL: rows_total, ROWS_BEFORE: rows_before}
    return background_root(f"eval_job {benchmark_id}", link_to(carrier) or launching_span(), attributes)


def job_ended(span: trace.Span, status: str, rows_done: int | None, aggregates: Mapping[str, Any] | None) -> None:
    if not span.is_recording():
        return
    attributes: dict[str, Any] = {JOB_STATUS: status}
    if rows_done is not None:
        attributes[ROWS_DONE] = rows_done
    for function_id, aggregated in (aggregates or {}).items():
        attributes.update(flatten(f"{JOB_AGGREGATE}.{function_id}", aggregated))
    span.set_attributes(attributes)


# -- scoring --------------------------------------------------------------------------------------


@contextlib.contextmanager
def score_span(function_id: str, rows: int) -> Iterator[trace.Span]:
    """`score <function>`: one scoring function over a call's rows; a judge's inference calls run under it."""
    with instruments.tracer.start_as_current_span(
        f"score {function_id}",
        attributes={SCORING_FN: function_id, SCORING_ROWS: rows},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as exc:
            failed(span, type(exc).__name__)
            raise


def score_aggregated(span: trace.Span, aggregated: Mapping[str, Any]) -> None:
    if span.is_recording():
        span.set_attributes(flatten(SCORING_AGGREGATE, aggregated))


def flatten(prefix: str, value: Any, depth: int = 3) -> dict[str, Any]:
    """An aggregate's numbers and labels as attributes (`<prefix>.accuracy.num_correct`); attributes
    hold no structures. Bounded in depth: aggregates are small, nested a level or two."""
    if isinstance(value, bool | int | float | str):
        return {prefix: value}
    if isinstance(value, Mapping) and depth > 0:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(flatten(f"{prefix}.{key}", inner, depth - 1))
        return flat
    return {}
