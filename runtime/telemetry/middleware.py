"""The server span of every request and the HTTP server metrics, as an aiohttp middleware.

It runs first, so the span covers everything the request does (authentication, the API, a
stream to its last byte). An incoming W3C `traceparent` makes the span its child; the span's
`http.route` is the route's template (`/v1/models/{model_id}`), never the path, so metrics stay
bounded whatever ids clients send.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode

from pocketstack.telemetry.instruments import http_server_active, http_server_duration, tracer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNMATCHED_ROUTE = "(unmatched)"
TRACE_RESPONSE_HEADER = "traceresponse"  # W3C Trace Context level 2: which trace the answer belongs to
_TRACE_RESPONSE = web.RequestKey("traceresponse", str)


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


@web.middleware
async def telemetry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    method = request.method
    context = propagate.extract(request.headers) if "traceparent" in request.headers else None
    started = time.perf_counter()
    active = {"http.request.method": method, "http.route": route}
    http_server_active.add(1, active)
    status = 500
    with tracer.start_as_current_span(
        f"{method} {route}",
        context=context,
        kind=SpanKind.SERVER,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        recorded = span.get_span_context()
        if recorded.is_valid and recorded.trace_flags.sampled:
            request[_TRACE_RESPONSE] = f"00-{recorded.trace_id:032x}-{recorded.span_id:016x}-01"
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            http_server_active.add(-1, active)
            labels: dict[str, str | int] = {
                "http.request.method": method,
                "http.route": route,
                "http.response.status_code": status,
            }
            http_server_duration.record(time.perf_counter() - started, labels)
            if span.is_recording():
                span.set_attributes(
                    {
                        "http.request.method": method,
                        "http.route": route,
                        "url.path": request.path,
                        "http.response.status_code": status,
                    }
                )
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


async def add_trace_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the recorded trace's id on the answer (streams and errors too), so a
    client can look it up: `pocketstack traces --trace <id>`, GET /v1/telemetry/traces/<id>."""
    value = request.get(_TRACE_RESPONSE)
    if value is not None:
        response.headers[TRACE_RESPONSE_HEADER] = value
