"""The Telemetry query API over a seeded span store, through the real app: traces (GET list, query with
filters, one trace with its spans), spans, span trees to a depth with chosen attributes, query_spans,
save_spans_to_dataset read back with the official client's iterrows, log_event span_start/span_end and
logs, metrics in buckets with label matchers; each user sees only their own (another's ids are 404s);
a 0.7 client may call these 0.2 routes. The spans the server itself records: test_telemetry.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import llama_stack_client
import pytest
from aiohttp.test_utils import TestClient
from pocketstack_client import Client
from pocketstack_client.api.telemetry import list_traces
from pocketstack_client.models import QueryTracesResponse

from pocketstack import LLAMA_STACK_VERSION
from pocketstack.app import STACK, create_app
from pocketstack.storage.owners import Owner
from pocketstack.storage.spans import SpanRecord, SpanStore
from tests.support.config import edge_with
from tests.support.traces import MODEL, chat_request, new_span_id, new_trace_id
from tests.support.users import USERS, As, credentials, with_test_users

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # datasets.register


def owner(name: str) -> Owner:
    user = USERS[name]
    return Owner(user.principal, {k: list(v) for k, v in user.attributes.items()})


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    # The server's own spans stay out of the store: the tests read exactly what they seeded.
    app = with_test_users(create_app(edge_with(telemetry={"enabled": False})))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    status, _ = await As(client, None).call("GET", "/v1/models")  # the APIs are assembled
    assert status == 200
    return client


async def seed(server: TestClient[Any, Any], spans: list[SpanRecord]) -> None:
    await asyncio.to_thread(SpanStore(server.app[STACK].database).add_spans_blocking, spans)


async def test_traces_spans_and_trees(server: TestClient[Any, Any]) -> None:
    first, second = chat_request(NOW, owner("alice"), tokens=(3, 4)), chat_request(NOW + 60, owner("alice"))
    await seed(server, [*first, *second])
    alice = As(server, "alice")

    listed = await alice.ok("GET", "/v1/telemetry/traces")
    assert [t["trace_id"] for t in listed["data"]] == [second[0].trace_id, first[0].trace_id]
    newest = listed["data"][0]
    assert newest["name"] == "POST /v1/chat/completions" and newest["status"] == "ok"
    assert newest["duration_ms"] == pytest.approx(412.3) and newest["root_span_id"] == second[0].span_id
    assert [s["span_id"] for s in newest["spans"]] == [s.span_id for s in second]  # parents before children
    assert newest["spans"][2]["attributes"]["gen_ai.usage.output_tokens"] == 40
    assert newest["start_time"].startswith("2025-06-15T15:07:40")

    # the generated SDK reads the same
    sdk = Client(base_url=str(server.make_url("")).rstrip("/"), headers=credentials("alice"))
    answer = await list_traces.asyncio(client=sdk, limit=1, offset=1)
    assert isinstance(answer, QueryTracesResponse) and [t.trace_id for t in answer.data] == [first[0].trace_id]

    queried = await alice.ok(
        "POST",
        "/v1/telemetry/traces",
        {
            "attribute_filters": [{"key": "gen_ai.usage.input_tokens", "op": "lt", "value": 10}],
            "order_by": ["start_time"],
        },
    )
    assert [t["trace_id"] for t in queried["data"]] == [first[0].trace_id] and "spans" not in queried["data"][0]

    trace = await alice.ok("GET", f"/v1/telemetry/traces/{first[0].trace_id}")
    assert trace["root_span_id"] == first[0].span_id and len(trace["spans"]) == 3
    span = await alice.ok("GET", f"/v1/telemetry/traces/{first[0].trace_id}/spans/{first[2].span_id}")
    assert span["parent_span_id"] == first[1].span_id and span["attributes"]["gen_ai.request.model"] == MODEL

    tree = await alice.ok("POST", f"/v1/telemetry/spans/{first[0].span_id}/tree", {"max_depth": 2})
    assert list(tree["data"]) == [first[0].span_id, first[1].span_id]
    chosen = await alice.ok(
        "POST", f"/v1/telemetry/spans/{first[1].span_id}/tree", {"attributes_to_return": ["gen_ai.request.model"]}
    )
    assert {k: v["attributes"] for k, v in chosen["data"].items()} == {
        first[1].span_id: {"gen_ai.request.model": None},
        first[2].span_id: {"gen_ai.request.model": MODEL},
    }

    spans = await alice.ok(
        "POST",
        "/v1/telemetry/spans",
        {"attribute_filters": [], "attributes_to_return": ["gen_ai.usage.input_tokens"]},
    )
    assert sorted(s["span_id"] for s in spans["data"]) == sorted([first[2].span_id, second[2].span_id])
    assert {s["trace_id"] for s in spans["data"]} == {first[0].trace_id, second[0].trace_id}
    shallow = await alice.ok(
        "POST",
        "/v1/telemetry/spans",
        {"attribute_filters": [], "attributes_to_return": ["gen_ai.usage.input_tokens"], "max_depth": 2},
    )
    assert shallow["data"] == []


async def test_each_user_sees_their_own(server: TestClient[Any, Any]) -> None:
    alices, bobs = chat_request(NOW, owner("alice")), chat_request(NOW + 1, owner("bob"))
    await seed(server, [*alices, *bobs])
    alice, bob = As(server, "alice"), As(server, "bob")
    assert [t["trace_id"] for t in (await alice.ok("GET", "/v1/telemetry/traces"))["data"]] == [alices[0].trace_id]
    assert [t["trace_id"] for t in (await bob.ok("POST", "/v1/telemetry/traces", {}))["data"]] == [bobs[0].trace_id]
    missing_trace, missing_span = new_trace_id(), new_span_id()
    trace, span = bobs[0].trace_id, bobs[2].span_id
    await alice.hidden("GET", f"/v1/telemetry/traces/{trace}", trace, missing_trace)
    await alice.hidden("GET", f"/v1/telemetry/traces/{trace}/spans/{span}", span, missing_span)
    await alice.hidden("POST", f"/v1/telemetry/spans/{span}/tree", span, missing_span, {})
    everything: dict[str, list[str]] = {"attribute_filters": [], "attributes_to_return": []}
    assert {s["trace_id"] for s in (await alice.ok("POST", "/v1/telemetry/spans", everything))["data"]} == {
        alices[0].trace_id
    }
    tokens = await bob.ok("POST", "/v1/telemetry/metrics/total_tokens", {"start_time": int(NOW) - 10})
    assert [p["value"] for series in tokens["data"] for p in series["values"]] == [52]


async def test_save_spans_to_dataset(
    server: TestClient[Any, Any], lls: llama_stack_client.AsyncLlamaStackClient
) -> None:
    spans = chat_request(NOW, None, tokens=(7, 9))
    await seed(server, spans)
    await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": []}, dataset_id="traces"
    )
    anyone = As(server, None)
    request = {
        "attribute_filters": [{"key": "gen_ai.operation.name", "op": "eq", "value": "chat"}],
        "attributes_to_save": ["gen_ai.request.model", "gen_ai.usage.output_tokens"],
        "dataset_id": "traces",
    }
    status, _ = await anyone.call("POST", "/v1/telemetry/spans/export", request)
    assert status == 204
    rows = (await lls.beta.datasets.iterrows("traces")).data
    assert rows == [
        {
            "trace_id": spans[2].trace_id,
            "span_id": spans[2].span_id,
            "parent_span_id": spans[1].span_id,
            "name": "chat SmolLM2-135M-Instruct",
            "start_time": datetime.fromtimestamp(spans[2].start_time, UTC).isoformat(),
            "end_time": datetime.fromtimestamp(spans[2].end_time, UTC).isoformat(),
            "gen_ai.request.model": MODEL,
            "gen_ai.usage.output_tokens": 9,
        }
    ]
    status, error = await anyone.call("POST", "/v1/telemetry/spans/export", {**request, "dataset_id": "nope"})
    assert status == 404 and "nope" in error["error"]["message"]


async def test_log_event_spans_of_a_client(server: TestClient[Any, Any]) -> None:
    alice = As(server, "alice")
    trace_id, top, step = new_trace_id(), new_span_id(), new_span_id()
    began = datetime.fromtimestamp(NOW, UTC)

    async def log(span_id: str, at: float, **event: Any) -> None:
        moment = datetime.fromtimestamp(NOW + at, UTC).isoformat()
        body = {"event": {"trace_id": trace_id, "span_id": span_id, "timestamp": moment, **event}, "ttl_seconds": 60}
        status, answer = await alice.call("POST", "/v1/telemetry/events", body)
        assert status == 204, answer

    await log(
        top, 0, type="structured_log", payload={"type": "span_start", "name": "my agent turn"}, attributes={"k": "v"}
    )
    await log(step, 0.1, type="structured_log", payload={"type": "span_start", "name": "tool", "parent_span_id": top})
    await log(step, 0.1, type="unstructured_log", message="calling the tool", severity="info")
    await log(step, 0.2, type="metric", metric="tool_calls", value=1, unit="calls", attributes={"tool": "add"})
    await log(step, 0.3, type="structured_log", payload={"type": "span_end", "status": "error"})

    tree = (await alice.ok("POST", f"/v1/telemetry/spans/{top}/tree", {}))["data"]
    assert list(tree) == [top, step]
    assert "end_time" not in tree[top] and "status" not in tree[top]  # still open
    assert tree[step]["status"] == "error" and tree[step]["parent_span_id"] == top
    assert tree[step]["end_time"].startswith("2025-06-15T15:06:40.3")
    await log(top, 1.5, type="structured_log", payload={"type": "span_end", "status": "ok"}, attributes={"n": 2})
    trace = await alice.ok("GET", f"/v1/telemetry/traces/{trace_id}")
    assert (trace["name"], trace["status"], trace["duration_ms"]) == ("my agent turn", "ok", 1500.0)
    assert trace["start_time"] == began.isoformat().replace("+00:00", "Z")
    assert trace["spans"][0]["attributes"] == {"k": "v", "n": 2}

    # A log on a span the store lacks becomes a span of its own.
    orphan = new_span_id()
    await log(orphan, 2, type="unstructured_log", message="hello", severity="warn")
    alone = await alice.ok("GET", f"/v1/telemetry/traces/{trace_id}/spans/{orphan}")
    assert alone["name"] == "unstructured_log" and alone["attributes"]["message"] == "hello"

    calls = await alice.ok(
        "POST", "/v1/telemetry/metrics/tool_calls", {"start_time": int(NOW), "end_time": int(NOW) + 5}
    )
    assert calls["data"] == [
        {
            "metric": "tool_calls",
            "labels": [{"name": "tool", "value": "add"}],
            "values": [{"timestamp": int(NOW), "value": 1.0, "unit": "calls"}],
        }
    ]
    # another user can neither see nor end it
    status, _ = await As(server, "bob").call("GET", f"/v1/telemetry/traces/{trace_id}")
    assert status == 404
    moment = datetime.fromtimestamp(NOW + 3, UTC).isoformat()
    end = {
        "trace_id": trace_id,
        "span_id": top,
        "timestamp": moment,
        "type": "structured_log",
        "payload": {"type": "span_end", "status": "ok"},
    }
    status, _ = await As(server, "bob").call("POST", "/v1/telemetry/events", {"event": end})
    assert status == 404


async def test_metrics_in_buckets(server: TestClient[Any, Any]) -> None:
    me = owner("alice")
    spans = [
        *chat_request(NOW, me, model="m/a", tokens=(10, 1)),
        *chat_request(NOW + 30, me, model="m/a", tokens=(20, 2)),
        *chat_request(NOW + 90, me, model="m/b", tokens=(40, 4)),
        *chat_request(NOW + 4000, me, model="m/a", tokens=(80, 8), status_code=500),
    ]
    await seed(server, spans)
    alice = As(server, "alice")
    minute = 60 * (int(NOW) // 60)

    async def query(metric: str, **body: Any) -> list[dict[str, Any]]:
        answer = await alice.ok("POST", f"/v1/telemetry/metrics/{metric}", {"start_time": int(NOW) - 1, **body})
        return answer["data"]  # type: ignore[no-any-return]

    def by_label(series: list[dict[str, Any]], name: str) -> dict[str, list[tuple[int, float]]]:
        return {
            next(label["value"] for label in s["labels"] if label["name"] == name): [
                (p["timestamp"], p["value"]) for p in s["values"]
            ]
            for s in series
        }

    prompt = await query("prompt_tokens", granularity="1m", label_matchers=[{"name": "model_id", "value": "m/a"}])
    assert by_label(prompt, "model_id") == {"m/a": [(minute, 10.0), (minute + 60, 20.0), (minute + 4020, 80.0)]}
    assert {label["name"] for label in prompt[0]["labels"]} >= {"model_id", "provider_id", "gen_ai.request.model"}
    assert by_label(await query("total_tokens"), "model_id") == {
        "m/a": [(int(NOW) - 1, 121.0)],
        "m/b": [(int(NOW) - 1, 44.0)],
    }
    hourly = await query(
        "completion_tokens", granularity="1h", label_matchers=[{"name": "model_id", "value": "m/.*", "operator": "=~"}]
    )
    assert sum(p["value"] for s in hourly for p in s["values"]) == 15
    not_a = await query("completion_tokens", label_matchers=[{"name": "model_id", "value": "m/a", "operator": "!="}])
    assert by_label(not_a, "model_id") == {"m/b": [(int(NOW) - 1, 4.0)]}
    usage = await query("gen_ai.client.token.usage", query_type="instant", end_time=int(NOW) + 100)
    labelled = [({label["name"]: label["value"] for label in s["labels"]}, s["values"][0]["value"]) for s in usage]
    totals = {(labels["gen_ai.token.type"], labels["model_id"]): value for labels, value in labelled}
    assert totals == {("input", "m/a"): 30.0, ("output", "m/a"): 3.0, ("input", "m/b"): 40.0, ("output", "m/b"): 4.0}
    assert usage[0]["values"][0]["timestamp"] == int(NOW) + 100 and usage[0]["values"][0]["unit"] == "{token}"

    durations = await query(
        "http.server.request.duration", label_matchers=[{"name": "http.response.status_code", "value": "200"}]
    )
    assert len(durations) == 1 and durations[0]["values"][0]["value"] == pytest.approx(0.4123)
    assert durations[0]["values"][0]["unit"] == "s"
    ttft = await query("gen_ai.server.time_to_first_token")
    assert [p["value"] for s in ttft for p in s["values"]] == pytest.approx([0.05, 0.05])
    assert len(await query("gen_ai.server.request.duration")) == 2

    status, error = await alice.call("POST", "/v1/telemetry/metrics/cpu", {"start_time": 0})
    assert (
        status == 400
        and "unknown metric 'cpu'" in error["error"]["message"]
        and "total_tokens" in error["error"]["message"]
    )
    status, error = await alice.call(
        "POST", "/v1/telemetry/metrics/total_tokens", {"start_time": 0, "granularity": "1y"}
    )
    assert status == 400


async def test_a_0_7_client_may_call_the_0_2_routes(server: TestClient[Any, Any]) -> None:
    headers = {"X-LlamaStack-Client-Version": LLAMA_STACK_VERSION, **credentials("alice")}
    async with server.get("/v1/telemetry/traces", headers=headers) as answer:
        assert answer.status == 200


async def test_the_servers_own_spans_read_back(aiohttp_client: Callable[..., Any]) -> None:
    """Done means: a user's last requests, each step with its duration, from GET /v1/telemetry/traces."""
    app = with_test_users(create_app(edge_with()))
    server: TestClient[Any, Any] = await aiohttp_client(app)
    alice, bob = As(server, "alice"), As(server, "bob")
    await alice.ok("GET", "/v1/models")
    await bob.ok("GET", "/v1/prompts")
    telemetry = app[STACK].telemetry
    assert telemetry is not None
    await asyncio.to_thread(telemetry.flush)
    traces = (await alice.ok("GET", "/v1/telemetry/traces"))["data"]
    assert [t["name"] for t in traces] == ["GET /v1/models"]
    spans = traces[0]["spans"]
    assert [s["name"] for s in spans[:2]] == ["GET /v1/models", "Models.openai_list_models"]
    assert spans[1]["parent_span_id"] == spans[0]["span_id"] and traces[0]["duration_ms"] > 0
