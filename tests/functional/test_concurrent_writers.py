"""Many writers at once in one server never see "database is locked" (issue 21 §4): uploads, vector
store creates, prompt versions and conversation items fired together at one in-process server all
land, each exactly once; concurrent updates of one prompt from the same version are the spec's
compare-and-set (one lands, the rest 409), never a storage error."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from tests.support.config import edge_with

UPLOADS = 24
STORES = 8
PROMPTS = 6
VERSIONS = 4  # each prompt's versions, saved one after another while every other writer runs
ITEMS = 24
RACERS = 8  # updates of one prompt from the same version


async def _ok(server: TestClient[Any, Any], method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = await server.request(method, path, **kwargs)
    body: dict[str, Any] = await response.json()
    assert response.status == 200, (method, path, response.status, body)
    return body


async def _upload(server: TestClient[Any, Any], n: int) -> str:
    form = aiohttp.FormData({"purpose": "assistants"})
    form.add_field("file", f"upload {n}".encode(), filename=f"upload-{n}.txt")
    return str((await _ok(server, "POST", "/v1/files", data=form))["id"])


async def _store(server: TestClient[Any, Any], n: int, embedding: str) -> str:
    return str(
        (await _ok(server, "POST", "/v1/vector_stores", json={"name": f"s{n}", "embedding_model": embedding}))["id"]
    )


async def _prompt(server: TestClient[Any, Any], n: int) -> str:
    prompt_id = str((await _ok(server, "POST", "/v1/prompts", json={"prompt": f"p{n} v1"}))["prompt_id"])
    for version in range(1, VERSIONS):
        await _ok(
            server, "PUT", f"/v1/prompts/{prompt_id}", json={"prompt": f"p{n} v{version + 1}", "version": version}
        )
    return prompt_id


async def _item(server: TestClient[Any, Any], conversation: str, n: int) -> None:
    message = {"type": "message", "role": "user", "content": f"item {n}"}
    await _ok(server, "POST", f"/v1/conversations/{conversation}/items", json={"items": [message]})


async def _race(server: TestClient[Any, Any], prompt_id: str, n: int) -> int:
    body = {"prompt": f"racer {n}", "version": 1}
    response = await server.put(f"/v1/prompts/{prompt_id}", json=body)
    assert response.status in (200, 409), await response.text()
    return response.status


async def test_many_writers_at_once_all_land(aiohttp_client: Callable[..., Any], stored_embedding: str) -> None:
    server: TestClient[Any, Any] = await aiohttp_client(create_app(edge_with()))
    conversation = str((await _ok(server, "POST", "/v1/conversations", json={}))["id"])
    raced = str((await _ok(server, "POST", "/v1/prompts", json={"prompt": "raced v1"}))["prompt_id"])

    async with asyncio.timeout(120):
        work = await asyncio.gather(
            asyncio.gather(*(_upload(server, n) for n in range(UPLOADS))),
            asyncio.gather(*(_store(server, n, stored_embedding) for n in range(STORES))),
            asyncio.gather(*(_prompt(server, n) for n in range(PROMPTS))),
            asyncio.gather(*(_item(server, conversation, n) for n in range(ITEMS))),
            asyncio.gather(*(_race(server, raced, n) for n in range(RACERS))),
        )
    uploads, stores, prompts, _, races = work

    files = await _ok(server, "GET", "/v1/files", params={"limit": "100"})
    assert set(uploads) <= {item["id"] for item in files["data"]} and len(set(uploads)) == UPLOADS
    listed = await _ok(server, "GET", "/v1/vector_stores", params={"limit": "100"})
    assert set(stores) <= {item["id"] for item in listed["data"]} and len(set(stores)) == STORES
    for n, prompt_id in enumerate(prompts):
        versions = await _ok(server, "GET", f"/v1/prompts/{prompt_id}/versions")
        assert sorted(v["prompt"] for v in versions["data"]) == [f"p{n} v{k}" for k in range(1, VERSIONS + 1)]
    items = await _ok(server, "GET", f"/v1/conversations/{conversation}/items", params={"limit": "100"})
    texts = Counter(part["text"] for item in items["data"] for part in item["content"])
    assert texts == Counter(f"item {n}" for n in range(ITEMS))  # each once: none lost, none doubled
    assert sorted(races) == [200] + [409] * (RACERS - 1)  # compare-and-set: exactly one update from v1 lands
    versions = await _ok(server, "GET", f"/v1/prompts/{raced}/versions")
    assert len(versions["data"]) == 2
