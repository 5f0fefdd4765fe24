"""A background run's trace: its own root span, linked to the request that started it.

Jobs and batches outlive the request that starts them; were their spans children of it, the
request's trace would run on for hours after its answer, and a run resumed after a restart
would have no parent at all. So each run is a trace of its own with a span link (the
conventions' way to relate causally linked traces) to the starting request's span.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Link, SpanContext, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pocketstack.telemetry import instruments

_propagator = TraceContextTextMapPropagator()


def creating_context() -> dict[str, str]:
    """The current span's context as a W3C carrier (`{"traceparent": ...}`), to keep with a job; empty
    when nothing records."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        _propagator.inject(carrier)
    return carrier


def link_to(carrier: Mapping[str, Any] | None) -> SpanContext | None:
    """The span a kept carrier names, if it names one."""
    if not carrier:
        return None
    found = trace.get_current_span(_propagator.extract({k: str(v) for k, v in carrier.items()})).get_span_context()
    return found if found.is_valid else None


def launching_span() -> SpanContext | None:
    """The span current where a background task was launched (a task copies its creator's context):
    the request that started the run, or None for a run started with the server."""
    found = trace.get_current_span().get_span_context()
    return found if found.is_valid else None


@contextlib.contextmanager
def background_root(name: str, link: SpanContext | None, attributes: dict[str, Any]) -> Iterator[trace.Span]:
    """A background run's own trace, current while it runs: a root span (never a child of the request
    that launched it, which answers long before the run ends), linked to that request's span.

    Start it with the run's user current (the span store files the trace under that user)."""
    links = [Link(link)] if link is not None else None
    with instruments.tracer.start_as_current_span(
        name,
        context=otel_context.Context(),
        links=links,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def failed(span: trace.Span, error_type: str, message: str | None = None) -> None:
    if span.is_recording():
        span.set_attribute(ERROR_TYPE, error_type)
        span.set_status(Status(StatusCode.ERROR, message))
