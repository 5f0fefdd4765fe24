"""Inference overhead: PocketStack over HTTP streaming against raw llama-cpp-python in-process.

Same GGUF (the default SmolLM2-135M), same prompt, greedy, 128 new tokens (end-of-sequence is
banned so every run decodes exactly that many). Runs are interleaved in pairs (raw, HTTP, raw,
HTTP, ...) so machine drift cancels; the figure is the median of the per-pair ratios. Two
consumers read the server's stream: a minimal HTTP reader (the server's own cost) and the
`openai` client (what users run). Embeddings/s compare batches of 32 through /v1/embeddings
with raw `embed()`.

    python bench/inference.py [--pairs 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from pocketstack.modelstore import store
from pocketstack.modelstore.bert_import import convert_any
from tests.support.process import environment, free_port, pocketstack

PROMPT = "Here is a long story about a lighthouse keeper and the sea. Once upon a time,"
SENTENCES = [f"Sentence number {i} is about the weather, the sea and a lighthouse." for i in range(32)]


def _rate(stamps: list[float]) -> float:
    """Decode tokens per second: the gaps between tokens, first token excluded."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def raw_run(llm: Any, tokens: int) -> tuple[float, float]:
    eos = llm.token_eos()

    def no_eos(_ids: Any, scores: Any) -> Any:
        scores[eos] = -float("inf")
        return scores

    llm.reset()
    started = time.perf_counter()
    stamps = []
    for _ in llm.create_completion(PROMPT, max_tokens=tokens, temperature=0, stream=True, logits_processor=[no_eos]):
        stamps.append(time.perf_counter())
    return stamps[0] - started, _rate(stamps)


def _body(tokens: int, eos: int) -> dict[str, Any]:
    return {
        "model": f"llama-cpp/{store.DEFAULT_CHAT_NAME}",
        "prompt": PROMPT,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "logit_bias": {str(eos): -100},
    }


def minimal_run(port: int, tokens: int, eos: int) -> tuple[float, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    payload = json.dumps(_body(tokens, eos))
    started = time.perf_counter()
    connection.request("POST", "/v1/completions", payload, {"Content-Type": "application/json"})
    response = connection.getresponse()
    stamps = []
    for line in response:
        if line.startswith(b"data: {") and b'"text":""' not in line:
            stamps.append(time.perf_counter())
    connection.close()
    return stamps[0] - started, _rate(stamps)


def openai_run(client: Any, tokens: int, eos: int) -> tuple[float, float]:
    body = _body(tokens, eos)
    started = time.perf_counter()
    stamps = []
    stream = client.completions.create(
        model=body["model"], prompt=PROMPT, max_tokens=tokens, temperature=0, stream=True, logit_bias=body["logit_bias"]
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].text:
            stamps.append(time.perf_counter())
    return stamps[0] - started, _rate(stamps)


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
            eos = llm.token_eos()
            raw_run(llm, 8), minimal_run(port, 8, eos), openai_run(client, 8, eos)  # warm-up: loads, caches

            rows: dict[str, list[tuple[float, float]]] = {"raw": [], "minimal": [], "openai": []}
            for _ in range(args.pairs):
                rows["raw"].append(raw_run(llm, args.tokens))
                rows["minimal"].append(minimal_run(port, args.tokens, eos))
                rows["raw"].append(raw_run(llm, args.tokens))
                rows["openai"].append(openai_run(client, args.tokens, eos))
            raw_pairs = rows["raw"]
            minimal_ratio = statistics.median(
                m[1] / r[1] for m, r in zip(rows["minimal"], raw_pairs[0::2], strict=True)
            )
            openai_ratio = statistics.median(o[1] / r[1] for o, r in zip(rows["openai"], raw_pairs[1::2], strict=True))
            raw_ttft = statistics.median(r[0] for r in raw_pairs)
            llm.close()

            embedder = Llama(
                str(embed_path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=threads, verbose=False
            )
            raw_embed, http_embed = [], []
            client.embeddings.create(model=f"llama-cpp/{embed_path.stem}", input=SENTENCES[:2])
            for _ in range(args.pairs):
                started = time.perf_counter()
                embedder.embed(SENTENCES, normalize=True)
                raw_embed.append(len(SENTENCES) / (time.perf_counter() - started))
                started = time.perf_counter()
                client.embeddings.create(model=f"llama-cpp/{embed_path.stem}", input=SENTENCES)
                http_embed.append(len(SENTENCES) / (time.perf_counter() - started))
            embed_ratio = statistics.median(h / r for h, r in zip(http_embed, raw_embed, strict=True))
        finally:
            server.terminate()
            server.wait(timeout=30)

    ttft_minimal = (statistics.median(m[0] for m in rows["minimal"]) - raw_ttft) * 1000
    ttft_openai = (statistics.median(o[0] for o in rows["openai"]) - raw_ttft) * 1000
    print(f"decode, raw llama-cpp-python ({threads} threads): {statistics.median(r[1] for r in raw_pairs):.1f} tok/s")
    print(f"decode ratio, minimal HTTP reader: {minimal_ratio:.3f}   (target >= 0.97)")
    print(f"decode ratio, openai client:       {openai_ratio:.3f}   (target >= 0.92)")
    print(f"added time to first token, minimal reader: {ttft_minimal:+.1f} ms (target <= 5)")
    print(f"added time to first token, openai client:  {ttft_openai:+.1f} ms")
    print(f"embeddings, raw embed(): {statistics.median(raw_embed):.0f}/s (batches of {len(SENTENCES)})")
    print(f"embeddings ratio over HTTP: {embed_ratio:.3f}   (target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
