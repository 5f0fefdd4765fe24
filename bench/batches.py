"""Batches against the same requests sent one by one over HTTP, on a real server.

A real server (`pocketstack run edge` on a free loopback port, a fresh POCKETSTACK_HOME, the
default models) gets, through the `openai` client:
- embeddings: N lines (default 2,000, one short sentence each) as one batch on /v1/embeddings,
  from upload to the output file read back, against the same inputs sent one request at a time
  (target: the batch >= 5x faster; its lines are embedded many inputs per call);
- chat: M short chat lines (default 100, max_tokens 8, greedy) as one batch, against the same
  requests one at a time (reported, no target: each line is one model call either way);
- priority: the p95 time to first token of `--probes` streamed chat requests (max_tokens 8) while a
  long chat batch runs (lines of 32 tokens), against the same requests on the idle server (target:
  the ratio <= 2; batch lines wait behind interactive requests, which wait at most for the one
  batch request holding the model).

Both baselines run in the same process on the same server, after a warm-up of both models.

    python bench/batches.py [--embeddings 2000] [--chats 100] [--probes 20]

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


def time_to_first_token(client: openai.OpenAI, text: str) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": text}], max_tokens=8, temperature=0, stream=True
    )
    first = None
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first if first is not None else time.perf_counter() - started


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ttft_beside_a_batch(client: openai.OpenAI, probes: int) -> tuple[float, float]:
    """p95 time to first token on the idle server, then while a long chat batch runs."""
    texts = [f"Name a colour, please ({n})." for n in range(probes)]
    idle = [time_to_first_token(client, text) for text in texts]
    lines = [
        {"custom_id": f"b{n}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": CHAT_MODEL, "messages": [{"role": "user", "content": f"A story of {WORDS[n % 10]}."}],
                  "max_tokens": 32, "temperature": 0}}
        for n in range(400)
    ]  # fmt: skip
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    file_id = client.files.create(file=("long.jsonl", io.BytesIO(data)), purpose="batch").id
    batch = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    try:
        while client.batches.retrieve(batch.id).request_counts.completed < 2:  # type: ignore[union-attr]
            time.sleep(0.05)
        busy = []
        for text in texts:
            busy.append(time_to_first_token(client, text))
            time.sleep(0.1)  # probes land at different points of the batch's requests
        if client.batches.retrieve(batch.id).status != "in_progress":
            raise RuntimeError("the batch ended before the probes did: make it longer")
    finally:
        client.batches.cancel(batch.id)
    return p95(idle), p95(busy)


def one_by_one(call: Any, bodies: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for body in bodies:
        call(**body)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embeddings", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--probes", type=int, default=20)
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

            idle, busy = ttft_beside_a_batch(client, args.probes)
            print(f"\nchat p95 time to first token: idle {idle * 1000:.0f} ms, beside a batch {busy * 1000:.0f} ms")
            print(f"  ratio {busy / idle:.2f} (target <= 2)")
            return 0
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
