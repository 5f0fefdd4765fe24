"""An eval's generation: 50 rows through Eval's run_eval against the same generations made one by one.

A real server (`pocketstack run edge` on a free loopback port, a fresh POCKETSTACK_HOME, the default
SmolLM2-135M model, or `--base-url`) runs the built-in `pocketstack::arithmetic` benchmark (50
rows): one `run_eval` job, greedy, `--max-tokens` per answer, its wall time from the request to the
answer (the builtin provider answers when the job has run). The baseline, in the same run on the
same server: each row's messages (the benchmark's system message and the question) sent as one
`POST /v1/chat/completions` after another, same parameters; the sum of their times is what a
client doing it by hand waits. The ratio eval ÷ one-by-one says how much the eval's concurrency
(rows in flight, batched where the inference provider batches) buys; the issue's target is ≤ 0.6
once inline::llama-cpp batches sequences (issue 21). The answers of both are compared: greedy
decoding gives the same text alone or beside others.

    python bench/eval_generation.py [--rows 50] [--max-tokens 48] [--base-url URL --model ID]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from tests.support.config import CHAT_MODEL
from tests.support.process import start

BENCHMARK = "pocketstack::arithmetic"


def call(base_url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base_url}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=1800) as answer:
        return json.loads(answer.read() or b"null")


def rows(base_url: str, dataset_id: str, count: int) -> list[dict[str, Any]]:
    page = call(base_url, "GET", f"/v1beta/datasetio/iterrows/{dataset_id}?limit={count}")
    return list(page["data"])


def one_by_one(
    base_url: str, model: str, system: str, questions: list[str], max_tokens: int
) -> tuple[float, list[str]]:
    answers, total = [], 0.0
    for question in questions:
        body = {
            "model": model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        started = time.perf_counter()
        answer = call(base_url, "POST", "/v1/chat/completions", body)
        total += time.perf_counter() - started
        answers.append(answer["choices"][0]["message"]["content"])
    return total, answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--base-url", help="a running server's root; default: start pocketstack")
    parser.add_argument("--model", default=CHAT_MODEL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pocketstack-bench-") as tmp:
        server = None if args.base_url else start(Path(tmp) / "home", ["edge"])
        base_url = (args.base_url or (server.base_url if server else "")).rstrip("/")
        try:
            benchmark = call(base_url, "GET", f"/v1alpha/eval/benchmarks/{BENCHMARK}")
            system = benchmark["metadata"]["system_message"]
            questions = [row["input_query"] for row in rows(base_url, benchmark["dataset_id"], args.rows)]
            one_by_one(base_url, args.model, system, questions[:1], 4)  # the model loaded before timing
            candidate = {
                "type": "model",
                "model": args.model,
                "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": args.max_tokens},
                "system_message": {"role": "system", "content": system},
            }
            config = {
                "eval_candidate": candidate,
                "num_examples": len(questions),
                "scoring_params": benchmark["metadata"]["scoring_params"],
            }
            started = time.perf_counter()
            job = call(base_url, "POST", f"/v1alpha/eval/benchmarks/{BENCHMARK}/jobs", {"benchmark_config": config})
            eval_s = time.perf_counter() - started
            assert job["status"] == "completed", job
            result = call(base_url, "GET", f"/v1alpha/eval/benchmarks/{BENCHMARK}/jobs/{job['job_id']}/result")
            eval_answers = [g["generated_answer"] for g in result["generations"]]
            sequential_s, answers = one_by_one(base_url, args.model, system, questions, args.max_tokens)
            same = sum(a == b for a, b in zip(eval_answers, answers, strict=True))
            accuracy = result["scores"]["basic::regex_parser_math_response"]["aggregated_results"]["accuracy"]
            print(f"server {base_url}, model {args.model}, {len(questions)} rows, max {args.max_tokens} tokens, greedy")
            print(f"eval job (run_eval, rows in flight): {eval_s:7.2f} s   accuracy {accuracy['accuracy']:.2f}")
            print(f"one by one (chat completions):      {sequential_s:7.2f} s")
            print(f"ratio eval / one-by-one: {eval_s / sequential_s:.2f} (target <= 0.6 once inference batches)")
            print(f"answers identical: {same}/{len(questions)}")
            return 0
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
