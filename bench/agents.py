"""Agent conversations on the edge: time to first token of a later turn, with and without prompt-state reuse.

A real server (`pocketstack run`, edge distribution, the default SmolLM2-135M model) holds a
conversation through the `openai` client's Responses API, each turn threaded on the previous one
by `previous_response_id` and streamed, as an agent loop does. The figure is the time to the
first text delta of turn 5, reusing the prompt state the earlier turns left (the default) against
the baseline measured in the same run: the same conversation with `cache_prompt: false`, which
evaluates the whole history again every turn. Each is run `--repeat` times (median); the answers
of both must be the same, since reuse must not change what a seeded request samples.

    python bench/agents.py [--turns 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from tests.support.config import CHAT_MODEL
from tests.support.process import start

QUESTIONS = [
    "I am planning a week of sailing along the coast. What should I pack?",
    "Which of those matters most if the weather turns?",
    "How do I read a marine forecast?",
    "What does a falling barometer tell me?",
    "Give me a short checklist for the morning I leave.",
    "And for the evening I come back?",
]


def conversation(client: Any, turns: int, reuse: bool, seed: int = 11) -> tuple[list[float], list[str], list[int]]:
    """Run one conversation; per turn: time to first text delta, the answer, and the prompt tokens reused."""
    previous: str | None = None
    firsts, answers, cached = [], [], []
    for turn in range(turns):
        extra: dict[str, Any] = {"seed": seed + turn, "cache_prompt": reuse}
        started = time.perf_counter()
        first: float | None = None
        text, final = "", None
        stream = client.responses.create(
            model=CHAT_MODEL,
            instructions="You are a concise sailing instructor.",
            input=QUESTIONS[turn % len(QUESTIONS)],
            previous_response_id=previous,
            max_output_tokens=64,
            temperature=0.7,
            stream=True,
            extra_body=extra,
        )
        for event in stream:
            if event.type == "response.output_text.delta":
                first = first if first is not None else time.perf_counter() - started
                text += event.delta
            elif event.type in ("response.completed", "response.incomplete"):
                final = event.response
        assert final is not None and first is not None, "the stream ended without an answer"
        previous = final.id
        firsts.append(first)
        answers.append(text)
        details = final.usage.input_tokens_details if final.usage else None
        cached.append(details.cached_tokens if details else 0)
    return firsts, answers, cached


def main() -> int:
    import openai

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="pocketstack-bench-") as tmp:
        server = start(Path(tmp) / "home")
        try:
            client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="bench", max_retries=0)
            conversation(client, 1, reuse=False)  # load the model before anything is timed
            runs: dict[bool, list[float]] = {True: [], False: []}
            same = True
            for repeat in range(args.repeat):
                # Each repeat samples another conversation, so no run finds the states an identical one saved.
                answers: dict[bool, list[str]] = {}
                for reuse in (False, True):
                    firsts, said, cached = conversation(client, args.turns, reuse, seed=100 * repeat)
                    runs[reuse].append(firsts[-1])
                    answers[reuse] = said
                    label = "reuse" if reuse else "full "
                    print(f"{label}: ttft per turn " + " ".join(f"{t * 1000:.0f}" for t in firsts) + " ms;"
                          f" prompt tokens reused {cached}")  # fmt: skip
                same = same and answers[True] == answers[False]
            full, reused = statistics.median(runs[False]), statistics.median(runs[True])
            print(f"turn {args.turns} time to first token: full re-evaluation {full * 1000:.0f} ms (baseline), "
                  f"reusing the prompt state {reused * 1000:.0f} ms")  # fmt: skip
            print(f"ratio reuse / full: {reused / full:.2f} (target <= 0.3)")
            print(f"answers the same with and without reuse: {same}")
            return 0 if same else 1
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
