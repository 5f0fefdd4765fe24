"""A misbehaving OpenAI-compatible server on loopback, for the remote provider's fault tests.

One real aiohttp server plays every fault; the first path segment names the one a request gets
(`http://127.0.0.1:PORT/<fault>/v1`), so each fault is its own remote provider with its own
circuit breaker. `GET .../models` always answers well: the health probe sees the remote up and only
the answers misbehave. Every connection a request came on is kept, so a test can check that none
is left open after a fault (a leaked connection). Handlers that wait (hang, trickle) stop when the
server closes, so teardown never waits for them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

# The faults. Each answers a streamed and a non-streamed request in its own way.
OK = "ok"  # a good answer
HANG = "hang"  # accepts the request, never sends a byte
DROP_EARLY = "drop-early"  # closes the connection before answering
DROP_MID = "drop-mid"  # streams a first chunk, then cuts the connection
GARBAGE = "garbage"  # 200 with a body that is not JSON (streamed: a data line that is not JSON)
GARBAGE_MID = "garbage-mid"  # streams a first good chunk, then a data line that is not JSON
ERROR_200 = "error-200"  # 200 with an OpenAI error body (streamed: an error event first)
ERROR_MID = "error-mid"  # streams a first good chunk, then an error event
TRICKLE = "trickle"  # 200, then a byte at a time, each well within any read timeout, never finishing
TRUNCATED = "truncated"  # streams a first chunk and ends the body cleanly: no finish_reason, no [DONE]
FAULTS = (OK, HANG, DROP_EARLY, DROP_MID, GARBAGE, GARBAGE_MID, ERROR_200, ERROR_MID, TRICKLE, TRUNCATED)
TRICKLE_EVERY_S = 0.1
UPSTREAM_ERROR = "the upstream model is overloaded"


def _chunk(text: str, finish: str | None = None) -> bytes:
    delta = {"role": "assistant", "content": text} if text else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    body = {"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": "upstream", "choices": [choice]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _completion(text: str) -> dict[str, Any]:
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    return {"id": "up-1", "object": "chat.completion", "created": 1, "model": "upstream", "choices": [choice],
            "usage": usage}  # fmt: skip


class FaultServer:
    def __init__(self) -> None:
        self.requests: dict[str, int] = dict.fromkeys(FAULTS, 0)  # chat requests per fault
        self.connections: dict[str, list[asyncio.BaseTransport]] = {fault: [] for fault in FAULTS}
        self.closing = asyncio.Event()
        self.server: TestServer | None = None

    def url(self, fault: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(f"/{fault}/v1"))

    def open_connections(self, fault: str) -> int:
        """Connections a request of this fault came on that the client has not closed."""
        return sum(1 for transport in self.connections[fault] if not transport.is_closing())

    async def settled(self, fault: str, within_s: float = 5.0) -> int:
        """open_connections once the client had `within_s` to close them (its close reaches us a bit later)."""
        deadline = time.monotonic() + within_s
        while self.open_connections(fault) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.open_connections(fault)

    async def _wait(self, seconds: float) -> None:
        """Sleep, cut short when the server closes."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), seconds)

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "upstream", "object": "model"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        fault = request.match_info["fault"]
        if fault not in self.requests:
            raise web.HTTPNotFound()
        self.requests[fault] += 1
        assert request.transport is not None
        self.connections[fault].append(request.transport)
        body = await request.json()
        # Every answer ends its connection (`Connection: close`): a complete answer leaves none open on either
        # side, so one still open afterwards is one the client held on to (a leak), not an idle keep-alive.
        if fault == HANG:
            await self._wait(3600)
            raise web.HTTPServiceUnavailable()
        if fault == DROP_EARLY:
            request.transport.close()
            return web.Response()  # never sent: the connection is gone
        response = await (self._stream(request, fault) if body.get("stream") else self._answer(request, fault))
        response.force_close()  # (streams: before their headers went out)
        return response

    async def _answer(self, request: web.Request, fault: str) -> web.StreamResponse:
        if fault in (GARBAGE, GARBAGE_MID):
            return web.Response(text='{"choices": [{"mess', content_type="application/json")
        if fault in (ERROR_200, ERROR_MID):
            return web.json_response({"error": {"message": UPSTREAM_ERROR, "type": "server_error"}})
        if fault == TRICKLE:  # JSON may start with any amount of blank space: a body that never ends
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.force_close()
            await response.prepare(request)
            while not self.closing.is_set():
                await response.write(b" ")
                await self._wait(TRICKLE_EVERY_S)
            return response
        return web.json_response(_completion("from the remote"))

    async def _stream(self, request: web.Request, fault: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.force_close()
        await response.prepare(request)
        if fault == GARBAGE:
            await response.write(b"data: {not json\n\n")
        elif fault == ERROR_200:
            await response.write(b"data: " + json.dumps({"error": {"message": UPSTREAM_ERROR}}).encode() + b"\n\n")
        elif fault == TRICKLE:
            for byte in _chunk("slow"):  # the first chunk, a byte at a time, never ending
                await response.write(bytes([byte]))
                await self._wait(TRICKLE_EVERY_S)
                if self.closing.is_set():
                    return response
            await self._wait(3600)
        else:
            await response.write(_chunk("from "))
            await asyncio.sleep(0.05)  # the first chunk reaches the client on its own
            if fault == DROP_MID:
                assert request.transport is not None
                request.transport.abort()
                return response
            if fault == GARBAGE_MID:
                await response.write(b"data: {not json\n\n")
            elif fault == ERROR_MID:
                await response.write(b"data: " + json.dumps({"error": {"message": UPSTREAM_ERROR}}).encode() + b"\n\n")
            elif fault == OK:
                await response.write(_chunk("the remote"))
                await response.write(_chunk("", "stop"))
                await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@asynccontextmanager
async def fault_server() -> AsyncIterator[FaultServer]:
    faults = FaultServer()
    app = web.Application()
    app.router.add_get("/{fault}/v1/models", faults.models)
    app.router.add_post("/{fault}/v1/chat/completions", faults.chat)
    faults.server = TestServer(app)
    async with faults.server:
        try:
            yield faults
        finally:
            faults.closing.set()  # before the server closes: it waits for its handlers
