"""llama.cpp's compute threads as the server leaves them between requests."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from tests.support.config import CHAT_MODEL, edge_with


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any], stored_embedding: str) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


def _llama_threads() -> list[str]:
    """Threads of the models' calls: Python's, and on Linux native ones (OpenMP's inherit the name)."""
    found = [thread.name for thread in threading.enumerate() if thread.name.startswith("llama-")]
    if sys.platform == "linux":
        for comm in Path("/proc/self/task").glob("*/comm"):
            try:
                name = comm.read_text().strip()
            except FileNotFoundError:  # the thread ended while we looked
                continue
            if name.startswith("llama-"):
                found.append(f"native {name}")
    return found


async def test_idle_models_keep_no_compute_threads(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    """Issue 15: the embedding model's idle OpenMP team made the chat model's barriers sleep instead of
    spin (decoding 3x slower on 2 cores, for good); no model may keep a team while it does nothing."""
    await oai.embeddings.create(model=stored_embedding, input=["the sea", "a lighthouse"])
    await oai.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=4
    )
    deadline = time.monotonic() + 10  # OpenMP's workers end just after the thread that led them
    while (left := _llama_threads()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert left == []
