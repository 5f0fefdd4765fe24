"""Many clients at once: aggregate decode tokens/s and time to first token at 1, 2, 4, 8 and 16 concurrent
streams of the default chat model (SmolLM2-135M), against a single stream in the same run.

For each `parallel` setting of inline::llama-cpp (default: 1, today's one-at-a-time path, and 8,
continuous batching) a server is started; at each concurrency level, waves of N streamed chat
completions (the `openai` client, each prompt its own, greedy, end-of-generation banned so each
decodes exactly `--tokens` tokens) start together. A wave's aggregate rate is all its tokens over
its wall time (first request sent to last stream end); TTFT is each stream's request to its first
text. Ratios are against the same server's single stream. Targets (issue 21, this 2-core machine):
at 8 streams aggregate >= 3x single and p95 TTFT <= 4x single, for the batched setting. Exits 1
when the batched setting misses one.

The ceiling: llama.cpp itself, in this process after the servers, decoding one token for each of N
sequences per `llama_decode` (the batched server's context: a cache per sequence) against one: what
no server over this machine and model can beat, and how much of it the server keeps.

    python bench/concurrency.py [--parallel 1,8] [--levels 1,2,4,8,16] [--tokens 128] [--waves 2] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from pocketstack.modelstore import store
from tests.support.process import environment, free_port, pocketstack

CHAT = f"llama-cpp/{store.DEFAULT_CHAT_NAME}"
NO_END = {"0": -100, "2": -100, "4": -100}  # SmolLM2's end-of-generation tokens: every stream runs its full length
TOPICS = [
    "the sea",
    "a lighthouse",
    "the mountains",
    "a city at night",
    "an old library",
    "a forest",
    "the desert",
    "a river",
    "a ship",
    "the moon",
    "a garden",
    "a train",
    "the snow",
    "a market",
    "a bridge",
    "an island",
]
WAVES = iter(range(1, 10**6))  # a number per wave, so no prompt repeats an earlier one (no reused state)


@dataclass(frozen=True)
class Wave:
    rate: float  # all tokens / wall time
    ttfts: list[float]


async def stream(client: Any, prompt: str, tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    first = 0.0
    count = 0
    chunks = await client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=tokens,
        temperature=0,
        logit_bias=NO_END,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in chunks:
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
        if chunk.usage is not None:
            count = chunk.usage.completion_tokens
    return first, count


async def wave(client: Any, n: int, tokens: int) -> Wave:
    number = next(WAVES)
    prompts = [f"({number}.{i}) Write a long story about {TOPICS[i % len(TOPICS)]}." for i in range(n)]
    started = time.perf_counter()
    results = await asyncio.gather(*(stream(client, p, tokens) for p in prompts))
    wall = time.perf_counter() - started
    assert all(count == tokens for _, count in results), f"a stream ended early: {results}"
    return Wave(sum(count for _, count in results) / wall, [first for first, _ in results])


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def measure(port: int, levels: list[int], tokens: int, waves: int) -> dict[int, tuple[float, float, float]]:
    """Per level: (median aggregate tok/s, p50 TTFT, p95 TTFT)."""
    import openai

    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0, timeout=600)
    for _ in range(300):
        try:
            await client.models.list()
            break
        except openai.APIConnectionError:
            await asyncio.sleep(0.1)
    await wave(client, 1, 8)  # warm-up: the model loads
    figures = {}
    for n in levels:
        done = [await wave(client, n, tokens) for _ in range(waves)]
        ttfts = [t for w in done for t in w.ttfts]
        figures[n] = (statistics.median(w.rate for w in done), statistics.median(ttfts), p95(ttfts))
    await client.close()
    return figures


def run_server(
    parallel: int, threads: int, levels: list[int], tokens: int, waves: int
) -> dict[int, tuple[float, float, float]]:
    with tempfile.TemporaryDirectory(prefix="pocketstack-bench-") as tmp:
        config = yaml.safe_load((Path(__file__).parent.parent / "runtime/distributions/edge.yaml").read_text())
        inference = config["providers"]["inference"][0]["config"]
        inference.update(threads=threads, parallel=parallel, max_waiting=max(levels))
        config_path = Path(tmp) / "run.yaml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        env = {**environment(Path(tmp) / "home"), "POCKETSTACK_LOG_LEVEL": "WARNING"}
        # Imported before the start: a first run converts the embedding model in the background after it
        # listens, and that took the cores from the first waves measured (single stream at 0.7x).
        subprocess.run(pocketstack("models", "import"), env=env, check=True, capture_output=True)
        server = subprocess.Popen(pocketstack("run", str(config_path), "--port", str(port)), env=env)
        try:
            return asyncio.run(measure(port, levels, tokens, waves))
        finally:
            server.terminate()
            server.wait(timeout=30)


def raw_ceiling(threads: int, levels: list[int], steps: int = 40) -> dict[int, float]:
    """llama_decode's aggregate tokens/s at each level (one token per sequence per step), on a thread of
    its own that ends with the measure (llama.cpp's OpenMP team goes with it, as in the server)."""
    import llama_cpp

    from pocketstack.providers.inline.llama_cpp.scheduler import widen

    model = store.package_file(store.DEFAULT_CHAT_PACKAGE, store.DEFAULT_CHAT_FILE)
    assert model is not None, "the default chat model's wheel is not installed"
    figures: dict[int, float] = {}

    def measure_all() -> None:
        llm = llama_cpp.Llama(str(model), n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
        widen(llm, max(levels))
        ctx, memory = llm._ctx.ctx, llama_cpp.llama_get_memory(llm._ctx.ctx)
        batch = llama_cpp.llama_batch_init(512, 0, 1)

        def decode(entries: list[tuple[int, int, int]]) -> None:
            batch.n_tokens = len(entries)
            for i, (token, position, sequence) in enumerate(entries):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, position, 1
                batch.seq_id[i][0], batch.logits[i] = sequence, True
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")

        prompt = llm.tokenize(b"Write a long story about the sea.")
        for sequence in range(max(levels)):
            decode([(token, i, sequence) for i, token in enumerate(prompt)])
        for n in levels:
            for sequence in range(n):
                llama_cpp.llama_memory_seq_rm(memory, sequence, len(prompt), -1)
            decode([(100, len(prompt), s) for s in range(n)])  # warm
            started = time.perf_counter()
            for step in range(1, steps + 1):
                decode([(100 + step, len(prompt) + step, s) for s in range(n)])
            figures[n] = n * steps / (time.perf_counter() - started)
        llama_cpp.llama_batch_free(batch)
        llm.close()

    worker = threading.Thread(target=measure_all)
    worker.start()
    worker.join()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", default="1,8", help="inline::llama-cpp `parallel` settings, one server each")
    parser.add_argument("--levels", default="1,2,4,8,16", help="concurrent streams per wave")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--waves", type=int, default=2, help="waves per level")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama.cpp threads")
    args = parser.parse_args()
    settings = [int(p) for p in args.parallel.split(",")]
    levels = sorted({1, *(int(n) for n in args.levels.split(","))})

    print(f"{args.tokens} tokens per stream, greedy; {args.waves} waves per level; {args.threads} threads")
    ok = True
    batched: tuple[int, dict[int, tuple[float, float, float]]] | None = None
    for parallel in settings:
        figures = run_server(parallel, args.threads, levels, args.tokens, args.waves)
        single_rate, single_ttft, _ = figures[1]
        print(f"\nparallel: {parallel}")
        print(
            f"{'streams':>7} {'agg tok/s':>10} {'x single':>9} {'TTFT p50 ms':>12} {'p95 ms':>8} {'p95 x single':>13}"
        )
        for n, (rate, p50, p95_ttft) in figures.items():
            print(
                f"{n:>7} {rate:>10.1f} {rate / single_rate:>9.2f} {p50 * 1000:>12.0f} {p95_ttft * 1000:>8.0f} "
                f"{p95_ttft / single_ttft:>13.2f}"
            )
        if parallel > 1 and 8 in figures:
            rate, _, p95_ttft = figures[8]
            checks = [rate / single_rate >= 3.0, p95_ttft / single_ttft <= 4.0]
            print(f"8 streams: aggregate {rate / single_rate:.2f}x single (target >= 3) {_verdict(checks[0])}")
            print(f"8 streams: p95 TTFT {p95_ttft / single_ttft:.2f}x single (target <= 4) {_verdict(checks[1])}")
            ok = ok and all(checks)
        if parallel > 1:
            batched = (parallel, figures)
    if batched is not None:
        parallel, figures = batched
        ceiling_levels = [n for n in levels if n <= parallel]
        raw = raw_ceiling(args.threads, ceiling_levels)
        print(f"\nllama_decode alone ({args.threads} threads): N sequences, one token each per decode")
        print(f"{'streams':>7} {'raw tok/s':>10} {'x one':>7} {'server x single':>16} {'share of raw':>13}")
        single_rate = figures[1][0]
        for n in ceiling_levels:
            server = figures[n][0] / single_rate
            ceiling = raw[n] / raw[1]
            print(f"{n:>7} {raw[n]:>10.1f} {ceiling:>7.2f} {server:>16.2f} {server / ceiling:>13.0%}")
    return 0 if ok else 1


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


if __name__ == "__main__":
    sys.exit(main())
