"""Spans of a batch's work: `batch <id>` per run, `batch_line` per request line it runs.

A batch runs in the background, so each run (the first, and each resume after a restart) is a
trace of its own, linked to the span of the request that launched it (the create request; none
for a run resumed as the server starts). The run's task sets the batch's owner as the current
user before the span starts, so the span store files the whole trace under that user.

Each line's span is current while the line runs, so the inference (or responses, moderation)
spans it causes are its children. Embeddings lines grouped into one call have one span for the
group, with the line count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import Status, StatusCode

from pocketstack.telemetry import instruments
from pocketstack.telemetry.background import background_root, failed, launching_span

BATCH_ID = "pocketstack.batch.id"
ENDPOINT = "pocketstack.batch.endpoint"
INPUT_FILE = "pocketstack.batch.input_file_id"
LINE_COUNT = "pocketstack.batch.line_count"  # lines in the input file (a run's span), or in a group
STATUS = "pocketstack.batch.status"
COUNTS = "pocketstack.batch.request_counts"  # + ".total", ".completed", ".failed"
CUSTOM_ID = "pocketstack.batch.custom_id"
LINE = "pocketstack.batch.line"  # the line's number in the input file
FAILED_LINES = "pocketstack.batch.failed_lines"  # a group's lines answered with an error status
FAILED_STATUSES = {"failed", "expired"}  # a batch ending so is an error; cancelled was asked for


def run_span(batch_id: str, endpoint: str, input_file_id: str) -> contextlib.AbstractContextManager[trace.Span]:
    """`batch <id>`: one run of a batch (the current user must be its owner)."""
    attributes = {BATCH_ID: batch_id, ENDPOINT: endpoint, INPUT_FILE: input_file_id}
    return background_root(f"batch {batch_id}", launching_span(), attributes)


def lines_read(count: int) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(LINE_COUNT, count)


def run_ended(span: trace.Span, record: Mapping[str, Any]) -> None:
    """The batch's status and request counts as the run left them; a failed or expired batch is an error."""
    if not span.is_recording():
        return
    status = str(record.get("status"))
    attributes: dict[str, Any] = {STATUS: status}
    for key, value in (record.get("request_counts") or {}).items():
        if isinstance(value, int):
            attributes[f"{COUNTS}.{key}"] = value
    span.set_attributes(attributes)
    if status in FAILED_STATUSES:
        errors = (record.get("errors") or {}).get("data") or []
        code = errors[0].get("code") if errors and isinstance(errors[0], dict) else None
        failed(span, str(code or status))


def run_failed(span: trace.Span, exc: BaseException) -> None:
    failed(span, type(exc).__name__)


def _status_code(output: Mapping[str, Any]) -> int | None:
    response = output.get("response")
    code = response.get("status_code") if isinstance(response, dict) else None
    return code if isinstance(code, int) else None


@contextlib.contextmanager
def line_span(custom_id: str, line: int) -> Iterator[trace.Span]:
    """`batch_line`: one request line, current while it runs."""
    with instruments.tracer.start_as_current_span(
        "batch_line",
        attributes={CUSTOM_ID: custom_id, LINE: line},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:  # the batch stopped (cancel, expiry, a pause) or broke mid-line
            failed(span, "cancelled" if type(exc).__name__ == "CancelledError" else type(exc).__name__)
            raise


def line_answered(span: trace.Span, output: Mapping[str, Any]) -> None:
    """The line's response status code; other than 2xx, the line's span is an error (error.type: the code)."""
    if not span.is_recording():
        return
    code = _status_code(output)
    if code is None:
        return
    span.set_attribute(HTTP_RESPONSE_STATUS_CODE, code)
    if not 200 <= code < 300:
        span.set_attribute(ERROR_TYPE, str(code))
        span.set_status(Status(StatusCode.ERROR))


@contextlib.contextmanager
def group_span(lines: int) -> Iterator[trace.Span]:
    """`batch_line_group`: embeddings lines run as one call (or a few), with how many lines."""
    with instruments.tracer.start_as_current_span(
        "batch_line_group", attributes={LINE_COUNT: lines}, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except BaseException as exc:
            failed(span, "cancelled" if type(exc).__name__ == "CancelledError" else type(exc).__name__)
            raise


def group_answered(span: trace.Span, outputs: Sequence[Mapping[str, Any]]) -> None:
    """How many of a group's lines were answered with an error status (a refused group runs line by line)."""
    if not span.is_recording():
        return
    failures = [code for code in map(_status_code, outputs) if code is not None and not 200 <= code < 300]
    span.set_attribute(FAILED_LINES, len(failures))
    if failures and len(failures) == len(outputs):
        span.set_attribute(ERROR_TYPE, str(failures[0]))
        span.set_status(Status(StatusCode.ERROR))
