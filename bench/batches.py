"""Batches against the same requests sent one by one over HTTP, on a real server.

A real server (`pocketstack run edge` on a free loopback port, a fresh POCKETSTACK_HOME, the
default models) gets, through the `openai` client:
- embeddings: N lines (default 2,000, one short sentence each) as one batch on /v1/embeddings,
  from upload to the output file read back, against the same inputs sent one request at a time
  (target: the batch >= 5x faster; its lines are embedded many inputs per call);
- chat: M short chat lines (default 100, max_tokens 8, greedy) as one batch, against the same
  requests one at a time (reported, no target: each line is one model call either way).

Both baselines run in the same process on the same server, after a warm-up of both models.

    python bench/batches.py [--embeddings 2000] [--chats 100]

Exit status is non-zero only on errors (a failed batch, a missing output line), never on a ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

import openai

from tests.support.config import CHAT_MODEL
from tests.support.process import start

WORDS = ["harbour", "tide", "reef", "lantern", "meadow", "copper", "violin", "orchard", "glacier", "ember"]


def sentence(n: int) -> str:
    return f"Note {n}: the {WORDS[n % 10]} by the {WORDS[(n // 10) % 10]} near the {WORDS[(n // 100) % 10]}."


def embedding_model(client: openai.OpenAI, timeout_s: float = 180) -> str:
    """The default embedding model, once the fresh home's first-run import has made it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for model in client.models.list().data:
            if (getattr(model, "custom_metadata", None) or {}).get("model_type") == "embedding":
                return model.id
        time.sleep(0.5)
    raise RuntimeError("the default embedding model was not imported in time")


def as_batch(client: openai.OpenAI, endpoint: Any, bodies: list[dict[str, Any]]) -> tuple[float, int]:
    """Seconds from upload to the output file read back, and its line count."""
    started = time.perf_counter()
    text = "".join(
        json.dumps({"custom_id": f"r{n}", "method": "POST", "url": endpoint, "body": body}) + "\n"
        for n, body in enumerate(bodies)
    )
    file_id = client.files.create(file=("input.jsonl", io.BytesIO(text.encode())), purpose="batch").id
    batch = client.batches.create(input_file_id=file_id, endpoint=endpoint, completion_window="24h")
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(0.05)
        batch = client.batches.retrieve(batch.id)
    if batch.status != "completed" or batch.output_file_id is None:
        raise RuntimeError(f"the batch ended {batch.status}: {batch.errors}, {batch.request_counts}")
    lines = [line for line in client.files.content(batch.output_file_id).text.splitlines() if line]
    return time.perf_counter() - started, len(lines)


def one_by_one(call: Any, bodies: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for body in bodies:
        call(**body)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embeddings", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pocketstack-bench-") as tmp:
        server = start(Path(tmp) / "home", ["edge"])
        try:
            client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="bench", max_retries=0, timeout=600)
            embedder = embedding_model(client)
            client.embeddings.create(model=embedder, input="warm up")
            client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
            print(f"server {server.base_url}; embeddings {embedder}, chat {CHAT_MODEL}", flush=True)

            embeds = [{"model": embedder, "input": sentence(n)} for n in range(args.embeddings)]
            batch_s, count = as_batch(client, "/v1/embeddings", embeds)
            if count != len(embeds):
                raise RuntimeError(f"{count} output lines for {len(embeds)} requests")
            print(f"embeddings batch: {batch_s:.2f} s", flush=True)
            single_s = one_by_one(client.embeddings.create, embeds)
            print(f"\nembeddings, {len(embeds)} lines: batch {batch_s:.2f} s ({len(embeds) / batch_s:.0f}/s), "
                  f"one by one over HTTP {single_s:.2f} s ({len(embeds) / single_s:.0f}/s)")  # fmt: skip
            print(f"  batch speed-up {single_s / batch_s:.1f}x (target >= 5x)")

            chats = [
                {"model": CHAT_MODEL, "messages": [{"role": "user", "content": f"Say a word about {WORDS[n % 10]}."}],
                 "max_tokens": 8, "temperature": 0}
                for n in range(args.chats)
            ]  # fmt: skip
            batch_s, count = as_batch(client, "/v1/chat/completions", chats)
            if count != len(chats):
                raise RuntimeError(f"{count} output lines for {len(chats)} requests")
            print(f"chat batch: {batch_s:.2f} s", flush=True)
            single_s = one_by_one(client.chat.completions.create, chats)
            print(f"\nchat, {len(chats)} short lines: batch {batch_s:.2f} s, one by one over HTTP {single_s:.2f} s")
            print(f"  batch / one by one {batch_s / single_s:.2f} (reported; each line is one model call either way)")
            return 0
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
