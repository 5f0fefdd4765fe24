"""Graceful shutdown through the CLI's own serve(): in-flight requests finish, stores close."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from pocketstack._generated import models
from pocketstack.apis.inspect import InspectApi
from pocketstack.cli import serve
from pocketstack.stack import Stack
from tests.conftest import edge_with
from tests.process.server import free_port


async def test_in_flight_request_finishes_after_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    entered = asyncio.Event()

    async def slow_health(self: InspectApi) -> models.HealthInfo:
        entered.set()
        await asyncio.sleep(0.5)
        return models.HealthInfo(status=models.HealthStatus.OK)

    closed: list[bool] = []
    original_stop = Stack.stop

    async def recording_stop(self: Stack) -> None:
        await original_stop(self)
        closed.append(True)

    monkeypatch.setattr(InspectApi, "health", slow_health)
    monkeypatch.setattr(Stack, "stop", recording_stop)
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(edge_with(server={"port": port}), stop))
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                request = asyncio.create_task(session.get(f"http://127.0.0.1:{port}/v1/health"))
                await asyncio.wait_for(entered.wait(), 0.2)
                break
            except (TimeoutError, aiohttp.ClientConnectionError):
                request.cancel()
        stop.set()  # what SIGTERM does
        response = await request
        assert response.status == 200
        assert await response.json() == {"status": "OK"}
    await asyncio.wait_for(server, 10)
    assert closed == [True]
