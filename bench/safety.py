"""Safety shields: precision and recall on the labelled cases (tests/support/safety_cases.py), and latency.

A real server (`pocketstack run`, edge distribution) is asked through the `openai` client's
`moderations.create`, one case at a time, for every shield the edge distribution registers
(code-scanner and toxicity only when their extras are installed). The baseline, scored on the
same cases, is the naive pattern a careless filter would use for that kind of shield (for pii:
an `@`, seven digits in a row, "key" or "password"): the figure that matters is how much better
than that each shield does. The edge `llama-guard` shield runs the default 135M chat model,
which is no Llama Guard: its row says what the grammar buys (every answer parses), not what a
real Llama Guard model would score.

    python bench/safety.py
"""

from __future__ import annotations

import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support: helpers and cases

from tests.support.process import start
from tests.support.safety_cases import CODE, GUARD, PII, TOXIC

NAIVE = {
    "pii": re.compile(r"@|\d[\d -]{6,}\d|\bkey\b|password", re.IGNORECASE),
    "toxicity": re.compile(r"\b(idiot|stupid|hate|kill|shoot|fuck\w*|shit|hell|dick\w*|garbage|ass\w*)\b", re.I),
    "code-scanner": re.compile(r"pickle|eval|md5|sha1|shell|system|exec|gets|strcpy|random|verify", re.IGNORECASE),
    "llama-guard": re.compile(r"\b(kill|bomb|steal|weapon|gas|drug|sex|hate|election|attack)\w*", re.IGNORECASE),
}
SUITES = {"pii": PII, "toxicity": TOXIC, "code-scanner": CODE, "llama-guard": GUARD}


def _scores(predicted: list[bool], labels: list[bool]) -> tuple[float, float, float]:
    true_positive = sum(p and y for p, y in zip(predicted, labels, strict=True))
    precision = true_positive / max(1, sum(predicted))
    recall = true_positive / max(1, sum(labels))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _shields(base_url: str) -> list[Any]:
    import llama_stack_client

    with llama_stack_client.LlamaStackClient(base_url=base_url, max_retries=0) as client:
        return list(client.shields.list())


def main() -> int:
    import openai

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request drowns the figures
    logging.getLogger("httpx2").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="pocketstack-bench-") as tmp:
        server = start(Path(tmp) / "home")
        try:
            client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="bench", max_retries=0)
            registered = {shield.identifier for shield in _shields(server.base_url)}
            for shield, cases in SUITES.items():
                if shield not in registered:
                    print(f"shield {shield}: not registered (its extra is not installed); skipped")
                    continue
                client.moderations.create(input="warm-up", model=shield)
                labels = [flagged for _, flagged, _ in cases]
                predicted, timings, exact = [], [], 0
                for text, flagged, categories in cases:
                    started = time.perf_counter()
                    result = client.moderations.create(input=text, model=shield).results[0]
                    timings.append(time.perf_counter() - started)
                    predicted.append(result.flagged)
                    hits = {name for name, hit in result.categories.model_dump(by_alias=True).items() if hit}
                    hits |= {name for name, hit in (result.categories.model_extra or {}).items() if hit}
                    exact += result.flagged == flagged and (
                        not flagged or shield == "llama-guard" or hits == categories
                    )
                precision, recall, f1 = _scores(predicted, labels)
                naive = _scores([bool(NAIVE[shield].search(text)) for text, _, _ in cases], labels)
                print(f"shield {shield}: {len(cases)} cases ({sum(labels)} positive)")
                quality = f"precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}"
                print(f"  {quality}  right verdict (and categories) {exact}/{len(cases)}")
                print(f"  naive baseline: precision {naive[0]:.3f}  recall {naive[1]:.3f}  F1 {naive[2]:.3f}")
                ratio = f"{f1 / naive[2]:.2f}" if naive[2] else "n/a"
                print(f"  F1 ratio to the baseline: {ratio}")
                print(f"  latency per moderation over HTTP: p50 {statistics.median(timings) * 1000:.1f} ms")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
