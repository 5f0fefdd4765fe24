"""llama.cpp's compute threads as the server leaves them between requests."""

from __future__ import annotations

import asyncio
import os
import subprocess
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
from tests.support.config import CHAT_MODEL, REPO, edge_with


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


FIRST_MODEL_IN_A_FRESH_PROCESS = """
import asyncio, sys
from pathlib import Path
import openai
from aiohttp.test_utils import TestClient, TestServer
from pocketstack.app import create_app
from tests.support.config import CHAT_MODEL, REPO, edge_with

async def main() -> None:
    async with TestClient(TestServer(create_app(edge_with()))) as client:
        oai = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="none")
        await oai.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    await asyncio.sleep(2)  # OpenMP's workers end just after the thread that led them
    names = [c.read_text().strip() for c in Path("/proc/self/task").glob("*/comm")]
    print([n for n in names if n.startswith("llama-")])

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="native thread names are read from /proc")
def test_the_first_model_of_a_process_leaves_no_thread_behind(home: Path) -> None:
    """llama.cpp's libraries start one native thread, for the life of the process, in the thread that
    loads them: when that was the first model's loader, the thread took its name and looked like a
    compute thread kept by an idle model (this file's check failed whenever a test importing
    llama.cpp on the main thread had not run before). Needs a fresh interpreter."""
    run = subprocess.run(
        [sys.executable, "-c", FIRST_MODEL_IN_A_FRESH_PROCESS],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "POCKETSTACK_HOME": str(home)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"
