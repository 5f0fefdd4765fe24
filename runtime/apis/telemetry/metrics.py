"""query_metrics: metrics derived from the stored spans, so they need no metrics store of their own.

Each known metric reads one or two span attributes (OpenTelemetry's GenAI and HTTP conventions, which
the server's instrumentation writes) from the spans that *started* within [start_time, end_time]:

| metric | value per span | aggregate | unit |
|---|---|---|---|
| `prompt_tokens` (Llama Stack 0.2) | `gen_ai.usage.input_tokens` | sum | tokens |
| `completion_tokens` (Llama Stack 0.2) | `gen_ai.usage.output_tokens` | sum | tokens |
| `total_tokens` (Llama Stack 0.2) | input + output tokens | sum | tokens |
| `gen_ai.client.token.usage` | input and output tokens, label `gen_ai.token.type` input / output | sum | {token} |
| `gen_ai.server.request.duration` | the duration of a span with `gen_ai.operation.name` | mean | s |
| `gen_ai.server.time_to_first_token` | `gen_ai.server.time_to_first_token` | mean | s |
| `http.server.request.duration` | the duration of a span with `http.route` (the server span) | mean | s |

A span's labels: for the GenAI metrics `model_id` and `provider_id` (Llama Stack 0.2's names) with
`gen_ai.request.model`, `gen_ai.provider.name` and `gen_ai.operation.name`; for the HTTP one `http.route`,
`http.request.method` and `http.response.status_code`; each only when the span has it. One series per
label set. `range` queries bucket by `granularity` (buckets aligned on the Unix epoch, so "1h" buckets
start on the hour, UTC; no granularity: one bucket from start_time); `instant` gives one point at
end_time. Label matchers are Prometheus': `=`, `!=`, `=~` and `!~` (the whole value against the regular
expression; a label the series lacks reads as ""). Any other name is a metric a client logged with
log_event (events `metric.<name>` on spans): summed per bucket, labelled by the event's attributes. A
name that is neither is a 400 naming the known metrics.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pocketstack._generated import models
from pocketstack.errors import BadRequestError
from pocketstack.storage.spans import SpanReader, SpanRecord
from pocketstack.wire.fields import given

Labels = tuple[tuple[str, str], ...]
INPUT, OUTPUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"
TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"
OPERATION, ROUTE = "gen_ai.operation.name", "http.route"
_GEN_AI_LABELS = {
    "model_id": "gen_ai.request.model",
    "provider_id": "gen_ai.provider.name",
    "gen_ai.request.model": "gen_ai.request.model",
    "gen_ai.provider.name": "gen_ai.provider.name",
    "gen_ai.operation.name": OPERATION,
}
_HTTP_LABELS = {name: name for name in ("http.route", "http.request.method", "http.response.status_code")}
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _labels(span: SpanRecord, names: Mapping[str, str]) -> dict[str, str]:
    return {label: str(span.attributes[key]) for label, key in names.items() if span.attributes.get(key) is not None}


def _number(span: SpanRecord, key: str) -> float | None:
    value = span.attributes.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


Points = list[tuple[dict[str, str], float]]


def _tokens(*keys: str) -> Callable[[SpanRecord], Points]:
    def points(span: SpanRecord) -> Points:
        counts = [count for count in (_number(span, key) for key in keys) if count is not None]
        return [(_labels(span, _GEN_AI_LABELS), sum(counts))] if counts else []

    return points


def _token_usage(span: SpanRecord) -> Points:
    labels = _labels(span, _GEN_AI_LABELS)
    found = ((kind, _number(span, key)) for kind, key in (("input", INPUT), ("output", OUTPUT)))
    return [({**labels, "gen_ai.token.type": kind}, count) for kind, count in found if count is not None]


def _duration(marker: str, names: Mapping[str, str]) -> Callable[[SpanRecord], Points]:
    def points(span: SpanRecord) -> Points:
        if span.attributes.get(marker) is None:
            return []
        return [(_labels(span, names), max(0.0, span.end_time - span.start_time))]

    return points


def _time_to_first_token(span: SpanRecord) -> Points:
    seconds = _number(span, TIME_TO_FIRST_TOKEN)
    return [] if seconds is None else [(_labels(span, _GEN_AI_LABELS), seconds)]


@dataclass(frozen=True)
class Derived:
    unit: str
    mean: bool  # durations: the mean per bucket; counters: the sum
    having: tuple[str, ...]  # the attributes a span needs to count (read in SQL)
    points: Callable[[SpanRecord], Points]


DERIVED: dict[str, Derived] = {
    "prompt_tokens": Derived("tokens", False, (INPUT,), _tokens(INPUT)),
    "completion_tokens": Derived("tokens", False, (OUTPUT,), _tokens(OUTPUT)),
    "total_tokens": Derived("tokens", False, (INPUT, OUTPUT), _tokens(INPUT, OUTPUT)),
    "gen_ai.client.token.usage": Derived("{token}", False, (INPUT, OUTPUT), _token_usage),
    "gen_ai.server.request.duration": Derived("s", True, (OPERATION,), _duration(OPERATION, _GEN_AI_LABELS)),
    "gen_ai.server.time_to_first_token": Derived("s", True, (TIME_TO_FIRST_TOKEN,), _time_to_first_token),
    "http.server.request.duration": Derived("s", True, (ROUTE,), _duration(ROUTE, _HTTP_LABELS)),
}


def bucket_width(granularity: str | None) -> int | None:
    """A granularity such as "5m" in seconds (None: one bucket)."""
    if granularity is None:
        return None
    match = re.fullmatch(r"([0-9]+)([smhdw])", granularity)
    if match is None or int(match[1]) == 0:
        raise BadRequestError(f"granularity {granularity!r}: write a count and s, m, h, d or w, e.g. 1m, 1h, 1d")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


@dataclass(frozen=True)
class Matcher:
    name: str
    operator: str
    value: str
    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, matcher: models.MetricLabelMatcher) -> Matcher:
        operator = matcher.operator.value
        try:
            pattern = re.compile(matcher.value) if operator in ("=~", "!~") else None
        except re.error as exc:
            raise BadRequestError(f"label matcher {matcher.name}{operator}{matcher.value!r}: {exc}") from exc
        return cls(matcher.name, operator, matcher.value, pattern)

    def accepts(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.pattern is not None:
            return (self.pattern.fullmatch(value) is not None) == (self.operator == "=~")
        return (value == self.value) == (self.operator == "=")


class Aggregation:
    """Points summed (or averaged) per series and bucket."""

    def __init__(self, start: int, end: int, width: int | None, instant: bool) -> None:
        self.start, self.end, self.width, self.instant = start, end, width, instant
        self.sums: dict[Labels, dict[int, list[float]]] = {}

    def bucket(self, at: float) -> int:
        if self.instant:
            return self.end
        if self.width is None:
            return self.start
        return int(at // self.width) * self.width

    def add(self, labels: Mapping[str, str], at: float, value: float) -> None:
        key = tuple(sorted(labels.items()))
        total = self.sums.setdefault(key, {}).setdefault(self.bucket(at), [0.0, 0])
        total[0] += value
        total[1] += 1

    def series(self, metric: str, unit: str, mean: bool) -> list[models.MetricSeries]:
        return [
            models.MetricSeries(
                metric=metric,
                labels=[models.MetricLabel(name=name, value=value) for name, value in labels],
                values=[
                    models.MetricDataPoint(timestamp=at, value=total / count if mean else total, unit=unit)
                    for at, (total, count) in sorted(buckets.items())
                ],
            )
            for labels, buckets in sorted(self.sums.items())
        ]


def _event_labels(attributes: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in attributes.items() if k not in ("value", "unit") and v is not None}


async def query_metrics(reader: SpanReader, request: models.QueryMetricsRequest) -> models.QueryMetricsResponse:
    start = request.start_time
    end = given(request.end_time) or int(time.time())
    if end < start:
        raise BadRequestError(f"end_time {end} is before start_time {start}", param="end_time")
    instant = request.query_type is models.MetricQueryType.instant
    aggregation = Aggregation(start, end, bucket_width(given(request.granularity)), instant)
    matchers = [Matcher.of(m) for m in given(request.label_matchers, [])]

    def add(labels: Mapping[str, str], at: float, value: float) -> None:
        if all(matcher.accepts(labels) for matcher in matchers):
            aggregation.add(labels, at, value)

    name = request.metric_name
    derived = DERIVED.get(name)
    if derived is not None:
        for span in await reader.metric_spans(start, end, derived.having):
            for labels, value in derived.points(span):
                add(labels, span.start_time, value)
        return models.QueryMetricsResponse(data=aggregation.series(name, derived.unit, derived.mean))
    logged = await reader.logged_metrics(name, start, end)
    if not logged and not await reader.logged_metrics(name, 0, time.time() + 86400):
        known = ", ".join(DERIVED)
        raise BadRequestError(
            f"unknown metric '{name}': the known ones are {known}, and those logged with log_event",
            code="unknown_metric",
            param="metric_name",
        )
    units: set[str] = set()
    for _, event in logged:
        attributes: Mapping[str, Any] = event.get("attributes") or {}
        measured = attributes.get("value")
        if isinstance(measured, int | float) and not isinstance(measured, bool):
            units.add(str(attributes.get("unit", "")))
            add(_event_labels(attributes), float(event["timestamp"]), float(measured))
    return models.QueryMetricsResponse(data=aggregation.series(name, min(units, default=""), mean=False))


__all__: Sequence[str] = ["DERIVED", "query_metrics"]
