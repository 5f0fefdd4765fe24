"""Benchmarks and Eval through the official `llama_stack_client` (0.7.5): register, evaluate rows,
jobs as Llama Stack's builtin provider runs them (ids "0", "1"…, completed when run_eval answers),
background jobs with progress, cancel, a restart mid-job (resumed, no row twice), results kept as
a dataset, agent candidates, and bad input (unknown benchmark/dataset/function 404, malformed rows
400 naming the row, another user's job hidden)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import create_app
from tests.support.documents import store_of
from tests.support.errors import assert_error_shape
from tests.support.eval_rows import CANDIDATE, COMET, QUESTIONS, REPLIES, ROWS, config
from tests.support.users import As, with_test_users

pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # Llama Stack marks register


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> TestClient[Any, Any]:
    return await aiohttp_client(with_test_users(create_app(config())))  # type: ignore[no-any-return]


async def _sums(lls: llama_stack_client.AsyncLlamaStackClient, benchmark_id: str = "sums") -> None:
    await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": ROWS}, dataset_id="qa"
    )
    await lls.alpha.benchmarks.register(
        benchmark_id=benchmark_id, dataset_id="qa", scoring_functions=["basic::equality"]
    )


def _accuracy(scores: Any) -> float:
    return float(scores["basic::equality"].aggregated_results["accuracy"]["accuracy"])


async def test_benchmarks_register_list_get_unregister(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    builtin = {b.identifier for b in await lls.alpha.benchmarks.list()}
    assert builtin == {"pocketstack::arithmetic", "pocketstack::multiple-choice"}
    await _sums(lls)
    got = await lls.alpha.benchmarks.retrieve("sums")
    assert got.dataset_id == "qa" and got.scoring_functions == ["basic::equality"] and got.provider_id == "builtin"
    assert "sums" in {b.identifier for b in await lls.alpha.benchmarks.list()}
    await lls.alpha.benchmarks.unregister("sums")
    with pytest.raises(llama_stack_client.NotFoundError):
        await lls.alpha.benchmarks.retrieve("sums")
    with pytest.raises(llama_stack_client.BadRequestError, match="provider"):
        await lls.alpha.benchmarks.unregister("pocketstack::arithmetic")


async def test_a_benchmark_naming_what_does_not_exist_is_a_404(server: TestClient[Any, Any]) -> None:
    await server.post(
        "/v1beta/datasets",
        json={"purpose": "eval/question-answer", "source": {"type": "rows", "rows": ROWS}, "dataset_id": "qa"},
    )
    for body, missing in (
        ({"benchmark_id": "b", "dataset_id": "nope", "scoring_functions": ["basic::equality"]}, "nope"),
        ({"benchmark_id": "b", "dataset_id": "qa", "scoring_functions": ["basic::nope"]}, "basic::nope"),
    ):
        response = await server.post("/v1alpha/eval/benchmarks", json=body)
        assert response.status == 404
        assert missing in assert_error_shape(await response.json())["message"]
    for path in ("/v1alpha/eval/benchmarks/nope", "/v1alpha/eval/benchmarks/nope/jobs/0"):
        response = await server.get(path)
        assert response.status == 404 and "nope" in assert_error_shape(await response.json())["message"]


async def test_evaluate_rows_answers_and_scores_them(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    await _sums(lls)
    result = await lls.alpha.eval.evaluate_rows(
        "sums",
        benchmark_config={"eval_candidate": CANDIDATE},
        input_rows=ROWS[:4] + ROWS[6:],
        scoring_functions=["basic::equality"],
    )
    assert [g["generated_answer"] for g in result.generations] == ["0", "2", "4", "6", "no idea", "no idea"]
    assert [r["score"] for r in result.scores["basic::equality"].score_rows] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


async def test_run_eval_as_llama_stack_job_ids_and_a_results_dataset(
    lls: llama_stack_client.AsyncLlamaStackClient, scripted: list[models.ChatCompletionRequest]
) -> None:
    await _sums(lls)
    system = {"role": "system", "content": "Answer with a number."}
    job = await lls.alpha.eval.run_eval(
        "sums", benchmark_config={"eval_candidate": CANDIDATE | {"system_message": system}}
    )
    assert (job.job_id, job.status) == ("0", "completed")  # as Llama Stack's builtin provider: run when it answers
    assert scripted[0].messages[0].role == "system" and scripted[0].messages[0].content == "Answer with a number."
    assert (await lls.alpha.eval.jobs.status("0", benchmark_id="sums")).status == "completed"
    result = await lls.alpha.eval.jobs.retrieve("0", benchmark_id="sums")
    assert len(result.generations) == 8 and _accuracy(result.scores) == 5 / 8
    accuracy: Any = result.scores["basic::equality"].aggregated_results["accuracy"]
    assert accuracy["num_correct"] == 5

    limited = await lls.alpha.eval.run_eval("sums", benchmark_config={"eval_candidate": CANDIDATE, "num_examples": 3})
    assert limited.job_id == "1"
    assert len((await lls.alpha.eval.jobs.retrieve("1", benchmark_id="sums")).generations) == 3
    # Every job keeps its rows, generations and scores as a dataset.
    raw = await lls.alpha.eval.jobs.status("0", benchmark_id="sums")
    saved = await lls.beta.datasets.iterrows(str(raw.to_dict()["results_dataset_id"]))
    assert [r["generated_answer"] for r in saved.data] == [REPLIES[q] for q in QUESTIONS]
    assert saved.data[0]["basic::equality"] == {"score": 1.0} and saved.data[0]["input_query"] == QUESTIONS[0]
    # A job asked for under another benchmark is not found.
    await lls.alpha.benchmarks.register(benchmark_id="other", dataset_id="qa", scoring_functions=["basic::equality"])
    with pytest.raises(llama_stack_client.NotFoundError):
        await lls.alpha.eval.jobs.status("0", benchmark_id="other")


async def _until(server: TestClient[Any, Any], path: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(400):
        answer = await server.get(path)
        job: dict[str, Any] = await answer.json()
        if answer.status == 200 and done(job):  # a job run_eval creates may not exist yet
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never got there: {job}")


async def test_a_background_job_reports_progress_and_can_be_cancelled(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    slow = {q: 30.0 for q in QUESTIONS[4:]}
    server = await aiohttp_client(create_app(config(slow=slow)))
    lls = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"), max_retries=0)
    await _sums(lls)
    started = await server.post(
        "/v1alpha/eval/benchmarks/sums/jobs",
        json={"benchmark_config": {"eval_candidate": CANDIDATE}, "background": True},
    )
    job = await started.json()
    assert job["status"] in ("scheduled", "in_progress") and job["rows_total"] == 8
    path = f"/v1alpha/eval/benchmarks/sums/jobs/{job['job_id']}"
    job = await _until(server, path, lambda j: j["rows_done"] == 4)
    assert job["status"] == "in_progress"
    pending = await server.get(f"{path}/result")
    assert pending.status == 400 and "not completed" in assert_error_shape(await pending.json())["message"]
    await lls.alpha.eval.jobs.cancel(job["job_id"], benchmark_id="sums")
    assert (await lls.alpha.eval.jobs.status(job["job_id"], benchmark_id="sums")).status == "cancelled"
    again = await server.delete(path)
    assert again.status == 204  # cancelling a cancelled job is a no-op
    await lls.close()


async def test_a_restart_mid_job_resumes_without_doing_a_row_twice(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    first = await aiohttp_client(create_app(config(slow={q: 30.0 for q in QUESTIONS[4:]})))
    lls = llama_stack_client.AsyncLlamaStackClient(base_url=str(first.make_url("")).rstrip("/"), max_retries=0)
    await _sums(lls)
    await lls.close()
    job = await (
        await first.post(
            "/v1alpha/eval/benchmarks/sums/jobs",
            json={"benchmark_config": {"eval_candidate": CANDIDATE}, "background": True},
        )
    ).json()
    path = f"/v1alpha/eval/benchmarks/sums/jobs/{job['job_id']}"
    await _until(first, path, lambda j: j["rows_done"] == 4)
    await first.close()  # the second batch was in flight: dropped, to be done again
    asked_before = [str(r.messages[-1].content) for r in scripted]

    second = await aiohttp_client(create_app(config()))
    done = await _until(second, path, lambda j: j["status"] == "completed")
    assert done["rows_done"] == 8
    asked_after = [str(r.messages[-1].content) for r in scripted][len(asked_before) :]
    assert sorted(asked_after) == sorted(QUESTIONS[4:])  # the first four rows were never asked again
    result = await (await second.get(f"{path}/result")).json()
    assert [g["generated_answer"] for g in result["generations"]] == [REPLIES[q] for q in QUESTIONS]
    assert result["scores"]["basic::equality"]["aggregated_results"]["accuracy"]["accuracy"] == 5 / 8


async def test_a_results_dataset_no_job_owns_does_not_block_the_next_job(
    lls: llama_stack_client.AsyncLlamaStackClient,
) -> None:
    await _sums(lls)
    # What a server killed between registering job 0's results dataset and recording job 0 leaves.
    await lls.beta.datasets.register(
        purpose="eval/question-answer",
        source={"type": "rows", "rows": []},
        dataset_id="eval-job-0",
        metadata={"eval_job_id": "0", "benchmark_id": "sums"},
    )
    first = await lls.alpha.eval.run_eval("sums", benchmark_config={"eval_candidate": CANDIDATE, "num_examples": 2})
    assert first.job_id == "0"  # was a 409 for this job and every one after it
    assert len((await lls.beta.datasets.iterrows("eval-job-0")).data) == 2
    # A dataset of the user's own under the next job's name is theirs: the job takes another number.
    await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": ROWS[:1]}, dataset_id="eval-job-1"
    )
    second = await lls.alpha.eval.run_eval("sums", benchmark_config={"eval_candidate": CANDIDATE, "num_examples": 2})
    assert second.job_id == "2"
    assert (await lls.beta.datasets.iterrows("eval-job-1")).data == ROWS[:1]


async def test_malformed_rows_and_unknown_models_are_named(server: TestClient[Any, Any]) -> None:
    lls = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"), max_retries=0)
    await _sums(lls)
    await lls.close()
    rows = [ROWS[0], {"expected_answer": "1"}]
    response = await server.post(
        "/v1alpha/eval/benchmarks/sums/evaluations",
        json={
            "input_rows": rows,
            "scoring_functions": ["basic::equality"],
            "benchmark_config": {"eval_candidate": CANDIDATE},
        },
    )
    assert response.status == 400 and "row 1" in assert_error_shape(await response.json())["message"]
    unknown = CANDIDATE | {"model": "no-such-model"}
    response = await server.post(
        "/v1alpha/eval/benchmarks/sums/jobs", json={"benchmark_config": {"eval_candidate": unknown}}
    )
    assert response.status == 404 and "no-such-model" in assert_error_shape(await response.json())["message"]


async def test_another_users_job_is_hidden(server: TestClient[Any, Any]) -> None:
    lls = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"), max_retries=0)
    await _sums(lls)  # registered without a user: everyone sees the benchmark
    await lls.close()
    alice, bob = As(server, "alice"), As(server, "bob")
    job = await alice.ok(
        "POST", "/v1alpha/eval/benchmarks/sums/jobs", {"benchmark_config": {"eval_candidate": CANDIDATE}}
    )
    assert job["job_id"] == "0"
    path = "/v1alpha/eval/benchmarks/sums/jobs/0"
    await bob.hidden("GET", path, "0", "999")
    await bob.hidden("GET", f"{path}/result", "0", "999")
    await bob.hidden("DELETE", path, "0", "999")
    assert (await alice.ok("GET", path))["status"] == "completed"


async def test_an_agent_candidate_answers_through_the_responses_engine(
    lls: llama_stack_client.AsyncLlamaStackClient, scripted: list[models.ChatCompletionRequest]
) -> None:
    await _sums(lls)
    agent = {"type": "agent", "config": {"model": "chat", "instructions": "You add numbers."}}
    job = await lls.alpha.eval.run_eval("sums", benchmark_config={"eval_candidate": agent, "num_examples": 2})  # type: ignore[typeddict-item]
    assert job.status == "completed"
    result = await lls.alpha.eval.jobs.retrieve(job.job_id, benchmark_id="sums")
    assert [g["generated_answer"] for g in result.generations] == ["0", "2"]
    assert scripted[0].messages[0].role == "system" and scripted[0].messages[0].content == "You add numbers."


async def test_a_job_cancelled_while_its_run_eval_waits_answers_cancelled(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    server = await aiohttp_client(create_app(config(slow={q: 30.0 for q in QUESTIONS[4:]})))
    lls = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"), max_retries=0)
    await _sums(lls)
    running = asyncio.ensure_future(lls.alpha.eval.run_eval("sums", benchmark_config={"eval_candidate": CANDIDATE}))
    await _until(server, "/v1alpha/eval/benchmarks/sums/jobs/0", lambda j: j["rows_done"] == 4)
    await lls.alpha.eval.jobs.cancel("0", benchmark_id="sums")
    job = await asyncio.wait_for(running, 10)  # answered at once, not after the slow rows
    assert (job.job_id, job.status) == ("0", "cancelled")
    await lls.close()


async def test_a_rag_agent_is_evaluated_with_its_knowledge_search(
    lls: llama_stack_client.AsyncLlamaStackClient, oai: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    store = await store_of(oai, stored_embedding)
    rows: list[dict[str, object]] = [{"input_query": COMET, "expected_answer": "glowing tail of ice and dust"}]
    await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": rows}, dataset_id="rag"
    )
    await lls.alpha.benchmarks.register(benchmark_id="rag", dataset_id="rag", scoring_functions=["basic::subset_of"])
    rag = [{"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": [store]}}]
    agent: Any = {"type": "agent", "config": {"model": "chat", "instructions": "Search first.", "toolgroups": rag}}
    job = await lls.alpha.eval.run_eval("rag", benchmark_config={"eval_candidate": agent})
    result = await lls.alpha.eval.jobs.retrieve(job.job_id, benchmark_id="rag")
    assert "glowing tail of ice and dust" in str(result.generations[0]["generated_answer"])  # what the search found
    assert result.scores["basic::subset_of"].score_rows == [{"score": 1.0}]
    assert (await lls.get("/v1alpha/agents", cast_to=object)) == {"data": [], "has_more": False}  # none left behind


async def test_benchmarks_from_the_run_config(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    dataset = {"dataset_id": "qa", "purpose": "eval/question-answer", "source": {"type": "rows", "rows": ROWS}}
    benchmark = {"benchmark_id": "sums", "dataset_id": "qa", "scoring_functions": ["basic::equality"]}
    server = await aiohttp_client(create_app(config({"datasets": [dataset], "benchmarks": [benchmark]})))
    lls = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"), max_retries=0)
    job = await lls.alpha.eval.run_eval("sums", benchmark_config={"eval_candidate": CANDIDATE})
    assert _accuracy((await lls.alpha.eval.jobs.retrieve(job.job_id, benchmark_id="sums")).scores) == 5 / 8
    with pytest.raises(llama_stack_client.BadRequestError, match="registered_resources"):
        await lls.alpha.benchmarks.unregister("sums")
    await lls.close()

    wrong = benchmark | {"dataset_id": "absent"}
    broken = await aiohttp_client(create_app(config({"benchmarks": [wrong]})))
    answer = await broken.get("/v1/models")
    message = assert_error_shape(await answer.json())["message"]
    assert answer.status == 503 and "registered_resources.benchmarks[0] (sums)" in message and "absent" in message
