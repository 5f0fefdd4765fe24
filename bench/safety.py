"""Safety shields: precision and recall on the labelled cases (tests/safety/cases.py), and latency.

A real server (`pocketstack run`, edge distribution) is asked through the `openai` client's
`moderations.create`, one case at a time. The baseline, scored on the same cases, is a naive
pattern a careless filter would use (an `@`, or seven digits in a row, or the word "key" or
"password"): the figure that matters is how much better than that each shield does.

    python bench/safety.py
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.* helpers and cases

from tests.process.server import start
from tests.safety.cases import PII

NAIVE = re.compile(r"@|\d[\d -]{6,}\d|\bkey\b|password", re.IGNORECASE)


def _scores(predicted: list[bool], labels: list[bool]) -> tuple[float, float, float]:
    true_positive = sum(p and y for p, y in zip(predicted, labels, strict=True))
    precision = true_positive / max(1, sum(predicted))
    recall = true_positive / max(1, sum(labels))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> int:
    import openai

    suites = {"pii": PII}
    with tempfile.TemporaryDirectory(prefix="pocketstack-bench-") as tmp:
        server = start(Path(tmp) / "home")
        try:
            client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="bench", max_retries=0)
            client.moderations.create(input="warm-up", model="pii")
            for shield, cases in suites.items():
                labels = [flagged for _, flagged, _ in cases]
                predicted, timings, exact = [], [], 0
                for text, flagged, categories in cases:
                    started = time.perf_counter()
                    result = client.moderations.create(input=text, model=shield).results[0]
                    timings.append(time.perf_counter() - started)
                    predicted.append(result.flagged)
                    hits = {name for name, hit in result.categories.model_dump().items() if hit}
                    exact += result.flagged == flagged and (not flagged or hits == categories)
                precision, recall, f1 = _scores(predicted, labels)
                naive = _scores([bool(NAIVE.search(text)) for text, _, _ in cases], labels)
                print(f"shield {shield}: {len(cases)} cases ({sum(labels)} positive)")
                quality = f"precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}"
                print(f"  {quality}  exact categories {exact}/{len(cases)}")
                print(f"  naive baseline: precision {naive[0]:.3f}  recall {naive[1]:.3f}  F1 {naive[2]:.3f}")
                print(f"  F1 ratio to the baseline: {f1 / naive[2]:.2f}")
                print(f"  latency per moderation over HTTP: p50 {statistics.median(timings) * 1000:.1f} ms")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
