"""Recorded requests as the span processor stores them, for the Telemetry query and `pocketstack traces`
tests (which seed the store directly: what they test is reading it back)."""

from __future__ import annotations

import secrets

from pocketstack.storage.owners import Owner
from pocketstack.storage.spans import SpanRecord

MODEL = "llama-cpp/SmolLM2-135M-Instruct"


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def chat_request(
    start: float,
    owner: Owner | None = None,
    *,
    model: str = MODEL,
    tokens: tuple[int, int] = (12, 40),
    status_code: int = 200,
    trace_id: str | None = None,
    client_parent: str | None = None,
) -> list[SpanRecord]:
    """A chat completion: the server span, the API span under it, the model's span under that (times in s).
    `client_parent`: the span id of a client's `traceparent` (not in the store)."""
    trace_id = trace_id or new_trace_id()
    server, api, chat = new_span_id(), new_span_id(), new_span_id()
    error = "error" if status_code >= 500 else "unset"
    return [
        SpanRecord(
            trace_id, server, client_parent, "POST /v1/chat/completions", "server", start, start + 0.4123, error,
            attributes={
                "http.request.method": "POST",
                "http.route": "/v1/chat/completions",
                "url.path": "/v1/chat/completions",
                "http.response.status_code": status_code,
            },
            owner=owner,
        ),
        SpanRecord(
            trace_id, api, server, "Inference.openai_chat_completion", "internal", start + 0.001, start + 0.41, "unset",
            attributes={"pocketstack.api": "Inference", "pocketstack.operation": "openai_chat_completion"},
            owner=owner,
        ),
        SpanRecord(
            trace_id, chat, api, f"chat {model.split('/')[-1]}", "client", start + 0.003, start + 0.4081, "ok",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.provider.name": "llama-cpp",
                "gen_ai.usage.input_tokens": tokens[0],
                "gen_ai.usage.output_tokens": tokens[1],
                "gen_ai.server.time_to_first_token": 0.05,
            },
            owner=owner,
        ),
    ]  # fmt: skip
