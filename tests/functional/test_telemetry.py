"""Telemetry core: every request's trace lands in the local store, `traceparent` is honoured, /metrics moves."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pocketstack.app import STACK, create_app
from pocketstack.config import StackConfig
from pocketstack.storage.spans import SpanRecord, SpanStore
from pocketstack.storage.sqlite import open_database
from pocketstack.telemetry.instruments import tracer
from tests.support.otlp import otlp_receiver
from tests.support.spans import children_of, stored_spans
from tests.support.users import As

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


async def test_a_request_is_a_server_span_with_its_api_span_below(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/models")
    assert response.status == 200
    spans = await stored_spans(client.app)
    (server,) = [s for s in spans if s.kind == "server" and s.name == "GET /v1/models"]
    assert server.parent_span_id is None
    assert server.attributes["http.route"] == "/v1/models"
    assert server.attributes["http.response.status_code"] == 200
    (api,) = children_of(spans, server)
    assert api.name == "Models.openai_list_models"
    assert api.attributes["pocketstack.api"] == "Models"


async def test_a_client_traceparent_is_continued(client: TestClient[Any, Any]) -> None:
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    assert (await client.get("/v1/models", headers={"traceparent": traceparent})).status == 200
    spans = await stored_spans(client.app)
    (server,) = [s for s in spans if s.kind == "server"]
    assert (server.trace_id, server.parent_span_id) == (CLIENT_TRACE, CLIENT_SPAN)


async def test_the_answer_names_its_trace(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/models/no-such-model")
    assert response.status == 404
    version, trace_id, span_id, flags = response.headers["traceresponse"].split("-")
    spans = await stored_spans(client.app)
    (server,) = [s for s in spans if s.kind == "server"]
    assert (version, trace_id, span_id, flags) == ("00", server.trace_id, server.span_id, "01")


async def test_an_error_answer_marks_the_server_span(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/v1/models/no-such-model")).status == 404
    spans = await stored_spans(client.app)
    (server,) = [s for s in spans if s.kind == "server"]
    assert server.attributes["http.route"] == "/v1/models/{model_id}"  # the template, not the id
    assert server.attributes["http.response.status_code"] == 404


def _request_count(text: str, route: str, status: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name != "http_server_request_duration_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            wanted = labels.get("http_route") == route and labels.get("http_response_status_code") == status
            wanted = wanted and labels.get("http_request_method") == "GET"  # not an earlier test's CORS preflight
            if sample.name.endswith("_count") and wanted:
                return sample.value
    return 0.0


async def test_metrics_parse_and_count_requests(client: TestClient[Any, Any]) -> None:
    before = _request_count(await (await client.get("/metrics")).text(), "/v1/models", "200")
    for _ in range(3):
        assert (await client.get("/v1/models")).status == 200
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert _request_count(await response.text(), "/v1/models", "200") == before + 3


async def test_spans_and_metrics_reach_an_otlp_collector(
    aiohttp_client: Callable[..., Any], edge_config: StackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(edge_config))
        assert (await client.get("/v1/models")).status == 200
        stack = client.app[STACK]
        assert stack.telemetry is not None
        stack.telemetry.flush()
        (server,) = receiver.wait_for("GET /v1/models")
        assert server.service_name == "pocketstack"
        assert server.attributes["http.route"] == "/v1/models"
        (api,) = receiver.wait_for("Models.openai_list_models")
        assert (api.trace_id, api.parent_span_id) == (server.trace_id, server.span_id)
        assert receiver.content_types == {"application/x-protobuf"}
        assert {"http.server.request.duration", "http.server.active_requests"} <= receiver.metric_names
        # The local store holds the same spans: what an offline device shows, a collector shows too.
        local = {(s.trace_id, s.span_id) for s in await stored_spans(client.app)}
        assert {(server.trace_id, server.span_id), (api.trace_id, api.span_id)} <= local
        # Flushing to the collector must not leave copies of the metrics behind for /metrics.
        count = _request_count(await (await client.get("/metrics")).text(), "/v1/models", "200")
        stack.telemetry.flush()
        stack.telemetry.flush()
        text = await (await client.get("/metrics")).text()
        assert text.count("# TYPE http_server_request_duration_seconds histogram") == 1
        assert _request_count(text, "/v1/models", "200") == count
        await client.close()  # while the collector still listens: stopping flushes to it


async def test_a_warning_logged_in_a_request_is_kept_on_its_span_and_sent_as_a_log(
    aiohttp_client: Callable[..., Any], edge_config: StackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(edge_config))
        assert (await client.get("/v1/health")).status == 200
        with tracer.start_as_current_span("work") as span:
            logging.getLogger("pocketstack.test").warning("disk almost full: %d%%", 97)
            trace_id = format(span.get_span_context().trace_id, "032x")
        (work,) = [s for s in await stored_spans(client.app) if s.name == "work"]
        assert [e["attributes"]["log.message"] for e in work.events] == ["disk almost full: 97%"]
        assert work.events[0]["attributes"]["log.severity"] == "WARNING"
        stack = client.app[STACK]
        assert stack.telemetry is not None
        stack.telemetry.flush()
        assert (trace_id, "WARN", "disk almost full: 97%") in receiver.logs  # OpenTelemetry's severity text
        await client.close()  # while the collector still listens: stopping flushes to it


async def test_retention_drops_old_traces_whole(aiohttp_client: Callable[..., Any], edge_config: StackConfig) -> None:
    database = open_database(edge_config.storage.metadata_db())
    month_ago, hour_ago = time.time() - 30 * 86400, time.time() - 3600
    SpanStore(database).add_spans_blocking(
        [
            SpanRecord("a" * 32, "1" * 16, None, "GET /v1/models", "server", month_ago, month_ago + 1, "ok"),
            SpanRecord("a" * 32, "2" * 16, "1" * 16, "Models.list", "internal", month_ago, month_ago + 1, "ok"),
            SpanRecord("b" * 32, "3" * 16, None, "GET /v1/models", "server", hour_ago, hour_ago + 1, "ok"),
        ]
    )
    database.close()
    edge_config.telemetry.retention_days = 7
    client: TestClient[Any, Any] = await aiohttp_client(create_app(edge_config))
    assert (await client.get("/v1/health")).status == 200
    trace_ids = {span.trace_id for span in await stored_spans(client.app)}
    assert "a" * 32 not in trace_ids  # a month old: gone with all its spans
    assert "b" * 32 in trace_ids


async def test_each_span_belongs_to_the_user_of_its_request_even_in_a_shared_trace(
    access_app: TestClient[Any, Any], alice: As, bob: As
) -> None:
    """A trace id comes from the client: bob continuing alice's trace must not file his spans as hers."""
    traceparent = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
    for user in (alice, bob):
        async with access_app.get("/v1/models", headers={**user.headers, **traceparent}) as answer:
            assert answer.status == 200
    await stored_spans(access_app.app)  # flushed
    rows = await access_app.app[STACK].database.fetch(
        "SELECT span_id, parent_span_id, name, owner_principal FROM spans WHERE trace_id = ?", (CLIENT_TRACE,)
    )
    servers = [row for row in rows if row["parent_span_id"] == CLIENT_SPAN]
    assert sorted(row["owner_principal"] for row in servers) == ["alice", "bob"]
    for server in servers:  # and the API span below each server span has the same owner
        (api,) = [row for row in rows if row["parent_span_id"] == server["span_id"]]
        assert api["owner_principal"] == server["owner_principal"]
