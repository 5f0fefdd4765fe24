"""Batches through the official `openai` client: create, poll, the output and error files, each
validation error code, cancel mid-run, a restart mid-run, idempotency, the five endpoints, expiry,
another user's batch hidden, and interactive chat served before queued batch lines."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import STACK, create_app
from tests.support.batches import Lines, chat_line, client_of, config, ended, until, upload
from tests.support.users import with_test_users


@pytest.fixture
async def oai(aiohttp_client: Callable[..., Any], scripted: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    server = await aiohttp_client(create_app(config(slow={"Take your time": 30})))
    async with client_of(server) as client:
        yield client


async def file_lines(oai: openai.AsyncOpenAI, file_id: str | None) -> Lines:
    if file_id is None:
        return []
    content = await oai.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines() if line]


async def run(oai: openai.AsyncOpenAI, lines: Lines, endpoint: Any = "/v1/chat/completions") -> Any:
    batch = await oai.batches.create(input_file_id=await upload(oai, lines), endpoint=endpoint, completion_window="24h")
    return await until(oai, batch.id, ended)


async def test_a_chat_batch_runs_and_writes_one_output_line_per_request(oai: openai.AsyncOpenAI) -> None:
    lines = [chat_line("a", "capital?"), chat_line("b", "hello"), chat_line("c", "hi", model="no-such-model")][:2]
    file_id = await upload(oai, lines)
    created = await oai.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "1"}
    )
    assert created.status == "validating" and created.expires_at == created.created_at + 24 * 3600
    done = await until(oai, created.id, ended)
    assert done.status == "completed", done.errors
    assert done.request_counts is not None and (done.request_counts.total, done.request_counts.completed) == (2, 2)
    assert done.in_progress_at and done.finalizing_at and done.completed_at and done.model == "chat"
    assert done.usage is not None and done.usage.input_tokens == 14 and done.usage.output_tokens == 6
    assert done.usage.total_tokens == 20 and done.metadata == {"run": "1"}
    assert done.error_file_id is None
    output = await file_lines(oai, done.output_file_id)
    assert [line["custom_id"] for line in output] == ["a", "b"]
    first = output[0]
    assert first["id"].startswith("batch_req_") and first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "Paris."
    stored = await oai.files.retrieve(str(done.output_file_id))
    assert stored.purpose == "batch_output"
    listed = await oai.batches.list(limit=10)
    assert [b.id for b in listed.data] == [created.id]


async def test_a_failing_request_goes_to_the_error_file(oai: openai.AsyncOpenAI) -> None:
    lines = [chat_line("ok", "capital?"), chat_line("bad", "hi", temperature=9)]
    done = await run(oai, lines)
    assert done.status == "completed" and done.request_counts.completed == 1 and done.request_counts.failed == 1
    errors = await file_lines(oai, done.error_file_id)
    assert [e["custom_id"] for e in errors] == ["bad"]
    assert errors[0]["response"]["status_code"] == 400 and "error" in errors[0]["response"]["body"]


async def test_every_validation_error_is_reported_with_its_line_and_code(oai: openai.AsyncOpenAI) -> None:
    good = chat_line("one", "hi")
    text = "\n".join(
        [
            json.dumps(good),
            "{not json",
            json.dumps({"method": "POST", "url": "/v1/chat/completions", "body": good["body"]}),
            json.dumps({"custom_id": "x", "method": "POST", "url": "/v1/chat/completions"}),
            json.dumps({**chat_line("y", "hi"), "url": "/v1/embeddings"}),
            json.dumps({**chat_line("z", "hi"), "method": "GET"}),
            json.dumps(chat_line("one", "again")),
            json.dumps(chat_line("s", "hi", stream=True)),
            json.dumps(chat_line("m", "hi", model="no-such-model")),
            json.dumps({"custom_id": "q", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "chat"}}),
        ]
    )
    batch = await oai.batches.create(
        input_file_id=await upload(oai, text), endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await until(oai, batch.id, ended)
    assert done.status == "failed" and done.failed_at and done.output_file_id is None
    found = [(e.line, e.code, e.param) for e in done.errors.data]
    assert found == [
        (2, "invalid_json_line", None),
        (3, "missing_required_parameter", "custom_id"),
        (4, "missing_required_parameter", "body"),
        (5, "invalid_url", "url"),
        (6, "invalid_method", "method"),
        (7, "duplicate_custom_id", "custom_id"),
        (8, "streaming_unsupported", "body.stream"),
        (9, "model_not_found", "body.model"),
        (10, "invalid_request", "body.messages"),
    ]


async def test_file_level_errors_fail_the_batch(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    missing = await oai.batches.create(
        input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await until(oai, missing.id, ended)
    assert (done.status, done.errors.data[0].code, done.errors.data[0].param) == (
        "failed",
        "invalid_request",
        "input_file_id",
    )
    two_models = [
        {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": stored_embedding, "input": "x"},
        },
        {"custom_id": "b", "method": "POST", "url": "/v1/embeddings", "body": {"model": "chat", "input": "y"}},
    ]
    done = await run(oai, two_models, "/v1/embeddings")
    assert [(e.line, e.code) for e in done.errors.data] == [(2, "model_mismatch")]
    for endpoint, window in (("/v1/images", "24h"), ("/v1/chat/completions", "1h")):
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.batches.create(input_file_id="file-x", endpoint=endpoint, completion_window=window)  # type: ignore[arg-type]
        assert "invalid_value" in str(refused.value)
    with pytest.raises(openai.BadRequestError):
        await oai.batches.create(
            input_file_id="f", endpoint="/v1/chat/completions", completion_window="24h",
            metadata={f"k{n}": "v" for n in range(17)},
        )  # fmt: skip


async def test_the_same_idempotency_key_answers_the_same_batch_and_other_params_409(oai: openai.AsyncOpenAI) -> None:
    def create(file_id: str, metadata: dict[str, str]) -> Any:
        return oai.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h",
            metadata=metadata, extra_body={"idempotency_key": "key-1"},
        )  # fmt: skip

    first = await create("bogus-id", {"a": "1", "b": "2"})
    again = await create("bogus-id", {"b": "2", "a": "1"})
    assert (again.id, again.created_at) == (first.id, first.created_at)
    with pytest.raises(openai.ConflictError) as conflict:
        await create("bogus-id-2", {"a": "1"})
    assert conflict.value.status_code == 409 and "different parameters" in str(conflict.value)


async def test_cancel_stops_mid_run_and_keeps_what_finished(oai: openai.AsyncOpenAI) -> None:
    lines = [chat_line("fast", "capital?"), *[chat_line(f"slow{n}", "Take your time") for n in range(3)]]
    batch = await oai.batches.create(
        input_file_id=await upload(oai, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    await until(oai, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed == 1)
    cancelling = await oai.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    started = time.monotonic()
    done = await until(oai, batch.id, ended)
    assert done.status == "cancelled" and done.cancelled_at and time.monotonic() - started < 5  # not the 30 s line
    assert [line["custom_id"] for line in await file_lines(oai, done.output_file_id)] == ["fast"]
    with pytest.raises(openai.ConflictError):
        await oai.batches.cancel((await run(oai, [chat_line("x", "hi")])).id)


async def test_a_batch_past_its_window_expires_with_what_it_finished(
    aiohttp_client: Callable[..., Any], scripted: Any
) -> None:
    server = await aiohttp_client(create_app(config(slow={"A moment": 0.3})))
    async with client_of(server) as oai:
        lines = [chat_line(f"l{n}", "A moment") for n in range(6)]
        batch = await oai.batches.create(
            input_file_id=await upload(oai, lines), endpoint="/v1/chat/completions", completion_window="24h"
        )
        await until(oai, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed >= 1)
        batches_api(server).runner.clock = lambda: time.time() + 25 * 3600
        done = await until(oai, batch.id, ended)
        assert done.status == "expired" and done.expired_at
        output = await file_lines(oai, done.output_file_id)
        errors = await file_lines(oai, done.error_file_id)
        assert 1 <= len(output) < 6 and len(output) + len(errors) == 6
        assert {e["error"]["code"] for e in errors} == {"batch_expired"}


async def test_a_restart_mid_run_resumes_without_redoing_or_duplicating_a_line(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    texts = [f"Question {n}" for n in range(5)]
    first = await aiohttp_client(create_app(config(slow={t: 30.0 for t in texts[2:]})))
    async with client_of(first) as oai:
        batch = await oai.batches.create(
            input_file_id=await upload(oai, [chat_line(t, t) for t in texts]),
            endpoint="/v1/chat/completions", completion_window="24h",
        )  # fmt: skip
        await until(oai, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed == 2)
    await first.close()  # the third line was in flight: done again after the restart
    asked_before = len(scripted)
    second = await aiohttp_client(create_app(config()))
    async with client_of(second) as oai:
        done = await until(oai, batch.id, ended)
        assert done.status == "completed" and done.request_counts.completed == 5
        output = await file_lines(oai, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(texts)  # each line exactly once
    asked_after = [str(r.messages[-1].content) for r in scripted[asked_before:]]
    assert sorted(asked_after) == texts[2:]  # the first two were never asked again


async def test_the_five_endpoints(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    def line(url: str, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}

    cases: list[tuple[Any, Lines, Callable[[dict[str, Any]], Any]]] = [
        ("/v1/completions", [line("/v1/completions", "c", {"model": "chat", "prompt": "tea"})],
         lambda b: b["choices"][0]["text"]),
        ("/v1/responses", [line("/v1/responses", "r", {"model": "chat", "input": "capital?"})],
         lambda b: b["output"][-1]["content"][0]["text"]),
        ("/v1/moderations", [line("/v1/moderations", "m", {"model": "pii", "input": "write to ana@example.com"})],
         lambda b: b["results"][0]["flagged"]),
        ("/v1/embeddings", [line("/v1/embeddings", f"e{n}", {"model": stored_embedding, "input": f"text {n}"})
                            for n in range(70)] + [line("/v1/embeddings", "two", {"model": stored_embedding,
                                                                                  "input": ["a", "b"]})],
         lambda b: len(b["data"][0]["embedding"])),
    ]  # fmt: skip
    expected = {"/v1/completions": "You said: tea", "/v1/responses": "Paris.", "/v1/moderations": True,
                "/v1/embeddings": 384}  # fmt: skip
    for endpoint, lines, read in cases:
        done = await run(oai, lines, endpoint)
        assert done.status == "completed", (endpoint, done.errors)
        output = await file_lines(oai, done.output_file_id)
        assert len(output) == len(lines) and done.error_file_id is None, endpoint
        assert read(output[0]["response"]["body"]) == expected[endpoint], endpoint
    embedded = {o["custom_id"]: o["response"]["body"] for o in output}
    assert [d["index"] for d in embedded["two"]["data"]] == [0, 1]
    alone = await oai.embeddings.create(model=stored_embedding, input="text 7")
    assert embedded["e7"]["data"][0]["embedding"] == pytest.approx(alone.data[0].embedding, abs=1e-4)


async def test_another_users_batch_is_hidden(aiohttp_client: Callable[..., Any], scripted: Any) -> None:
    server = await aiohttp_client(with_test_users(create_app(config())))
    async with client_of(server, "alice") as alice, client_of(server, "bob") as bob:
        done = await run(alice, [chat_line("a", "hi")])
        assert done.status == "completed"
        with pytest.raises(openai.NotFoundError):
            await bob.batches.retrieve(done.id)
        with pytest.raises(openai.NotFoundError):
            await bob.batches.cancel(done.id)
        with pytest.raises(openai.NotFoundError):
            await bob.files.content(str(done.output_file_id))
        assert [b.id for b in (await bob.batches.list()).data] == []
        assert [b.id for b in (await alice.batches.list()).data] == [done.id]
        failed = await run(bob, [])  # bob cannot read alice's output file as his input either
        assert failed.status == "failed"


async def test_interactive_chat_is_served_before_queued_batch_lines(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    # The scripted model holds llama.cpp's ModelPool lock per request (serialize). An interactive
    # request holds the model; a batch line then waits for it (as background work); a second
    # interactive request arrives after it and is still served first.
    server = await aiohttp_client(create_app(config(slow={"hold": 1.0}, serialize=True)))
    async with client_of(server) as oai:
        holding = asyncio.create_task(
            oai.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hold"}])
        )
        while not scripted:
            await asyncio.sleep(0.01)
        batch = await oai.batches.create(
            input_file_id=await upload(oai, [chat_line(f"b{n}", f"batch {n}") for n in range(3)]),
            endpoint="/v1/chat/completions", completion_window="24h",
        )  # fmt: skip
        pool = server.app[STACK].providers["scripted"].impl.pool
        resident = pool._resident[scripted_key(pool)]
        for _ in range(500):  # the first batch line waits for the model, as background work
            if resident.lock._background:
                break
            await asyncio.sleep(0.01)
        assert resident.lock._background, "the batch line never waited as background work"
        assert len(scripted) == 1, "the batch line must still be waiting"
        interactive = await oai.chat.completions.create(model="chat", messages=[{"role": "user", "content": "now"}])
        await holding
        done = await until(oai, batch.id, ended)
    assert interactive.choices[0].message.content == "You said: now" and done.status == "completed"
    assert [str(r.messages[-1].content) for r in scripted] == ["hold", "now", "batch 0", "batch 1", "batch 2"]


def batches_api(server: TestClient[Any, Any]) -> Any:
    """The assembled Batches API (its runner's clock is the one expiry reads), once the app is ready."""
    stops = server.app[STACK]._on_stop
    return next(stop.__self__ for stop in stops if type(getattr(stop, "__self__", None)).__name__ == "BatchesApi")


def scripted_key(pool: Any) -> Any:
    return next(iter(pool._resident))


async def test_a_stop_after_the_output_file_is_written_does_not_write_it_twice(
    aiohttp_client: Callable[..., Any], scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server stopped (killed) between storing a batch's output file and saving the batch's final status
    finalized again at the next start and left a second, orphaned batch_output file."""
    from pocketstack.apis.batches.runner import BatchRunner

    saved = BatchRunner._save

    async def stop_before_the_final_status(self: BatchRunner, record: Any, **fields: Any) -> None:
        if fields.get("status") == "completed":
            await asyncio.Event().wait()  # the process ends here: its files are stored, its status is not
        await saved(self, record, **fields)

    monkeypatch.setattr(BatchRunner, "_save", stop_before_the_final_status)
    first = await aiohttp_client(create_app(config()))
    async with client_of(first) as oai:
        lines = [chat_line("good", "capital?"), chat_line("bad", "hi", temperature=9)]
        batch = await oai.batches.create(
            input_file_id=await upload(oai, lines), endpoint="/v1/chat/completions", completion_window="24h"
        )
        await until(oai, batch.id, lambda b: b.status == "finalizing")
        for _ in range(200):  # both files stored
            if len((await oai.files.list(purpose="batch_output")).data) == 2:
                break
            await asyncio.sleep(0.05)
    await first.close()
    monkeypatch.setattr(BatchRunner, "_save", saved)
    second = await aiohttp_client(create_app(config()))
    async with client_of(second) as oai:
        done = await until(oai, batch.id, ended)
        stored = (await oai.files.list(purpose="batch_output")).data
        assert done.status == "completed"
        assert sorted(f.id for f in stored) == sorted([done.output_file_id, done.error_file_id])
        assert [line["custom_id"] for line in await file_lines(oai, done.output_file_id)] == ["good"]
        assert [line["custom_id"] for line in await file_lines(oai, done.error_file_id)] == ["bad"]
