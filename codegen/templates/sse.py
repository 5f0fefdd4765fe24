"""Server-sent events for the SDK: `data: <json>` frames as typed chunks, errors as exceptions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class PocketStackError(Exception):
    """The server answered with its error shape; `status` and `body` carry what it said."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.body = body
        self.message = error.get("message", str(body)) if isinstance(error, dict) else str(body)
        self.code = error.get("code") if isinstance(error, dict) else None
        super().__init__(f"{status}: {self.message}")


def _error(status: int, raw: bytes) -> PocketStackError:
    try:
        return PocketStackError(status, json.loads(raw))
    except ValueError:
        return PocketStackError(status, {"error": {"message": raw.decode("utf-8", "replace")}})


def _parse(line: str, parse: Callable[[dict[str, Any]], T]) -> T | None:
    """A chunk, None for lines that carry none; raises on an error frame; StopIteration on [DONE]."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        raise StopIteration
    data = json.loads(payload)
    if isinstance(data, dict) and "error" in data:
        code = data["error"].get("code") if isinstance(data["error"], dict) else None
        raise PocketStackError(int(str(code)) if str(code).isdigit() else 500, data)
    return parse(data)


def iterate(client: httpx.Client, path: str, body: dict[str, Any], parse: Callable[[dict[str, Any]], T]) -> Iterator[T]:
    with client.stream("POST", path, json=body, headers={"Accept": "text/event-stream"}) as response:
        if response.status_code >= 400:
            raise _error(response.status_code, response.read())
        for line in response.iter_lines():
            try:
                chunk = _parse(line, parse)
            except StopIteration:
                return
            if chunk is not None:
                yield chunk


async def aiterate(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], parse: Callable[[dict[str, Any]], T]
) -> AsyncIterator[T]:
    async with client.stream("POST", path, json=body, headers={"Accept": "text/event-stream"}) as response:
        if response.status_code >= 400:
            raise _error(response.status_code, await response.aread())
        async for line in response.aiter_lines():
            try:
                chunk = _parse(line, parse)
            except StopIteration:
                return
            if chunk is not None:
                yield chunk
