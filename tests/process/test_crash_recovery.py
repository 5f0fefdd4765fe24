"""SIGKILL of `pocketstack run` mid-work, then a restart on the same home: nothing lost, nothing
duplicated, statuses consistent (work in progress resumed, or failed with a reason), and what the list
endpoints say agrees with retrieval and with what lies on disk. Each kill is timed by polling the
server (or its spool folder) for the moment, never by sleeping; ingestion has its own module
(test_ingestion_crash.py)."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from pocketstack.apis.vector_io import ingest
from tests.support.crash import answering_at_once, chunk_count, edge_changed, kill_when, until
from tests.support.process import Server, start

pytestmark = [pytest.mark.process, pytest.mark.slow]
MODEL = "llama-cpp/SmolLM2-135M-Instruct"


@pytest.fixture(autouse=True)
def _embedding_model_in_place(stored_embedding: str) -> None:
    """The default embedding model already in each home: a fresh home's first start would convert it,
    seconds of CPU taken from the work each test times its kill by."""


def _client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="none", max_retries=0)


# -- uploads --------------------------------------------------------------------------------------


def _spooled(home: Path) -> list[Path]:
    """Upload bodies being received (or left by a process that died receiving one)."""
    return [p for p in (home / "files" / ".incoming").rglob("upload-*") if p.is_file()]


def _stored_bytes(home: Path) -> set[str]:
    return {p.name for p in (home / "files").iterdir() if p.is_file()}


def _cut_upload(server: Server, size: int, sent: int) -> socket.socket:
    """A multipart upload to /v1/files announcing `size` bytes of file, of which only `sent` are sent."""
    boundary = "crash-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    request = (
        f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + size + len(tail)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(request + head + b"x" * sent)
    return sock


def test_a_cut_and_a_killed_upload_leave_no_bytes_and_no_row(home: Path) -> None:
    server = start(home)
    client = _client(server)
    try:
        kept = client.files.create(file=("kept.txt", b"kept bytes\n" * 1000), purpose="assistants")
        # The client leaves mid-body: the server drops what it had received.
        cut = _cut_upload(server, 64 << 20, 1 << 20)
        until(server, lambda: _spooled(home), bool, every_s=0.02)
        cut.close()
        until(server, lambda: _spooled(home), lambda spooled: not spooled, timeout_s=10, every_s=0.02)
        # The server dies mid-body: its partial spool file lies there until the next start.
        killed = _cut_upload(server, 64 << 20, 1 << 20)
        kill_when(server, lambda: sum(p.stat().st_size for p in _spooled(home)), lambda size: size > 0)
        killed.close()
    finally:
        server.stop()

    restarted = start(home)
    client = _client(restarted)
    try:
        assert _spooled(home) == [], "a dead process's partial upload outlived the restart"
        listed = client.files.list()
        assert [f.id for f in listed.data] == [kept.id]
        assert client.files.retrieve(kept.id).bytes == len(b"kept bytes\n" * 1000)
        assert client.files.content(kept.id).content == b"kept bytes\n" * 1000
        assert _stored_bytes(home) == {kept.id}  # no bytes without a row, no row without bytes
    finally:
        assert restarted.stop() == 0


# -- vector store file batches ---------------------------------------------------------------------

SENTENCE = "The ferry to island {n} leaves the harbour at dawn and returns before the evening storm. "
PLAN = ingest.ChunkingPlan(100, 20)


def _document(n: int) -> bytes:
    return (SENTENCE.format(n=n) * 60).encode()  # about 14 chunks of 100 tokens each


def test_a_killed_file_batch_resumes_and_its_counts_agree(home: Path, stored_embedding: str) -> None:
    config = answering_at_once(home)
    server = start(home, [str(config)])
    client = _client(server)
    strategy: Any = {
        "type": "static",
        "static": {"max_chunk_size_tokens": PLAN.max_tokens, "chunk_overlap_tokens": PLAN.overlap_tokens},
    }
    try:
        ids = [client.files.create(file=(f"f{n}.txt", _document(n)), purpose="assistants").id for n in range(4)]
        store = client.vector_stores.create(name="crash", extra_body={"embedding_model": stored_embedding})
        batch = client.vector_stores.file_batches.create(store.id, file_ids=ids, chunking_strategy=strategy)
        counts = kill_when(
            server,
            lambda: client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).file_counts,
            lambda counts: counts.completed > 0,
        )
        assert counts.in_progress > 0, "the batch finished before the kill: make the documents longer"
    finally:
        server.stop()

    restarted = start(home, [str(config)])
    client = _client(restarted)
    try:
        done = until(
            restarted,
            lambda: client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id),
            lambda found: found.status != "in_progress",
        )
        assert done.status == "completed"
        assert (done.file_counts.completed, done.file_counts.failed, done.file_counts.total) == (4, 0, 4)
        listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
        assert sorted((f.id, f.status) for f in listed.data) == sorted((i, "completed") for i in ids)
        assert client.vector_stores.retrieve(store.id).file_counts.completed == 4
        assert "resuming ingestion" in restarted.output()
    finally:
        assert restarted.stop() == 0

    database = sqlite3.connect(home / "vector_io" / "sqlite_vec.db")
    rows = database.execute(
        "SELECT file_id, COUNT(*), COUNT(DISTINCT chunk_id) FROM chunks WHERE store_id = ? GROUP BY file_id",
        (store.id,),
    ).fetchall()
    expected = {file_id: chunk_count(home, _document(n).decode(), PLAN) for n, file_id in enumerate(ids)}
    assert {file_id: (total, distinct) for file_id, total, distinct in rows} == {
        file_id: (count, count) for file_id, count in expected.items()
    }


# -- background responses --------------------------------------------------------------------------

STORY = "Write a long story about a lighthouse keeper and the ships she watches."


def test_killed_background_responses_are_failed_with_a_reason(home: Path) -> None:
    server = start(home)
    client = _client(server)
    try:
        streamed = client.responses.create(
            model=MODEL, input=STORY, background=True, stream=True, max_output_tokens=200
        )
        events = iter(streamed)
        first = next(events)
        assert first.type == "response.created"
        streamed_id = first.response.id
        told = [first.sequence_number, next(events).sequence_number, next(events).sequence_number]  # under way
        quiet = client.responses.create(model=MODEL, input=STORY, background=True, max_output_tokens=200)
        kill_when(server, lambda: client.responses.retrieve(quiet.id).status, lambda status: status == "in_progress")
        streamed.close()
    finally:
        server.stop()

    restarted = start(home)
    client = _client(restarted)
    try:
        listed = {r["id"]: r for r in httpx.get(f"{restarted.base_url}/v1/responses").json()["data"]}
        assert set(listed) == {quiet.id, streamed_id}
        for response_id in (quiet.id, streamed_id):
            found = client.responses.retrieve(response_id)
            assert found.status == "failed", found
            assert found.error is not None and "stopped" in found.error.message
            assert listed[response_id]["status"] == "failed"  # the list says what retrieval says
        # The streamed one can be followed again: every event told before the kill, then its end.
        replayed = list(client.responses.retrieve(streamed_id, stream=True))
        numbers = [e.sequence_number for e in replayed]
        assert numbers == list(range(len(numbers))) and numbers[-1] > told[-1]
        assert (replayed[0].type, replayed[-1].type) == ("response.created", "response.failed")
        followed = client.responses.retrieve(streamed_id, stream=True, starting_after=told[-1])
        assert [e.sequence_number for e in followed] == numbers[told[-1] + 1 :]
        fresh = client.responses.create(model=MODEL, input="Say hi.", max_output_tokens=16)
        assert fresh.status in ("completed", "incomplete")
    finally:
        assert restarted.stop() == 0


# -- batches ---------------------------------------------------------------------------------------


def _batch_line(n: int) -> str:
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"Count to {n}."}], "max_tokens": 3}
    return json.dumps({"custom_id": f"line-{n}", "method": "POST", "url": "/v1/chat/completions", "body": body})


def test_a_killed_batch_resumes_without_losing_or_repeating_a_line(home: Path) -> None:
    lines = 6
    server = start(home)
    client = _client(server)
    try:
        text = "".join(_batch_line(n) + "\n" for n in range(lines)).encode()
        source = client.files.create(file=("input.jsonl", text), purpose="batch")
        batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
        kill_when(
            server,
            lambda: client.batches.retrieve(batch.id),
            lambda found: found.request_counts is not None and found.request_counts.completed >= 2,
        )
    finally:
        server.stop()
    state = sqlite3.connect(home / "edge" / "state.db")
    kept = dict(state.execute("SELECT line, output FROM batch_results WHERE batch_id = ?", (batch.id,)).fetchall())
    state.close()
    assert 2 <= len(kept) < lines, "the batch finished before the kill: give it more lines"

    restarted = start(home)
    client = _client(restarted)
    try:
        done = until(restarted, lambda: client.batches.retrieve(batch.id), lambda b: b.status == "completed")
        assert done.request_counts is not None
        assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (
            lines,
            lines,
            0,
        )
        assert done.output_file_id is not None and done.error_file_id is None
        output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
        assert sorted(line["custom_id"] for line in output) == sorted(f"line-{n}" for n in range(lines))
        for line, before in kept.items():  # a line done before the kill is kept as it was, not run again
            assert json.loads(before) in output, line
        outputs = [f.id for f in client.files.list(purpose="batch_output").data]
        assert outputs == [done.output_file_id]  # one output file, however often the batch was finalized
        assert [b.status for b in client.batches.list().data] == ["completed"]
    finally:
        assert restarted.stop() == 0


# -- eval jobs -------------------------------------------------------------------------------------

BENCHMARK = "pocketstack::multiple-choice"


def _in_pairs(config: dict[str, Any]) -> None:
    (builtin,) = config["providers"]["eval"]
    builtin["config"] = {"max_concurrency": 2}  # rows go in groups of 2: one done before the kill, one after


def test_a_killed_eval_job_resumes_without_scoring_a_row_twice(home: Path) -> None:
    rows = 3
    config = {
        "eval_candidate": {"type": "model", "model": MODEL, "sampling_params": {"max_tokens": 4}},
        "num_examples": rows,
    }
    run_config = str(edge_changed(home, _in_pairs))
    server = start(home, [run_config])
    jobs = f"{server.base_url}/v1alpha/eval/benchmarks/{BENCHMARK}/jobs"
    try:
        job = httpx.post(jobs, json={"benchmark_config": config, "background": True}, timeout=30).json()
        path = f"{jobs}/{job['job_id']}"
        found = kill_when(server, lambda: httpx.get(path).json(), lambda j: j["rows_done"] > 0)
        assert found["status"] == "in_progress" and found["rows_done"] < rows
    finally:
        server.stop()
    state = sqlite3.connect(home / "edge" / "state.db")
    kept = [
        json.loads(row)
        for (row,) in state.execute("SELECT row FROM dataset_rows WHERE dataset_id = ?", (found["results_dataset_id"],))
    ]
    state.close()

    restarted = start(home, [run_config])
    jobs = f"{restarted.base_url}/v1alpha/eval/benchmarks/{BENCHMARK}/jobs"
    path = f"{jobs}/{job['job_id']}"
    try:
        done = until(restarted, lambda: httpx.get(path).json(), lambda j: j["status"] != "in_progress")
        assert (done["status"], done["rows_done"], done["rows_total"]) == ("completed", rows, rows)
        result = httpx.get(f"{path}/result").json()
        assert len(result["generations"]) == rows
        dataset = httpx.get(f"{restarted.base_url}/v1beta/datasetio/iterrows/eval-job-{job['job_id']}").json()
        questions = [row["id"] for row in dataset["data"]]
        assert len(questions) == rows and len(set(questions)) == rows  # each row once, none lost
        assert kept and dataset["data"][: len(kept)] == kept  # rows done before the kill were not done again
        assert "resumes" in restarted.output()
    finally:
        assert restarted.stop() == 0
