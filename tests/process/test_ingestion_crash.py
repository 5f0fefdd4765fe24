"""SIGKILL during ingestion, then a restart: every file ends completed, nothing duplicated or lost."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import apsw
import openai
import pytest
import yaml

from pocketstack import distributions
from pocketstack.apis.vector_io import ingest
from tests.support.process import start

pytestmark = [pytest.mark.process, pytest.mark.slow]
SENTENCE = "The keeper of lighthouse {n} logs every ship that passes the rocks at night. "


def _document(n: int) -> bytes:
    return (SENTENCE.format(n=n) * 250).encode()  # about 45 chunks of 100 tokens each


def _chunk_count(home: Path, text: str) -> int:
    """How many chunks the 100/20 plan cuts, counted with the embedding model's own tokenizer."""
    from llama_cpp import Llama

    (model,) = (home / "models").glob("all-MiniLM-L6-v2*.gguf")
    llm = Llama(str(model), embedding=True, vocab_only=True, verbose=False)
    return len(ingest.chunk_text(text, ingest.ChunkingPlan(100, 20), lambda w: len(llm.tokenize(w.encode(), False))))


def _answering_at_once(home: Path) -> Path:
    """The edge distribution with attaching answering at once: the kill must come mid-ingestion, which a
    wait for small files (vector_stores.attach_wait_s) would make depend on the machine's speed."""
    path = distributions.path_of("edge")
    assert path is not None
    config = yaml.safe_load(path.read_text())
    config.setdefault("vector_stores", {})["attach_wait_s"] = 0
    written = home.parent / "edge-at-once.yaml"
    written.write_text(yaml.safe_dump(config))
    return written


def test_a_killed_ingestion_resumes_without_duplicates(home: Path, stored_embedding: str) -> None:
    config = _answering_at_once(home)
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

    expected = {file_id: _chunk_count(home, _document(n).decode()) for n, file_id in enumerate(ids)}
    database = apsw.Connection(str(home / "vector_io" / "sqlite_vec.db"))
    rows = database.execute(
        "SELECT file_id, COUNT(*), COUNT(DISTINCT chunk_id) FROM chunks WHERE store_id = ? GROUP BY file_id",
        (store.id,),
    ).fetchall()
    assert {file_id: (total, distinct) for file_id, total, distinct in rows} == {
        file_id: (count, count) for file_id, count in expected.items()
    }
