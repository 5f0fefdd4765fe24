"""Evaluation throughput, part one: basic scoring, rows per second.

`basic::equality` over `--rows` rows (default 100,000), measured three ways in one process:
the baseline, a bare list comprehension making the same score rows (the floor: Python's own
cost of reading a row and making its score dict); the inline::basic provider's `score()` (its
column checks and the accuracy aggregate on top); and POST /v1/scoring/score against the app
in-process (edge distribution; the JSON body parsed and validated, the function resolved, the
answer written), the client's JSON encoding left out. Each is the median of `--repeat` runs.
Exits 1 when the provider scores fewer than 50,000 rows/s.

    python bench/eval.py [--rows 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

TARGET_ROWS_PER_S = 50_000


def make_rows(count: int) -> list[dict[str, Any]]:
    return [
        {"input_query": f"What is {n} mod 7?", "generated_answer": str(n % 7), "expected_answer": str(n % 5)}
        for n in range(count)
    ]


def baseline(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"score": 1.0 if row["expected_answer"] == row["generated_answer"] else 0.0} for row in rows]


def best_of(repeat: int, run: Any) -> float:
    """The median seconds of `repeat` runs of `run()`."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def through_provider(rows: list[dict[str, Any]], repeat: int) -> tuple[float, float]:
    from pocketstack.providers.base import ProviderContext
    from pocketstack.providers.inline.scoring_basic.config import BasicScoringConfig
    from pocketstack.providers.inline.scoring_basic.provider import BasicScoring

    provider = BasicScoring(BasicScoringConfig(), ProviderContext("basic", Path(tempfile.gettempdir())))
    timings = []
    accuracy = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        scored = await provider.score("equality", None, rows)
        timings.append(time.perf_counter() - started)
        accuracy = scored.aggregated_results["accuracy"]["accuracy"]
    return statistics.median(timings), accuracy


async def through_http(rows: list[dict[str, Any]], repeat: int) -> tuple[float, float, int]:
    from aiohttp.test_utils import TestClient, TestServer

    from pocketstack.app import create_app
    from tests.support.config import edge_with

    body = json.dumps({"input_rows": rows, "scoring_functions": {"basic::equality": None}}).encode()
    headers = {"Content-Type": "application/json"}
    async with TestClient(TestServer(create_app(edge_with()))) as client:
        # The first request waits for the APIs to assemble: not timed.
        warm = {"input_rows": [], "scoring_functions": {"basic::equality": None}}
        assert (await client.post("/v1/scoring/score", json=warm)).status == 200
        timings = []
        answer: dict[str, Any] = {}
        size = 0
        for _ in range(repeat):
            started = time.perf_counter()
            response = await client.post("/v1/scoring/score", data=body, headers=headers)
            raw = await response.read()
            timings.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"POST /v1/scoring/score -> {response.status}: {raw[:300]!r}")
            answer, size = json.loads(raw), len(raw)
    accuracy = answer["results"]["basic::equality"]["aggregated_results"]["accuracy"]["accuracy"]
    return statistics.median(timings), accuracy, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ["POCKETSTACK_HOME"] = tempfile.mkdtemp(prefix="bench-eval-")  # state of its own, thrown away

    rows = make_rows(args.rows)
    floor = best_of(args.repeat, lambda: baseline(rows))
    provider, provider_accuracy = asyncio.run(through_provider(rows, args.repeat))
    http, http_accuracy, size = asyncio.run(through_http(rows, max(1, args.repeat // 2)))
    assert provider_accuracy == http_accuracy == sum(s["score"] for s in baseline(rows)) / len(rows)

    count = len(rows)
    print(f"basic::equality over {count:,} rows (median of {args.repeat}; HTTP of {max(1, args.repeat // 2)})")
    print(f"  baseline, list comprehension:{count / floor:>12,.0f} rows/s")
    print(f"  provider score():            {count / provider:>12,.0f} rows/s ratio to baseline {floor / provider:.2f}")
    print(f"  POST /v1/scoring/score:      {count / http:>12,.0f} rows/s ratio to provider {provider / http:.2f}")
    print(f"  (answer {size / 1e6:.1f} MB)")
    met = count / provider >= TARGET_ROWS_PER_S
    print(f"provider rows/s >= {TARGET_ROWS_PER_S:,}: {'ok' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
