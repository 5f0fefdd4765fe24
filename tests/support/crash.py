"""Crash tests' shared steps: a config that answers attaches at once, polling a server to the moment to
kill it, and how many chunks a document should have become."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pocketstack import distributions
from pocketstack.apis.vector_io import ingest
from tests.support.process import Server

T = TypeVar("T")


def edge_changed(home: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A run config file: the edge distribution as `change` leaves it."""
    path = distributions.path_of("edge")
    assert path is not None
    config = yaml.safe_load(path.read_text())
    change(config)
    written = home.parent / "edge-changed.yaml"
    written.write_text(yaml.safe_dump(config))
    return written


def answering_at_once(home: Path) -> Path:
    """The edge distribution with attaching answering at once: the kill must come mid-ingestion, which a
    wait for small files (vector_stores.attach_wait_s) would make depend on the machine's speed."""
    return edge_changed(home, lambda config: config.setdefault("vector_stores", {}).update(attach_wait_s=0))


def chunk_count(home: Path, text: str, plan: ingest.ChunkingPlan) -> int:
    """How many chunks `plan` cuts `text` into, counted with the embedding model's own tokenizer."""
    from llama_cpp import Llama

    (model,) = (home / "models").glob("all-MiniLM-L6-v2*.gguf")
    llm = Llama(str(model), embedding=True, vocab_only=True, verbose=False)
    return len(ingest.chunk_text(text, plan, lambda w: len(llm.tokenize(w.encode(), False))))


def until(
    server: Server, probe: Callable[[], T], ready: Callable[[T], bool], timeout_s: float = 120, every_s: float = 0.2
) -> T:
    """Poll `probe` until `ready` says yes (the server's log in the failure when it never does). The
    timeout only bounds a hang: the work each test gives takes seconds."""
    deadline = time.monotonic() + timeout_s
    while not ready(found := probe()):
        assert time.monotonic() < deadline, f"never got there: {found}\n{server.output()}"
        time.sleep(every_s)
    return found


def kill_when(server: Server, probe: Callable[[], T], ready: Callable[[T], bool], timeout_s: float = 120) -> T:
    """SIGKILL the server as soon as `ready(probe())`: the moment polled for (often), not slept to."""
    try:
        return until(server, probe, ready, timeout_s, every_s=0.02)
    finally:
        server.stop(signal.SIGKILL)
