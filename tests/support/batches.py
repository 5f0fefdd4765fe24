"""Batch test helpers: the scripted config, request lines, uploads, and polling a batch to an end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import openai
from aiohttp.test_utils import TestClient

from pocketstack.config import StackConfig
from tests.support.config import edge_providers_with, edge_shields, edge_with
from tests.support.scripted import CHAT, scripted_entry

Lines = list[dict[str, Any]]


def config(**scripted: Any) -> StackConfig:
    llama_cpp = edge_providers_with()["inference"]
    return edge_with(
        providers=edge_providers_with(
            inference=[*llama_cpp, scripted_entry(replies={"capital?": "Paris."}, **scripted)]
        ),
        registered_resources={"models": [CHAT], "shields": edge_shields()},
    )


def chat_line(custom_id: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def client_of(server: TestClient[Any, Any], user: str | None = None) -> openai.AsyncOpenAI:
    headers = {"X-Test-User": user} if user else None
    return openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="none", max_retries=0, default_headers=headers
    )


async def upload(oai: openai.AsyncOpenAI, lines: Lines | str) -> str:
    text = lines if isinstance(lines, str) else "".join(json.dumps(line) + "\n" for line in lines)
    return (await oai.files.create(file=("input.jsonl", text.encode()), purpose="batch")).id


async def until(oai: openai.AsyncOpenAI, batch_id: str, done: Callable[[Any], bool]) -> Any:
    for _ in range(600):
        batch = await oai.batches.retrieve(batch_id)
        if done(batch):
            return batch
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} never got there: {batch}")


def ended(batch: Any) -> bool:
    return batch.status in ("completed", "failed", "expired", "cancelled")
