"""Telemetry of background and evaluation work: an eval job's own trace (eval_job -> evaluate_row ->
the candidate's chat span, each score a `gen_ai.evaluation.result` event), scoring spans (a judge's
chat spans under them), a batch's trace (batch -> batch_line -> inference, grouped embeddings),
links to the starting request, spans owned by the job's user only, and no content by default."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import llama_stack_client
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import STACK, create_app
from pocketstack.config import StackConfig
from tests.support.batches import chat_line, client_of, ended, until, upload
from tests.support.batches import config as batch_config
from tests.support.config import edge_with
from tests.support.eval_rows import CANDIDATE, QUESTIONS, REPLIES, ROWS
from tests.support.eval_rows import config as eval_config
from tests.support.otlp import otlp_receiver
from tests.support.spans import StoredSpan, children_of, stored_spans
from tests.support.users import As, credentials, with_test_users

pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # Llama Stack marks register

EQUALITY = "basic::equality"
JUDGE = "llm-as-judge::base"
# The scripted model echoes what it is not told to answer: as judge, its verdict is the answer it read.
JUDGE_PARAMS: Any = {  # the client types the params as a TypedDict union
    "type": "llm_as_judge",
    "judge_model": "chat",
    "prompt_template": "{generated_answer}",
    "judge_score_regexes": ["(.*)"],
}


def _only(spans: list[StoredSpan], name: str) -> StoredSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _in_trace(spans: list[StoredSpan], trace_id: str) -> list[StoredSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def _results(span: StoredSpan) -> list[dict[str, Any]]:
    return [e["attributes"] for e in span.events if e["name"] == "gen_ai.evaluation.result"]


def _no_text_anywhere(spans: list[StoredSpan], *texts: str) -> None:
    for span in spans:
        recorded = json.dumps([span.attributes, span.events])
        for text in texts:
            assert text not in recorded, (span.name, text)


def _lls(server: TestClient[Any, Any], user: str) -> llama_stack_client.AsyncLlamaStackClient:
    return llama_stack_client.AsyncLlamaStackClient(
        base_url=str(server.make_url("")).rstrip("/"), max_retries=0, default_headers=credentials(user)
    )


async def _qa(lls: llama_stack_client.AsyncLlamaStackClient, functions: list[str]) -> None:
    await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": ROWS}, dataset_id="qa"
    )
    await lls.alpha.benchmarks.register(benchmark_id="sums", dataset_id="qa", scoring_functions=functions)


@pytest.fixture
async def eval_server(aiohttp_client: Callable[..., Any], scripted: Any) -> TestClient[Any, Any]:
    return await aiohttp_client(with_test_users(create_app(eval_config())))  # type: ignore[no-any-return]


async def test_an_eval_job_is_its_users_trace_of_rows_their_generations_and_scores(
    eval_server: TestClient[Any, Any],
) -> None:
    async with _lls(eval_server, "alice") as lls:
        await _qa(lls, [EQUALITY])
        job = await lls.alpha.eval.run_eval("sums", benchmark_config={"eval_candidate": CANDIDATE})
    assert job.status == "completed"
    spans = await stored_spans(eval_server.app)
    run = _only(spans, "eval_job sums")
    api = _only(spans, "Eval.run_eval")
    assert run.parent_span_id is None and run.trace_id != api.trace_id  # its own trace, not the request's
    assert run.status != "error"
    attributes = run.attributes
    assert attributes["pocketstack.eval.benchmark_id"] == "sums" and attributes["pocketstack.eval.job_id"] == "0"
    assert (attributes["pocketstack.eval.rows_total"], attributes["pocketstack.eval.rows_done"]) == (8, 8)
    assert attributes["pocketstack.eval.status"] == "completed"
    assert attributes[f"pocketstack.eval.aggregate.{EQUALITY}.accuracy.accuracy"] == 5 / 8
    assert attributes[f"pocketstack.eval.aggregate.{EQUALITY}.accuracy.num_correct"] == 5

    rows = sorted(
        (s for s in children_of(spans, run) if s.name == "evaluate_row"),
        key=lambda s: s.attributes["pocketstack.eval.row_index"],
    )
    assert [r.attributes["pocketstack.eval.row_index"] for r in rows] == list(range(8))
    for index, row in enumerate(rows):
        (chat,) = children_of(spans, row)
        assert chat.name == "chat chat" and chat.attributes["gen_ai.request.model"] == "chat"
        (result,) = _results(row)  # the chat span had ended when the score came: on the row, linked to it
        assert result == {
            "gen_ai.evaluation.name": EQUALITY,
            "gen_ai.evaluation.score.value": 1.0 if REPLIES[QUESTIONS[index]] == str(2 * index) else 0.0,
            "gen_ai.response.id": chat.attributes["gen_ai.response.id"],
        }
    # Rows are scored a batch at a time (max_concurrency 4): a score span per batch, under the job.
    scores = [s for s in children_of(spans, run) if s.name == f"score {EQUALITY}"]
    assert [s.attributes["pocketstack.scoring.row_count"] for s in scores] == [4, 4]
    assert [s.attributes["pocketstack.scoring.aggregate.accuracy.accuracy"] for s in scores] == [1.0, 0.25]

    job_trace = _in_trace(spans, run.trace_id)
    _no_text_anywhere(job_trace, *QUESTIONS, "no idea")  # no prompt or answer without capture_content
    alice, bob = As(eval_server, "alice"), As(eval_server, "bob")
    seen = await alice.ok("GET", f"/v1/telemetry/traces/{run.trace_id}")
    assert seen["root_span_id"] == run.span_id
    everything: dict[str, Any] = {"attribute_filters": [], "attributes_to_return": []}
    alices = {s["span_id"] for s in (await alice.ok("POST", "/v1/telemetry/spans", everything))["data"]}
    assert {s.span_id for s in job_trace} <= alices  # the whole job's trace is alice's
    await bob.hidden("GET", f"/v1/telemetry/traces/{run.trace_id}", run.trace_id, "0" * 31 + "1")
    bobs = {s["trace_id"] for s in (await bob.ok("POST", "/v1/telemetry/spans", everything))["data"]}
    assert run.trace_id not in bobs


async def test_a_failing_eval_job_is_an_error_and_judges_scores_carry_labels_and_explanations_when_opted_in(
    aiohttp_client: Callable[..., Any], scripted: Any
) -> None:
    config: StackConfig = eval_config()
    config = config.model_copy(update={"telemetry": config.telemetry.model_copy(update={"capture_content": True})})
    server = await aiohttp_client(create_app(config))
    async with _lls(server, "alice") as lls:
        await _qa(lls, [EQUALITY])
        await lls.alpha.eval.evaluate_rows(
            "sums",
            benchmark_config={"eval_candidate": CANDIDATE, "scoring_params": {JUDGE: JUDGE_PARAMS}},
            input_rows=ROWS[:2],
            scoring_functions=[EQUALITY, JUDGE],
        )
    spans = await stored_spans(server.app)
    api = _only(spans, "Eval.evaluate_rows")
    rows = [s for s in children_of(spans, api) if s.name == "evaluate_row"]
    assert len(rows) == 2
    for row in rows:
        results = {r["gen_ai.evaluation.name"]: r for r in _results(row)}
        answer = REPLIES[QUESTIONS[row.attributes["pocketstack.eval.row_index"]]]
        verdict = f"You said: {answer}"  # the scripted judge echoes the answer it read
        assert results[JUDGE]["gen_ai.evaluation.score.label"] == verdict  # a judge's verdict: a label
        assert results[JUDGE]["gen_ai.evaluation.explanation"] == verdict  # its feedback: content, opted in
        assert "gen_ai.evaluation.explanation" not in results[EQUALITY]
    judge = _only(spans, f"score {JUDGE}")
    assert judge.parent_span_id == api.span_id
    assert [s.name for s in children_of(spans, judge)] == ["chat chat", "chat chat"]  # the judge's own calls

    # A row the candidate cannot answer fails the job: the run's span and the row's are errors.
    bad_rows = {"type": "rows", "rows": [{"expected_answer": "1"}]}
    dataset = {"purpose": "eval/question-answer", "dataset_id": "bad", "source": bad_rows}
    assert (await server.post("/v1beta/datasets", json=dataset)).status == 200
    benchmark = {"benchmark_id": "bad", "dataset_id": "bad", "scoring_functions": [EQUALITY]}
    assert (await server.post("/v1alpha/eval/benchmarks", json=benchmark)).status == 204
    failed = await server.post(
        "/v1alpha/eval/benchmarks/bad/jobs", json={"benchmark_config": {"eval_candidate": CANDIDATE}}
    )
    assert failed.status == 400
    spans = await stored_spans(server.app)
    run = _only(spans, "eval_job bad")
    assert run.status == "error" and run.attributes["error.type"] == "BadRequestError"
    assert run.attributes["pocketstack.eval.status"] == "failed"
    (row,) = [s for s in children_of(spans, run) if s.name == "evaluate_row"]
    assert row.status == "error" and row.attributes["error.type"] == "BadRequestError"


async def test_eval_job_runs_link_to_the_request_that_created_them_and_rows_to_their_generation(
    aiohttp_client: Callable[..., Any], scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        server: TestClient[Any, Any] = await aiohttp_client(create_app(eval_config()))
        async with _lls(server, "alice") as lls:
            await _qa(lls, [EQUALITY])
            await lls.alpha.eval.run_eval("sums", benchmark_config={"eval_candidate": CANDIDATE, "num_examples": 1})
        stack = server.app[STACK]
        assert stack.telemetry is not None
        stack.telemetry.flush()
        (api,) = receiver.wait_for("Eval.run_eval")
        (run,) = receiver.wait_for("eval_job sums")
        assert run.links == ((api.trace_id, api.span_id),)
        (row,) = receiver.wait_for("evaluate_row")
        (chat,) = [s for s in receiver.wait_for("chat chat") if s.parent_span_id == row.span_id]
        assert row.links == ((chat.trace_id, chat.span_id),)
        await server.close()  # while the collector still listens


async def test_scoring_spans_per_function_with_rows_and_aggregates(
    aiohttp_client: Callable[..., Any], scripted: Any
) -> None:
    server = await aiohttp_client(create_app(eval_config()))
    rows: list[dict[str, object]] = [
        {"generated_answer": "4", "expected_answer": "4"},
        {"generated_answer": "5", "expected_answer": "6"},
    ]
    async with _lls(server, "alice") as lls:
        await lls.scoring.score(input_rows=rows, scoring_functions={EQUALITY: None, JUDGE: JUDGE_PARAMS})
        await lls.beta.datasets.register(
            purpose="eval/question-answer", source={"type": "rows", "rows": rows}, dataset_id="answers"
        )
        await lls.scoring.score_batch(
            dataset_id="answers", scoring_functions={EQUALITY: None}, save_results_dataset=False
        )
    spans = await stored_spans(server.app)
    score_api, batch_api = _only(spans, "Scoring.score"), _only(spans, "Scoring.score_batch")
    equality, judge = children_of(spans, score_api)
    assert (equality.name, judge.name) == (f"score {EQUALITY}", f"score {JUDGE}")
    assert equality.attributes["pocketstack.scoring.function_id"] == EQUALITY
    assert equality.attributes["pocketstack.scoring.row_count"] == 2
    assert equality.attributes["pocketstack.scoring.aggregate.accuracy.accuracy"] == 0.5
    assert equality.attributes["pocketstack.scoring.aggregate.accuracy.num_correct"] == 1
    assert [s.name for s in children_of(spans, judge)] == ["chat chat", "chat chat"]
    (batch_score,) = [s for s in children_of(spans, batch_api) if s.name.startswith("score ")]
    assert batch_score.name == f"score {EQUALITY}" and batch_score.attributes["pocketstack.scoring.row_count"] == 2
    _no_text_anywhere([judge, *children_of(spans, judge)], "You said")


@pytest.fixture
async def batch_server(aiohttp_client: Callable[..., Any], scripted: Any) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(with_test_users(create_app(batch_config())))


async def test_a_batch_is_its_users_trace_of_lines_with_their_status_codes(batch_server: TestClient[Any, Any]) -> None:
    async with client_of(batch_server, "alice") as oai:
        lines = [chat_line("ok", "capital?"), chat_line("bad", "hi", temperature=9)]
        created = await oai.batches.create(
            input_file_id=await upload(oai, lines), endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = await until(oai, created.id, ended)
    assert done.status == "completed"
    spans = await stored_spans(batch_server.app)
    run = _only(spans, f"batch {done.id}")
    create_api = _only(spans, "Batches.create_batch")
    assert run.parent_span_id is None and run.trace_id != create_api.trace_id
    expected = {
        "pocketstack.batch.id": done.id,
        "pocketstack.batch.endpoint": "/v1/chat/completions",
        "pocketstack.batch.line_count": 2,
        "pocketstack.batch.status": "completed",
        "pocketstack.batch.request_counts.total": 2,
        "pocketstack.batch.request_counts.completed": 1,
        "pocketstack.batch.request_counts.failed": 1,
    }
    assert {key: run.attributes.get(key) for key in expected} == expected
    assert run.status != "error"
    ok, bad = [s for s in children_of(spans, run) if s.name == "batch_line"]
    assert (ok.attributes["pocketstack.batch.custom_id"], ok.attributes["http.response.status_code"]) == ("ok", 200)
    assert ok.status != "error" and [s.name for s in children_of(spans, ok)] == ["chat chat"]
    assert (bad.attributes["pocketstack.batch.custom_id"], bad.attributes["http.response.status_code"]) == ("bad", 400)
    assert bad.status == "error" and bad.attributes["error.type"] == "400"
    batch_trace = _in_trace(spans, run.trace_id)
    _no_text_anywhere(batch_trace, "capital?", "Paris.")

    alice, bob = As(batch_server, "alice"), As(batch_server, "bob")
    assert (await alice.ok("GET", f"/v1/telemetry/traces/{run.trace_id}"))["root_span_id"] == run.span_id
    await bob.hidden("GET", f"/v1/telemetry/traces/{run.trace_id}", run.trace_id, "0" * 31 + "1")
    await bob.hidden("GET", f"/v1/telemetry/traces/{run.trace_id}/spans/{ok.span_id}", ok.span_id, "0" * 15 + "1")


async def test_embeddings_lines_run_as_one_group_span(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    server = await aiohttp_client(create_app(edge_with()))
    body = {"model": stored_embedding}
    lines = [
        {"custom_id": f"e{n}", "method": "POST", "url": "/v1/embeddings", "body": body | {"input": f"text {n}"}}
        for n in range(3)
    ]
    async with client_of(server) as oai:
        created = await oai.batches.create(
            input_file_id=await upload(oai, lines), endpoint="/v1/embeddings", completion_window="24h"
        )
        done = await until(oai, created.id, ended)
    assert done.status == "completed"
    spans = await stored_spans(server.app)
    run = _only(spans, f"batch {done.id}")
    (group,) = children_of(spans, run)
    assert group.name == "batch_line_group" and group.attributes["pocketstack.batch.line_count"] == 3
    assert group.attributes["pocketstack.batch.failed_lines"] == 0
    (embeddings,) = children_of(spans, group)
    assert embeddings.name == f"embeddings {stored_embedding}"
    assert embeddings.attributes["pocketstack.embeddings.count"] == 3


async def test_a_failed_batch_is_an_error(batch_server: TestClient[Any, Any]) -> None:
    async with client_of(batch_server, "alice") as alice:
        created = await alice.batches.create(
            input_file_id=await upload(alice, "not json\n"), endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = await until(alice, created.id, ended)
    assert done.status == "failed"
    run = _only(await stored_spans(batch_server.app), f"batch {done.id}")
    assert run.status == "error" and run.attributes["pocketstack.batch.status"] == "failed"
    assert done.errors is not None and done.errors.data is not None
    assert run.attributes["error.type"] == done.errors.data[0].code
