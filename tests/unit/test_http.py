"""How answers are written: JSON, 204, and SSE frames (including a failing stream)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from codegen.header import header
from codegen.server import emit_operations, emit_protocols, emit_routes
from codegen.spec import load_spec
from pocketstack._generated import models
from pocketstack.errors import UpstreamError
from pocketstack.web import codec
from pocketstack.web.middlewares import error_middleware
from tests.support.config import REPO


async def _chunks(fail: Exception | None) -> AsyncIterator[models.HealthInfo]:
    yield models.HealthInfo(status=models.HealthStatus.OK)
    yield models.HealthInfo(status=models.HealthStatus.Error)
    if fail is not None:
        raise fail


def _app(fail: Exception | None) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await codec.respond(request, _chunks(fail), status=200)

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/stream", handler)
    return app


def _frames(text: str) -> list[str]:
    assert text.endswith("\n\n")
    frames = text.split("\n\n")[:-1]
    assert all(frame.startswith("data: ") for frame in frames)
    return [frame.removeprefix("data: ") for frame in frames]


async def test_sse_frames_end_with_done(aiohttp_client: Callable[..., Any]) -> None:
    client = await aiohttp_client(_app(None))
    response = await client.get("/stream")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    frames = _frames(await response.text())
    assert [json.loads(f) for f in frames[:-1]] == [{"status": "OK"}, {"status": "Error"}]
    assert frames[-1] == "[DONE]"


async def test_failed_stream_ends_with_an_error_frame(aiohttp_client: Callable[..., Any]) -> None:
    client = await aiohttp_client(_app(UpstreamError("remote went away")))
    frames = _frames(await (await client.get("/stream")).text())
    assert len(frames) == 3
    assert json.loads(frames[-1]) == {"error": {"message": "remote went away", "type": "upstream_error", "code": "502"}}


async def test_unexpected_stream_failure_hides_details(aiohttp_client: Callable[..., Any]) -> None:
    client = await aiohttp_client(_app(RuntimeError("secret")))
    last = json.loads(_frames(await (await client.get("/stream")).text())[-1])
    assert last["error"]["code"] == "500" and "secret" not in last["error"]["message"]


def test_streaming_operations_generate_typed_code(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO / "spec/openapi.yaml").read_text())
    document["components"]["schemas"]["EchoRequest"] = {
        "type": "object",
        "properties": {"stream": {"type": "boolean"}},
    }
    sse = {"$ref": "#/components/schemas/HealthInfo"}
    document["paths"]["/v1/echo"] = {
        "post": {
            "operationId": "echo",
            "tags": ["Inspect"],
            "x-stream": {"field": "stream"},
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/EchoRequest"}}}},
            "responses": {
                "200": {
                    "description": "ok",
                    "content": {"application/json": {"schema": sse}, "text/event-stream": {"schema": sse}},
                }
            },
        }
    }
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    spec = load_spec(path)
    protocols = emit_protocols(spec, header())
    assert (
        "async def echo(self, request: models.EchoRequest) -> models.HealthInfo | AsyncIterator[models.HealthInfo]:"
        in protocols
    )
    routes = emit_routes(spec, header())
    assert 'body="optional"' in routes and "'echo': self.echo" in routes
    operations = emit_operations(spec, header())
    assert "OperationInfo('echo', 'Inspect', 'POST', '/v1/echo', '/v1/echo', 'v1', False, True)" in operations
    assert "import" not in operations.replace("from __future__ import annotations", "").replace(
        "from dataclasses import dataclass", ""
    )  # the table must stay light: the app reads it before anything heavy is imported
    compile(protocols, "protocols.py", "exec")
    compile(routes, "routes.py", "exec")
    compile(operations, "operations.py", "exec")
