"""SIGKILL during ingestion, then a restart: every file ends completed, nothing duplicated or lost."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import apsw
import openai
import pytest

from pocketstack.apis.vector_io import ingest
from tests.support.crash import answering_at_once, chunk_count
from tests.support.process import start

pytestmark = [pytest.mark.process, pytest.mark.slow]
SENTENCE = "The keeper of lighthouse {n} logs every ship that passes the rocks at night. "


def _document(n: int) -> bytes:
    return (SENTENCE.format(n=n) * 250).encode()  # about 45 chunks of 100 tokens each


def test_a_killed_ingestion_resumes_without_duplicates(home: Path, stored_embedding: str) -> None:
    config = answering_at_once(home)
    server = start(home, [str(config)])
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="none", max_retries=0)
    try:
        ids = [client.files.create(file=(f"doc{n}.txt", _document(n)), purpose="assistants").id for n in range(5)]
        store = client.vector_stores.create(
            name="crash",
            file_ids=ids,
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}},
            extra_body={"embedding_model": stored_embedding},
        )
        deadline = time.monotonic() + 60
        while client.vector_stores.retrieve(store.id).file_counts.completed == 0:  # kill it mid-way
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.02)
        counts = client.vector_stores.retrieve(store.id).file_counts
        assert counts.in_progress > 0, "ingestion finished before the kill: make the documents longer"
    finally:
        server.stop(signal.SIGKILL)

    restarted = start(home, [str(config)])
    client = openai.OpenAI(base_url=f"{restarted.base_url}/v1", api_key="none", max_retries=0)
    try:
        deadline = time.monotonic() + 240  # about 180 chunks left to embed; 2 busy cores can take a while
        while (counts := client.vector_stores.retrieve(store.id).file_counts).in_progress:
            assert time.monotonic() < deadline, restarted.output()
            time.sleep(0.1)
        assert (counts.completed, counts.failed, counts.total) == (5, 0, 5)
        assert "resuming ingestion" in restarted.output()
    finally:
        assert restarted.stop() == 0

    plan = ingest.ChunkingPlan(100, 20)
    expected = {file_id: chunk_count(home, _document(n).decode(), plan) for n, file_id in enumerate(ids)}
    database = apsw.Connection(str(home / "vector_io" / "sqlite_vec.db"))
    rows = database.execute(
        "SELECT file_id, COUNT(*), COUNT(DISTINCT chunk_id) FROM chunks WHERE store_id = ? GROUP BY file_id",
        (store.id,),
    ).fetchall()
    assert {file_id: (total, distinct) for file_id, total, distinct in rows} == {
        file_id: (count, count) for file_id, count in expected.items()
    }
