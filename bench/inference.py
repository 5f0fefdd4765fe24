"""Inference as a user's workload sees it: PocketStack over HTTP against raw llama-cpp-python in the same run.

A RAG app embeds, then chats, so every round starts with an embedding request (to the server's
embedding model; the baseline embeds with its own, on the thread it chats on, as a plain script
does), then streams 128 new tokens from the same GGUF (the default SmolLM2-135M), same prompt,
greedy, end-of-sequence banned so every run decodes exactly that many. Every request's prompt starts
with a number of its own, so neither side can reuse the previous one beyond a token or two, and
the server runs its default path (prompt reuse on, its state kept for a next turn). Decoding
is timed from the first token to the END of the stream (the last byte read, not the last token),
so work the server does after the last token counts against it. Two consumers read the server's
stream: a minimal HTTP reader (the server's own cost) and the `openai` client (what users run).
Rounds are interleaved (raw, minimal, raw, openai, ...) so machine drift cancels; each figure is
the median of per-pair ratios. Embeddings/s compare batches of 32 through /v1/embeddings with raw
`embed()`. Exits 1 when a figure misses its target.

    python bench/inference.py [--pairs 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from pocketstack.modelstore import store
from pocketstack.modelstore.bert_import import convert_any
from tests.support.process import environment, free_port, pocketstack

PROMPT = "{}. Here is a long story about a lighthouse keeper and the sea. Once upon a time,"
QUERY = "What does a lighthouse keeper do when a storm comes?"
ROUNDS = itertools.count(1)  # a number per request, for prompts no earlier one began with
SENTENCES = [f"Sentence number {i} is about the weather, the sea and a lighthouse." for i in range(32)]
CHAT = f"llama-cpp/{store.DEFAULT_CHAT_NAME}"
EMBEDDER = f"llama-cpp/{store.DEFAULT_EMBEDDING_NAME}"


@dataclass(frozen=True)
class Run:
    ttft: float  # request sent -> first token
    rate: float  # tokens/s from the first token to the end of the stream
    tail: float  # last token -> end of the stream

    @staticmethod
    def of(started: float, stamps: list[float], ended: float, tokens: int) -> Run:
        assert len(stamps) > 1, "the stream had no tokens"
        return Run(stamps[0] - started, (tokens - 1) / (ended - stamps[0]), ended - stamps[-1])


def raw_run(llm: Any, embedder: Any, tokens: int) -> Run:
    embedder.embed([QUERY], normalize=True)
    eos = llm.token_eos()

    def no_eos(_ids: Any, scores: Any) -> Any:
        scores[eos] = -float("inf")
        return scores

    prompt = PROMPT.format(next(ROUNDS))
    started = time.perf_counter()
    stamps = []
    chunks = llm.create_completion(prompt, max_tokens=tokens, temperature=0, stream=True, logits_processor=[no_eos])
    for chunk in chunks:
        if chunk["choices"][0]["text"]:
            stamps.append(time.perf_counter())
    return Run.of(started, stamps, time.perf_counter(), tokens)


def _body(tokens: int, eos: int) -> dict[str, Any]:
    return {
        "model": CHAT,
        "prompt": PROMPT.format(next(ROUNDS)),
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "logit_bias": {str(eos): -100},
    }


def _post(port: int, path: str, body: dict[str, Any]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    return connection.getresponse()


def minimal_run(port: int, tokens: int, eos: int) -> Run:
    embedded = _post(port, "/v1/embeddings", {"model": EMBEDDER, "input": QUERY})
    assert embedded.status == 200 and embedded.read()
    started = time.perf_counter()
    response = _post(port, "/v1/completions", _body(tokens, eos))
    stamps = []
    for line in response:  # ends with the chunked body's last byte
        if line.startswith(b"data: {") and b'"text":""' not in line:
            stamps.append(time.perf_counter())
    ended = time.perf_counter()
    response.close()
    return Run.of(started, stamps, ended, tokens)


def openai_run(client: Any, tokens: int, eos: int) -> Run:
    client.embeddings.create(model=EMBEDDER, input=QUERY)
    body = _body(tokens, eos)
    started = time.perf_counter()
    stamps = []
    stream = client.completions.create(
        model=CHAT,
        prompt=body["prompt"],
        max_tokens=tokens,
        temperature=0,
        stream=True,
        logit_bias=body["logit_bias"],
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].text:
            stamps.append(time.perf_counter())
    return Run.of(started, stamps, time.perf_counter(), tokens)


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def _median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def _pairs(server: list[Run], raw: list[Run], figure: Callable[[Run, Run], float]) -> float:
    return _median(figure(s, r) for s, r in zip(server, raw, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()

    import openai
    from llama_cpp import Llama

    chat_path = store.package_file(store.DEFAULT_CHAT_PACKAGE, store.DEFAULT_CHAT_FILE)
    archive = store.package_file(store.DEFAULT_EMBEDDING_PACKAGE, store.DEFAULT_EMBEDDING_ARCHIVE)
    assert chat_path and archive, "install the default model wheels first (make install)"
    threads = os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="pocketstack-bench-") as tmp:
        home = Path(tmp) / "home"
        embed_path = convert_any(archive, home / "models" / f"{store.DEFAULT_EMBEDDING_NAME}.gguf", "e").path
        config = yaml.safe_load((Path(__file__).parent.parent / "runtime/distributions/edge.yaml").read_text())
        config["providers"]["inference"][0]["config"]["threads"] = threads
        config_path = Path(tmp) / "run.yaml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        env = {**environment(home), "POCKETSTACK_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen(pocketstack("run", str(config_path), "--port", str(port)), env=env)
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0)
            for _ in range(300):
                try:
                    client.models.list()
                    break
                except openai.APIConnectionError:
                    time.sleep(0.1)
            llm = Llama(str(chat_path), n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False)
            embedder = Llama(
                str(embed_path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=threads, verbose=False
            )
            eos = llm.token_eos()
            raw_run(llm, embedder, 8), minimal_run(port, 8, eos), openai_run(client, 8, eos)  # warm-up: loads

            raw: list[Run] = []
            minimal: list[Run] = []
            through_openai: list[Run] = []
            for _ in range(args.pairs):
                raw.append(raw_run(llm, embedder, args.tokens))
                minimal.append(minimal_run(port, args.tokens, eos))
                raw.append(raw_run(llm, embedder, args.tokens))
                through_openai.append(openai_run(client, args.tokens, eos))
            llm.close()

            raw_embed, http_embed = [], []
            for _ in range(args.pairs):
                started = time.perf_counter()
                embedder.embed(SENTENCES, normalize=True)
                raw_embed.append(len(SENTENCES) / (time.perf_counter() - started))
                started = time.perf_counter()
                client.embeddings.create(model=EMBEDDER, input=SENTENCES)
                http_embed.append(len(SENTENCES) / (time.perf_counter() - started))
            embedder.close()
        finally:
            server.terminate()
            server.wait(timeout=30)

    def decode(s: Run, r: Run) -> float:
        return s.rate / r.rate

    def added_ttft(s: Run, r: Run) -> float:
        return (s.ttft - r.ttft) * 1000

    minimal_ratio = _pairs(minimal, raw[0::2], decode)
    openai_ratio = _pairs(through_openai, raw[1::2], decode)
    tail_minimal = _median(m.tail for m in minimal) * 1000
    tail_openai = _median(o.tail for o in through_openai) * 1000
    embed_ratio = _median(h / r for h, r in zip(http_embed, raw_embed, strict=True))
    checks = [minimal_ratio >= 0.97, openai_ratio >= 0.92, tail_minimal <= 5, embed_ratio >= 0.95]
    print(f"each round: one embedding request, then {args.tokens} tokens streamed; each prompt new to both sides")
    raw_rate = _median(r.rate for r in raw)
    print(f"decode to end of stream, raw llama-cpp-python ({threads} threads): {raw_rate:.1f} tok/s")
    print(f"decode ratio, minimal HTTP reader: {minimal_ratio:.3f}   (target >= 0.97) {_verdict(checks[0])}")
    print(f"decode ratio, openai client:       {openai_ratio:.3f}   (target >= 0.92) {_verdict(checks[1])}")
    print(f"last token to end of stream, minimal reader: {tail_minimal:.1f} ms (target <= 5) {_verdict(checks[2])}")
    print(f"last token to end of stream, openai client:  {tail_openai:.1f} ms")
    print(f"added time to first token, minimal reader: {_pairs(minimal, raw[0::2], added_ttft):+.1f} ms")
    print(f"added time to first token, openai client:  {_pairs(through_openai, raw[1::2], added_ttft):+.1f} ms")
    print(f"embeddings, raw embed(): {_median(raw_embed):.0f}/s (batches of {len(SENTENCES)})")
    print(f"embeddings ratio over HTTP: {embed_ratio:.3f}   (target >= 0.95) {_verdict(checks[3])}")
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
