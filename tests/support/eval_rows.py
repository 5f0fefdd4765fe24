"""Eval test data: eight questions the scripted model answers (five right), their rows, a model
candidate, and the config serving them (with builtin::rag for agent candidates)."""

from __future__ import annotations

import json
from typing import Any

from pocketstack.config import StackConfig
from tests.support.config import edge_providers_with, edge_with
from tests.support.scripted import CHAT, scripted_entry

QUESTIONS = [f"What is {n} + {n}?" for n in range(8)]
# The scripted model answers the first five right and the rest wrong.
REPLIES = {q: str(2 * n) if n < 5 else "no idea" for n, q in enumerate(QUESTIONS)}
ROWS: list[dict[str, Any]] = [
    {
        "input_query": q,
        "expected_answer": str(2 * n),
        "chat_completion_input": json.dumps([{"role": "user", "content": q}]),
    }
    for n, q in enumerate(QUESTIONS)
]
CANDIDATE: Any = {  # the client types the candidate as a TypedDict union
    "type": "model",
    "model": "chat",
    "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 16},
}


COMET = "What does a comet grow near the sun?"
SEARCH = {COMET: [{"name": "knowledge_search", "arguments": '{"query": "comet tail near the sun"}'}]}


def config(resources: dict[str, Any] | None = None, **scripted: Any) -> StackConfig:
    llama_cpp = edge_providers_with()["inference"]
    inference = [*llama_cpp, scripted_entry(replies=REPLIES, calls=SEARCH, **scripted)]
    rag = {"toolgroup_id": "builtin::rag", "provider_id": "file-search"}
    return edge_with(
        providers=edge_providers_with(inference=inference),
        registered_resources={"models": [CHAT], "tool_groups": [rag], **(resources or {})},
    )
