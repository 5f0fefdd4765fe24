"""The CLI's own serve(): graceful shutdown, and JSON errors from aiohttp's HTTP parser."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from pocketstack._generated import models
from pocketstack.apis.inspect import InspectApi
from pocketstack.cli import serve
from pocketstack.core.stack import Stack
from tests.support.config import edge_with
from tests.support.process import free_port


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


def _raw(port: int, data: bytes) -> tuple[bytes, bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    content_type = next((line for line in lines if line.lower().startswith(b"content-type")), b"")
    return lines[0], content_type, body


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /v1/models/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n",
    ],
)
async def test_requests_the_http_parser_rejects_get_json(data: bytes) -> None:
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(edge_with(server={"port": port}), stop))
    try:
        for _ in range(100):
            try:
                status, content_type, body = await asyncio.to_thread(_raw, port, data)
                break
            except ConnectionRefusedError:
                await asyncio.sleep(0.05)
        assert status.split()[1] == b"400", status
        assert b"application/json" in content_type
        error = json.loads(body)["error"]
        assert error["type"] == "invalid_request_error" and len(error["message"]) < 400
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


async def test_long_model_ids_fit_in_a_request_line() -> None:
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(edge_with(server={"port": port}), stop))
    try:
        for _ in range(100):
            try:
                data = b"GET /v1/models/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                status, _, body = await asyncio.to_thread(_raw, port, data)
                break
            except ConnectionRefusedError:
                await asyncio.sleep(0.05)
        assert status.split()[1] == b"404" and b"not found" in body
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


# SmolLM2's end-of-generation tokens, banned so that an abandoned answer would really run long.
NO_END = {"0": -100, "2": -100, "4": -100}


async def test_a_client_that_hangs_up_stops_a_non_streamed_generation() -> None:
    """pocketstack run cancels the handler of a vanished client, which stops llama.cpp: the model
    is free for the next request long before the abandoned 3000 tokens would have been made."""
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(edge_with(server={"port": port}), stop))
    chat = "llama-cpp/SmolLM2-135M-Instruct"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    await session.get(f"http://127.0.0.1:{port}/v1/health")
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            body = {"model": chat, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3000,
                    "logit_bias": NO_END}  # fmt: skip
            abandoned = asyncio.create_task(session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body))
            await asyncio.sleep(1.0)  # generating by now
            abandoned.cancel()  # the client hangs up
            quick = {"model": chat, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
            started = asyncio.get_running_loop().time()
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=quick) as response:
                assert response.status == 200
            # 3000 tokens take 45 s or more here; the abandoned one must not hold the model that long.
            assert asyncio.get_running_loop().time() - started < 20
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)
