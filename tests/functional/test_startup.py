"""Start-up in two halves (app.py): the server listens before the APIs load, and waits for them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from pocketstack import assembly
from pocketstack.app import create_app
from pocketstack.config import ConfigError
from tests.support.config import REPO, edge_with
from tests.support.errors import assert_error_shape

# Imported by the heavy half only; none may load before the server listens.
HEAVY_MODULES = (
    "pocketstack._generated.models",
    "pocketstack._generated.routes",
    "pocketstack.apis.inference.api",
    "pocketstack.providers.inline.llama_cpp.provider",
    "pocketstack.providers.remote.openai_compat",
    "llama_cpp",
    "numpy",
)


def test_nothing_heavy_is_imported_before_the_server_listens_nor_llama_cpp_before_a_request() -> None:
    probe = f"""
import asyncio, json, sys
from aiohttp import web
from pocketstack.app import create_app
from pocketstack.cli import _load

async def main():
    runner = web.AppRunner(create_app(_load(None)))
    await runner.setup()  # runs the start-up half that precedes listening
    loaded = [name for name in {HEAVY_MODULES!r} if name in sys.modules]
    await app_ready(runner)
    after = [name for name in ("llama_cpp", "numpy", "pypdf") if name in sys.modules]
    print(json.dumps([loaded, after]))
    await runner.cleanup()

async def app_ready(runner):
    from pocketstack.app import READINESS
    await runner.app[READINESS].task

asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(result.stdout.splitlines()[-1]) == [[], []]  # the model runtime waits for a request


@pytest.fixture
def held_assembly(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Holds the heavy half of start-up until the test sets the event."""
    release = asyncio.Event()
    real = assembly.assemble

    async def held(*args: Any) -> Any:
        await release.wait()
        return await real(*args)

    monkeypatch.setattr(assembly, "assemble", held)
    return release


async def test_health_answers_while_the_apis_load_and_requests_wait(
    aiohttp_client: Callable[..., Any], held_assembly: asyncio.Event
) -> None:
    client = await aiohttp_client(create_app(edge_with()))
    health = await client.get("/v1/health")
    assert health.status == 200 and await health.json() == {"status": "OK"}
    listing = asyncio.create_task(client.get("/v1/models"))
    await asyncio.sleep(0.2)
    assert not listing.done()
    held_assembly.set()
    response = await asyncio.wait_for(listing, 30)
    assert response.status == 200 and (await response.json())["data"]


async def test_a_client_that_leaves_does_not_cancel_start_up(
    aiohttp_client: Callable[..., Any], held_assembly: asyncio.Event
) -> None:
    client = await aiohttp_client(create_app(edge_with()))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(client.get("/v1/models"), 0.2)
    held_assembly.set()
    response = await client.get("/v1/models")
    assert response.status == 200


async def test_a_failure_while_the_apis_load_is_a_503_and_unhealthy(
    aiohttp_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(*args: Any) -> Any:
        raise ConfigError("registered_resources.models[0] (x): no such file")

    monkeypatch.setattr(assembly, "assemble", failing)
    client = await aiohttp_client(create_app(edge_with()))
    response = await client.get("/v1/models")
    assert response.status == 503
    assert (
        "failed to start: registered_resources.models[0] (x): no such file"
        in assert_error_shape(await response.json())["message"]
    )
    health = await client.get("/v1/health")
    assert health.status == 503 and (await health.json())["status"] == "Error"
