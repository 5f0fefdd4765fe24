"""A multi-turn streamed conversation through Conversations + Responses, against plain chat completions.

A real server (`pocketstack run edge` on a free loopback port, a fresh POCKETSTACK_HOME, the
default SmolLM2-135M model; or any server given by `--base-url`, e.g. Llama Stack) holds a
conversation the way the issue's client did: `conversations.create()`, then each turn
`responses.create(conversation=..., input=<user text>, stream=True)` with the `openai` client.
Per turn: time to the first output_text delta, to the last delta, to `response.completed`, and
to the end of the stream (the client's iteration over), and the tokens out.

The baseline, measured in the same run on the same server: each turn's history (the messages the
response turn saw: the earlier questions and the answers the responses gave) sent as a plain
streamed `chat.completions.create`, same max tokens, greedy, one turn after another as a chat client
that keeps its own history does. The ratio per turn is what the Responses/Conversations layer adds
(a prompt state that is not reused, storage, events). The two conversations run one after the
other, each tagged in its first message ("Ref 1234."), so neither finds the prompt state the other
left; the prompt tokens per turn are printed for both and are the same when the layer renders the
history as chat would.

Before anything is timed: the default embedding model's first-run import is awaited (a fresh home
converts it in the background), the model is loaded, and one Responses turn is made. The first
Responses event an `openai` client process parses costs that client ~0.7 s on this kind of machine
(its pydantic types are built on first use): a client-side, one-time cost, the same against any
server, which the warm-up takes out of the figures.

    python bench/turns.py [--turns 8] [--max-tokens 48] [--repeat 2] [--base-url URL --model ID]

Exit status is non-zero only on errors (a failed turn, a stream without text), never on a ratio.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from tests.support.config import CHAT_MODEL
from tests.support.process import start

QUESTIONS = [
    "I want to start baking bread at home. Where do I begin?",
    "What flour should I buy for that?",
    "How long should the dough rise?",
    "My kitchen is cold in winter. Does that change anything?",
    "How do I know when the loaf is done?",
    "Why did my last loaf come out dense?",
    "Can I freeze the bread afterwards?",
    "Give me a short checklist for my first bake.",
    "What should I try once I am comfortable with that?",
    "Thanks. Anything else I should know?",
]


@dataclass
class Turn:
    """One streamed answer, times in seconds from the request."""

    first: float  # first text delta
    last: float  # last text delta
    completed: float  # response.completed (the chat baseline: its last chunk, the usage one)
    end: float  # the stream over (the client stops waiting)
    tokens: int  # tokens out
    prompt: int  # prompt tokens
    cached: int  # prompt tokens reused, as the server reports them (0 when it does not)
    text: str


def _tagged(text: str, tag: str) -> str:
    return f"Ref {tag}. {text}"


def response_turn(client: Any, model: str, conversation: str, text: str, max_tokens: int) -> Turn:
    started = time.perf_counter()
    first = last = completed = None
    said, final, kinds = "", None, []
    stream = client.responses.create(
        model=model,
        conversation=conversation,
        input=text,
        stream=True,
        max_output_tokens=max_tokens,
        temperature=0,
    )
    for event in stream:
        now = time.perf_counter() - started
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            first = now if first is None else first
            last = now
            said += event.delta
        elif event.type in ("response.completed", "response.incomplete"):
            completed, final = now, event.response
        elif event.type in ("response.failed", "error"):
            raise RuntimeError(f"the response failed: {event}")
    end = time.perf_counter() - started
    if final is None or first is None or last is None or completed is None:
        raise RuntimeError(f"the stream ended without an answer: {kinds} {final}")
    usage = final.usage
    details = usage.input_tokens_details if usage else None
    return Turn(
        first, last, completed, end,
        tokens=usage.output_tokens if usage else 0,
        prompt=usage.input_tokens if usage else 0,
        cached=(details.cached_tokens or 0) if details else 0,
        text=said,
    )  # fmt: skip


def chat_turn(client: Any, model: str, messages: list[dict[str, str]], max_tokens: int) -> Turn:
    started = time.perf_counter()
    first = last = None
    said, usage, completed = "", None, 0.0
    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=max_tokens,
        temperature=0,
    )
    for chunk in stream:
        now = time.perf_counter() - started
        completed = now
        for choice in chunk.choices:
            if choice.delta.content:
                first = now if first is None else first
                last = now
                said += choice.delta.content
        usage = chunk.usage or usage
    end = time.perf_counter() - started
    if first is None or last is None:
        raise RuntimeError("the chat stream ended without text")
    details = usage.prompt_tokens_details if usage else None
    return Turn(
        first, last, completed, end,
        tokens=usage.completion_tokens if usage else 0,
        prompt=usage.prompt_tokens if usage else 0,
        cached=(details.cached_tokens or 0) if details and details.cached_tokens else 0,
        text=said,
    )  # fmt: skip


def conversation(client: Any, model: str, turns: int, max_tokens: int, tags: tuple[str, str]) -> dict[str, Any]:
    """The Responses conversation, then the chat baseline over the same histories."""
    started = time.perf_counter()
    conv = client.conversations.create()
    create_s = time.perf_counter() - started
    responses: list[Turn] = []
    history: list[dict[str, str]] = []  # what the response turns saw, tagged for the chat baseline
    asked: list[str] = []
    for number in range(turns):
        text = QUESTIONS[number % len(QUESTIONS)]
        turn = response_turn(client, model, conv.id, _tagged(text, tags[0]) if number == 0 else text, max_tokens)
        responses.append(turn)
        asked.append(_tagged(text, tags[1]) if number == 0 else text)
        history.append({"role": "user", "content": asked[-1]})
        history.append({"role": "assistant", "content": turn.text})
    chats: list[Turn] = []
    for number in range(turns):
        messages = history[: 2 * number + 1]
        chats.append(chat_turn(client, model, messages, max_tokens))
    return {"create_s": create_s, "responses": responses, "chats": chats}


def imported(base_url: str, timeout_s: float = 120) -> None:
    """Wait for the first run's import of the default embedding model (it competes for the cores)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base_url}/v1/models", timeout=10) as answer:
            listed = json.load(answer)["data"]
        if any((model.get("custom_metadata") or {}).get("model_type") == "embedding" for model in listed):
            return
        time.sleep(0.5)
    raise RuntimeError("the default embedding model was not imported in time")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.0f}"


def report(run: dict[str, Any], label: str) -> list[float]:
    print(f"\n{label}: conversations.create {run['create_s'] * 1000:.0f} ms")
    print("turn | prompt tok (cached) resp / chat | out tok | first delta resp / chat | last delta resp / chat |"
          " completed resp | stream end resp / chat | ratio first | ratio end")  # fmt: skip
    ratios = []
    for number, (r, c) in enumerate(zip(run["responses"], run["chats"], strict=True), 1):
        first, end = r.first / c.first, r.end / c.end
        ratios.append(end)
        print(f"{number:4d} | {r.prompt:4d} ({r.cached:4d}) / {c.prompt:4d} ({c.cached:4d}) | {r.tokens:3d} / "
              f"{c.tokens:3d} | {_ms(r.first)} / {_ms(c.first)} | {_ms(r.last)} / {_ms(c.last)} | "
              f"{_ms(r.completed)} | {_ms(r.end)} / {_ms(c.end)} | {first:5.2f} | {end:5.2f}")  # fmt: skip
    tail = [r.end - r.last for r in run["responses"]]
    chat_tail = [c.end - c.last for c in run["chats"]]
    print(f"last delta -> stream end, median: responses {statistics.median(tail) * 1000:.1f} ms, "
          f"chat {statistics.median(chat_tail) * 1000:.1f} ms")  # fmt: skip
    return ratios


def main() -> int:
    import openai

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=2, help="conversations, each with fresh tags")
    parser.add_argument("--base-url", help="a running server's root (…/v1 is added); default: start pocketstack")
    parser.add_argument("--model", default=CHAT_MODEL)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="pocketstack-bench-") as tmp:
        server = None if args.base_url else start(Path(tmp) / "home", ["edge"])
        base_url = args.base_url or (server.base_url if server else "")
        try:
            client = openai.OpenAI(base_url=f"{base_url.rstrip('/')}/v1", api_key="bench", max_retries=0, timeout=300)
            if server is not None:
                imported(base_url)
            # Load the model and warm both paths (server and client) before anything is timed.
            chat_turn(client, args.model, [{"role": "user", "content": "Hello"}], 4)
            response_turn(client, args.model, client.conversations.create().id, "Hello", 16)
            print(f"server {base_url}, model {args.model}, {args.turns} turns, max {args.max_tokens} tokens, greedy")
            picks = random.Random().sample(range(1000, 10000), 2 * args.repeat)
            all_end: list[list[float]] = []
            for repeat in range(args.repeat):
                tags = (str(picks[2 * repeat]), str(picks[2 * repeat + 1]))
                run = conversation(client, args.model, args.turns, args.max_tokens, tags)
                all_end.append(report(run, f"conversation {repeat + 1}"))
            per_turn = [statistics.median(column) for column in zip(*all_end, strict=True)]
            print("\nratio responses / chat, stream end, median per turn: " + " ".join(f"{r:.2f}" for r in per_turn))
            print(f"overall median {statistics.median(per_turn):.2f}; last turn {per_turn[-1]:.2f} (target <= 1.3)")
            return 0
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
