"""Per-owner access, two users by every stored kind by every action (issue 17, point 2): files,
vector stores (their files, file batches, search, raw chunks), stored chat completions, prompts (and
a response naming one), and the registered models, shields and tool groups. Responses, conversations and agents:
test_access_threads.py; configured policies: test_access_policy.py.

alice creates, bob (who shares nothing with her) must find nothing: whatever he asks about her
resource answers exactly as for an id that does not exist; lists never show it. carol shares
alice's team, which Llama Stack's default policy lets in. Without a user (no authentication)
everything is visible, as before.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.support.documents import FILES
from tests.support.users import As

MISSING_FILE = "file-00000000000000000000000000000000"
MISSING_STORE = "vs_00000000000000000000000000000000"
MISSING_PROMPT = "pmpt_" + "0" * 48


@pytest.fixture
def server(access_app: TestClient[Any, Any]) -> TestClient[Any, Any]:
    return access_app


async def _upload(user: As, name: str = "lighthouse.md") -> str:
    async with user.openai() as client:
        uploaded = await client.files.create(file=(name, FILES[name]), purpose="assistants")
    return uploaded.id


async def _settled(user: As, store_id: str) -> dict[str, Any]:
    for _ in range(600):
        store = await user.ok("GET", f"/v1/vector_stores/{store_id}")
        if store["file_counts"]["in_progress"] == 0:
            return store  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError("ingestion did not finish")


async def test_files(server: TestClient[Any, Any], alice: As, bob: As) -> None:
    mine = await _upload(alice)
    theirs = await _upload(bob, "bread.html")
    assert [f["id"] for f in (await alice.ok("GET", "/v1/files"))["data"]] == [mine]
    assert [f["id"] for f in (await bob.ok("GET", "/v1/files"))["data"]] == [theirs]
    status, _ = await bob.call("GET", f"/v1/files?after={mine}")  # a cursor is no way in either
    assert status == (await bob.call("GET", f"/v1/files?after={MISSING_FILE}"))[0] == 400
    for method, path in (
        ("GET", f"/v1/files/{mine}"),
        ("GET", f"/v1/files/{mine}/content"),
        ("DELETE", f"/v1/files/{mine}"),
    ):
        await bob.hidden(method, path, mine, MISSING_FILE)
    assert (await alice.ok("GET", f"/v1/files/{mine}"))["id"] == mine  # bob's delete did nothing
    async with alice.openai() as client:
        assert (await client.files.content(mine)).content == FILES["lighthouse.md"]
    carol = As(server, "carol")  # shares alice's team: the default policy lets her in
    assert (await carol.ok("GET", f"/v1/files/{mine}"))["id"] == mine
    assert {f["id"] for f in (await As(server, None).ok("GET", "/v1/files"))["data"]} == {mine, theirs}
    assert (await alice.ok("DELETE", f"/v1/files/{mine}"))["deleted"] is True


async def test_vector_stores_their_files_batches_and_searches(
    server: TestClient[Any, Any], alice: As, bob: As, stored_embedding: str
) -> None:
    file_id = await _upload(alice)
    store = await alice.ok(
        "POST", "/v1/vector_stores", {"name": "a", "file_ids": [file_id], "embedding_model": stored_embedding}
    )
    vs = store["id"]
    await _settled(alice, vs)
    own = await bob.ok("POST", "/v1/vector_stores", {"name": "b", "embedding_model": stored_embedding})
    assert [s["id"] for s in (await bob.ok("GET", "/v1/vector_stores"))["data"]] == [own["id"]]
    assert [s["id"] for s in (await alice.ok("GET", "/v1/vector_stores"))["data"]] == [vs]
    query = {"query": "who lights the lamp?"}
    assert (await alice.ok("POST", f"/v1/vector_stores/{vs}/search", query))["data"]
    assert (await bob.ok("POST", f"/v1/vector_stores/{own['id']}/search", query))["data"] == []
    batch = await alice.ok("POST", f"/v1/vector_stores/{vs}/file_batches", {"file_ids": [file_id]})
    store_path, file_path, batch_path = (
        f"/v1/vector_stores/{vs}",
        f"/v1/vector_stores/{vs}/files/{file_id}",
        f"/v1/vector_stores/{vs}/file_batches/{batch['id']}",
    )
    for method, path, body in (
        ("GET", store_path, None),
        ("POST", store_path, {"name": "taken"}),
        ("POST", f"{store_path}/search", query),
        ("GET", f"{store_path}/files", None),
        ("POST", f"{store_path}/files", {"file_id": file_id}),
        ("GET", file_path, None),
        ("POST", file_path, {"attributes": {"k": "v"}}),
        ("GET", f"{file_path}/content", None),
        ("DELETE", file_path, None),
        ("POST", f"{store_path}/file_batches", {"file_ids": [file_id]}),
        ("GET", batch_path, None),
        ("GET", f"{batch_path}/files", None),
        ("POST", f"{batch_path}/cancel", None),
        ("POST", "/v1/vector-io/query", {"vector_store_id": vs, "query": "lamp"}),
        ("POST", "/v1/vector-io/insert", {"vector_store_id": vs, "chunks": [{"content": "x", "metadata": {}}]}),
        ("DELETE", store_path, None),
    ):
        await bob.hidden(method, path, vs, MISSING_STORE, body)
    # alice's file is not bob's to attach, to a store of his or a new one
    await bob.hidden("POST", f"/v1/vector_stores/{own['id']}/files", file_id, MISSING_FILE, {"file_id": file_id})
    # A store created with file_ids fails a file that does not exist (Llama Stack), and alice's alike, in words
    # that differ only by the id.
    failures = []
    for named in (file_id, MISSING_FILE):
        made = await bob.ok("POST", "/v1/vector_stores", {"file_ids": [named], "embedding_model": stored_embedding})
        assert made["file_counts"]["failed"] == 1 and made["file_counts"]["completed"] == 0
        (failed,) = (await bob.ok("GET", f"/v1/vector_stores/{made['id']}/files"))["data"]
        failures.append(json.dumps(failed["last_error"]).replace(named, "<id>"))
    assert failures[0] == failures[1]
    batch_of_hers = await bob.ok("POST", f"/v1/vector_stores/{own['id']}/file_batches", {"file_ids": [file_id]})
    assert batch_of_hers["file_counts"]["failed"] == 1  # as an unknown file fails in a batch
    after = await _settled(alice, vs)  # bob changed nothing
    assert after["name"] == "a" and after["file_counts"]["completed"] == 1
    assert (await alice.ok("GET", f"{file_path}/content"))["data"]
    assert (await alice.ok("DELETE", store_path))["deleted"] is True


async def test_stored_chat_completions(server: TestClient[Any, Any], alice: As, bob: As) -> None:
    async with alice.openai() as client:
        mine = await client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "capital?"}])
    async with bob.openai() as client:
        theirs = await client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "capital?"}])
        assert [c.id async for c in client.chat.completions.list()] == [theirs.id]
    assert [c["id"] for c in (await alice.ok("GET", "/v1/chat/completions"))["data"]] == [mine.id]
    await bob.hidden("GET", f"/v1/chat/completions/{mine.id}", mine.id, "chatcmpl-missing")
    status, _ = await bob.call("GET", f"/v1/chat/completions?after={mine.id}")
    assert status == (await bob.call("GET", "/v1/chat/completions?after=chatcmpl-missing"))[0] == 400
    assert (await alice.ok("GET", f"/v1/chat/completions/{mine.id}"))["id"] == mine.id
    everyone = await As(server, None).ok("GET", "/v1/chat/completions")
    assert {c["id"] for c in everyone["data"]} == {mine.id, theirs.id}


async def test_prompts(server: TestClient[Any, Any], alice: As, bob: As) -> None:
    mine = (await alice.ok("POST", "/v1/prompts", {"prompt": "Speak of {{ topic }}.", "variables": ["topic"]}))[
        "prompt_id"
    ]
    theirs = (await bob.ok("POST", "/v1/prompts", {"prompt": "Bob's."}))["prompt_id"]
    assert [p["prompt_id"] for p in (await alice.ok("GET", "/v1/prompts"))["data"]] == [mine]
    assert [p["prompt_id"] for p in (await bob.ok("GET", "/v1/prompts"))["data"]] == [theirs]
    path = f"/v1/prompts/{mine}"
    for method, where, body in (
        ("GET", path, None),
        ("GET", f"{path}?version=1", None),
        ("PUT", path, {"prompt": "Taken.", "version": 1}),
        ("PUT", f"{path}/set-default-version", {"version": 1}),
        ("GET", f"{path}/versions", None),
        ("DELETE", path, None),
    ):
        await bob.hidden(method, where, mine, MISSING_PROMPT, body)
    # nor can his responses use it
    asked = {"model": "chat", "input": "capital?", "prompt": {"id": mine, "variables": {"topic": "x"}}}
    await bob.hidden("POST", "/v1/responses", mine, MISSING_PROMPT, asked)
    assert (await alice.ok("POST", "/v1/responses", asked))["prompt"]["id"] == mine
    assert [v["version"] for v in (await alice.ok("GET", f"{path}/versions"))["data"]] == [1]  # bob changed nothing
    assert (await As(server, "carol").ok("GET", path))["prompt_id"] == mine  # shares alice's team
    everyone = await As(server, None).ok("GET", "/v1/prompts")
    assert {p["prompt_id"] for p in everyone["data"]} == {mine, theirs}
    status, _ = await alice.call("DELETE", path)
    assert status == 204


@pytest.mark.parametrize(
    ("collection", "body", "item"),
    [
        ("models", {"model_id": "alice-chat", "provider_id": "scripted", "provider_model_id": "chat"}, "alice-chat"),
        ("shields", {"shield_id": "alice-pii", "provider_id": "pii"}, "alice-pii"),
        ("toolgroups", {"toolgroup_id": "alice-rag", "provider_id": "file-search"}, "alice-rag"),
    ],
)
async def test_registered_resources(
    server: TestClient[Any, Any], alice: As, bob: As, collection: str, body: dict[str, Any], item: str
) -> None:
    status, _ = await alice.call("POST", f"/v1/{collection}", body)
    assert status in (200, 204)

    def ids(listed: dict[str, Any]) -> set[str]:
        return {entry.get("identifier") or entry.get("id") for entry in listed["data"]}

    assert item in ids(await alice.ok("GET", f"/v1/{collection}"))
    bobs = ids(await bob.ok("GET", f"/v1/{collection}"))
    assert item not in bobs and bobs  # what the config registered is everyone's
    missing = "nobody-here"
    await bob.hidden("GET", f"/v1/{collection}/{item}", item, missing)
    await bob.hidden("DELETE", f"/v1/{collection}/{item}", item, missing)
    if collection == "models":  # nor can he use it
        chat = {"model": item, "messages": [{"role": "user", "content": "capital?"}]}
        await bob.hidden("POST", "/v1/chat/completions", item, missing, chat)
        assert (await alice.ok("POST", "/v1/chat/completions", chat))["choices"]
    assert item in ids(await alice.ok("GET", f"/v1/{collection}"))
    assert item in ids(await As(server, None).ok("GET", f"/v1/{collection}"))
    status, _ = await alice.call("DELETE", f"/v1/{collection}/{item}")
    assert status in (200, 204)
    assert item not in ids(await alice.ok("GET", f"/v1/{collection}"))
