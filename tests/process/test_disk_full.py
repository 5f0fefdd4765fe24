"""The disk fills under a running server (a small tmpfs as its home, tests/support/tmpfs.py): an upload
and an ingestion that run out of space fail with a clear 507 (`insufficient_storage`) in the one
error shape, or a failed file that says why; reads go on being served, writes work again once
space is freed, and every database passes `PRAGMA integrity_check`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from pocketstack import distributions
from tests.support.tmpfs import TmpfsServer, unavailable

pytestmark = [pytest.mark.process, pytest.mark.slow]
SIZE = "8m"
SENTENCE = "The keeper of lighthouse {n} logs every ship that passes the rocks at night. "
MB = 1024 * 1024


def _config(folder: Path) -> Path:
    """The edge distribution with attaching answering at once (the disk fills while the file is ingested) and
    no traces (their writes would take the room the test makes, at a time of their own)."""
    path = distributions.path_of("edge")
    assert path is not None
    config = yaml.safe_load(path.read_text())
    config.setdefault("vector_stores", {})["attach_wait_s"] = 0
    config["telemetry"] = {"enabled": False}
    written = folder / "edge-disk-full.yaml"
    written.write_text(yaml.safe_dump(config))
    return written


@pytest.fixture
def server(tmp_path: Path, embedding_gguf: Path) -> Iterator[TmpfsServer]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    running = TmpfsServer(tmp_path / "home", SIZE, embedding_gguf, [str(_config(tmp_path))])
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


def _client(server: TmpfsServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="none", max_retries=0)


def _assert_insufficient_storage(error: openai.APIStatusError) -> None:
    assert error.status_code == 507, error.response.text
    body = error.response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == "insufficient_storage", body
    assert "disk" in body["error"]["message"].lower() or "space" in body["error"]["message"].lower(), body


def _fill(client: openai.OpenAI) -> list[str]:
    """Upload ballast until the disk is full, in smaller and smaller files; each refusal is a clean 507."""
    ballast: list[str] = []
    for size in (MB, 64 * 1024, 4096):
        for _ in range(64):
            try:
                ballast.append(client.files.create(file=("ballast.bin", b"\0" * size), purpose="assistants").id)
            except openai.APIStatusError as exc:
                _assert_insufficient_storage(exc)
                break
        else:
            raise AssertionError(f"{64 * size} bytes of {size} fit on a {SIZE} disk")
    return ballast


def test_an_upload_that_fills_the_disk_is_a_507(server: TmpfsServer) -> None:
    client = _client(server)
    kept = client.files.create(file=("kept.txt", b"still here"), purpose="assistants")
    with pytest.raises(openai.APIStatusError) as refused:
        client.files.create(file=("big.bin", b"\0" * (16 * MB)), purpose="assistants")
    _assert_insufficient_storage(refused.value)
    ballast = _fill(client)

    # Full: reads are served as before.
    assert client.files.content(kept.id).content == b"still here"
    listed = {item.id for item in client.files.list(limit=100).data}
    assert {kept.id, *ballast} <= listed
    assert client.models.list().data is not None

    with pytest.raises(openai.APIStatusError) as refused:  # even a delete: SQLite needs room to write it
        client.files.delete(ballast[0])
    _assert_insufficient_storage(refused.value)
    server.free_room()  # the operator makes room: writes work again
    client.files.delete(ballast[0])
    again = client.files.create(file=("again.txt", b"back"), purpose="assistants")
    assert client.files.content(again.id).content == b"back"
    assert set(server.stop().values()) == {"ok"}, server.output()


def test_an_ingestion_that_fills_the_disk_fails_the_file_and_says_why(server: TmpfsServer) -> None:
    client = _client(server)
    document = "".join(SENTENCE.format(n=n) for n in range(150)).encode()  # about 28 chunks: over 64 KiB stored
    uploaded = client.files.create(file=("lighthouses.txt", document), purpose="assistants")
    _fill(client)
    server.free_room()  # 64 KiB: room for the vector store's rows, not for the chunks
    store = client.vector_stores.create(
        name="full",
        file_ids=[uploaded.id],
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}},
    )

    deadline = time.monotonic() + 120
    while "ingestion of" not in server.output():  # failed (logged); marking it failed waits for room
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.2)
    server.free_room()  # room to record the failure
    while (attached := client.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id)).status == (
        "in_progress"
    ):
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.2)
    assert attached.status == "failed", attached
    assert attached.last_error is not None and attached.last_error.code == "server_error", attached
    assert "disk is full" in attached.last_error.message, attached

    # Reads go on: the store, its search (nothing of the file was kept), the file itself.
    assert client.vector_stores.retrieve(store.id).file_counts.failed == 1
    assert client.vector_stores.search(store.id, query="lighthouse").data == []
    assert client.files.content(uploaded.id).content == document
    assert set(server.stop().values()) == {"ok"}, server.output()
