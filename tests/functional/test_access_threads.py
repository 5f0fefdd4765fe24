"""Per-owner access for what threads a dialogue: responses (their input items, events, chains),
conversations (their items) and agents (their sessions and turns). Two users, every action; the
matrix of the other kinds is test_access_matrix.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.support.users import As

MISSING_CONVERSATION = "conv_" + "0" * 48
MISSING_RESPONSE = "resp_00000000-0000-0000-0000-000000000000"
MISSING_UUID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def server(access_app: TestClient[Any, Any]) -> TestClient[Any, Any]:
    return access_app


async def test_responses_and_their_chains(server: TestClient[Any, Any], alice: As, bob: As) -> None:
    async with alice.openai() as client:
        mine = await client.responses.create(model="chat", input="capital?")
        follow = await client.responses.create(model="chat", input="capital?", previous_response_id=mine.id)
        assert follow.output_text == "Paris."
    async with bob.openai() as client:
        theirs = await client.responses.create(model="chat", input="capital?")
    assert [r["id"] for r in (await bob.ok("GET", "/v1/responses"))["data"]] == [theirs.id]
    assert {r["id"] for r in (await alice.ok("GET", "/v1/responses"))["data"]} == {mine.id, follow.id}
    for method, path in (
        ("GET", f"/v1/responses/{mine.id}"),
        ("GET", f"/v1/responses/{mine.id}/input_items"),
        ("GET", f"/v1/responses/{mine.id}?stream=true"),
        ("POST", f"/v1/responses/{mine.id}/cancel"),
        ("DELETE", f"/v1/responses/{mine.id}"),
    ):
        await bob.hidden(method, path, mine.id, MISSING_RESPONSE)
    continued = {"model": "chat", "input": "capital?", "previous_response_id": mine.id}
    await bob.hidden("POST", "/v1/responses", mine.id, MISSING_RESPONSE, continued)
    status, _ = await bob.call("GET", f"/v1/responses?after={mine.id}")
    assert status == (await bob.call("GET", f"/v1/responses?after={MISSING_RESPONSE}"))[0] == 400
    assert (await alice.ok("GET", f"/v1/responses/{mine.id}/input_items"))["data"]
    everyone = await As(server, None).ok("GET", "/v1/responses")
    assert {r["id"] for r in everyone["data"]} == {mine.id, follow.id, theirs.id}
    assert (await alice.ok("DELETE", f"/v1/responses/{mine.id}"))["deleted"] is True


async def test_a_response_cannot_search_anothers_vector_store(
    server: TestClient[Any, Any], alice: As, bob: As, stored_embedding: str
) -> None:
    store = await alice.ok("POST", "/v1/vector_stores", {"name": "a", "embedding_model": stored_embedding})
    searching = {
        "model": "chat",
        "input": "capital?",
        "tools": [{"type": "file_search", "vector_store_ids": [store["id"]]}],
    }
    await bob.hidden("POST", "/v1/responses", store["id"], "vs_" + "0" * 32, searching)
    assert (await alice.ok("POST", "/v1/responses", searching))["status"] == "completed"


async def test_conversations_and_their_items(server: TestClient[Any, Any], alice: As, bob: As) -> None:
    item = {"type": "message", "role": "user", "content": "capital?"}
    conversation = await alice.ok("POST", "/v1/conversations", {"items": [item], "metadata": {"k": "v"}})
    conv = conversation["id"]
    items = await alice.ok("GET", f"/v1/conversations/{conv}/items")
    item_id = items["data"][0]["id"]
    for method, path, body in (
        ("GET", f"/v1/conversations/{conv}", None),
        ("POST", f"/v1/conversations/{conv}", {"metadata": {"k": "bob"}}),
        ("GET", f"/v1/conversations/{conv}/items", None),
        ("POST", f"/v1/conversations/{conv}/items", {"items": [item]}),
        ("GET", f"/v1/conversations/{conv}/items/{item_id}", None),
        ("DELETE", f"/v1/conversations/{conv}/items/{item_id}", None),
        ("POST", "/v1/responses", {"model": "chat", "input": "capital?", "conversation": conv}),
        ("DELETE", f"/v1/conversations/{conv}", None),
    ):
        await bob.hidden(method, path, conv, MISSING_CONVERSATION, body)
    after = await alice.ok("GET", f"/v1/conversations/{conv}")
    assert after["metadata"] == {"k": "v"}
    assert len((await alice.ok("GET", f"/v1/conversations/{conv}/items"))["data"]) == 1  # bob added nothing
    await alice.ok("POST", "/v1/responses", {"model": "chat", "input": "capital?", "conversation": conv})
    assert len((await alice.ok("GET", f"/v1/conversations/{conv}/items"))["data"]) == 3
    assert (await alice.ok("DELETE", f"/v1/conversations/{conv}"))["deleted"] is True


async def _agent(user: As) -> str:
    config = {"agent_config": {"model": "chat", "instructions": "You are terse."}}
    return str((await user.ok("POST", "/v1alpha/agents", config))["agent_id"])


async def test_agents_sessions_and_turns(server: TestClient[Any, Any], alice: As, bob: As) -> None:
    mine, theirs = await _agent(alice), await _agent(bob)
    session = (await alice.ok("POST", f"/v1alpha/agents/{mine}/session", {"session_name": "s"}))["session_id"]
    turn = await alice.ok(
        "POST",
        f"/v1alpha/agents/{mine}/session/{session}/turn",
        {"messages": [{"role": "user", "content": "capital?"}], "stream": False},
    )
    assert [a["agent_id"] for a in (await bob.ok("GET", "/v1alpha/agents"))["data"]] == [theirs]
    assert [a["agent_id"] for a in (await alice.ok("GET", "/v1alpha/agents"))["data"]] == [mine]
    base = f"/v1alpha/agents/{mine}"
    for method, path, body in (
        ("GET", base, None),
        ("POST", f"{base}/session", {"session_name": "b"}),
        ("GET", f"{base}/sessions", None),
        ("GET", f"{base}/session/{session}", None),
        ("POST", f"{base}/session/{session}/turn", {"messages": [{"role": "user", "content": "capital?"}]}),
        ("GET", f"{base}/session/{session}/turn/{turn['turn_id']}", None),
        ("DELETE", f"{base}/session/{session}", None),
        ("DELETE", base, None),
    ):
        await bob.hidden(method, path, mine, MISSING_UUID, body)
    assert (await alice.ok("GET", f"{base}/session/{session}"))["turns"]


async def test_sessions_of_a_shared_agent_stay_their_owners(server: TestClient[Any, Any], alice: As, bob: As) -> None:
    shared = await _agent(As(server, None))  # unowned: everyone may use it
    base = f"/v1alpha/agents/{shared}"
    session = (await alice.ok("POST", f"{base}/session", {"session_name": "a"}))["session_id"]
    other = (await bob.ok("POST", f"{base}/session", {"session_name": "b"}))["session_id"]
    assert [s["session_id"] for s in (await bob.ok("GET", f"{base}/sessions"))["data"]] == [other]
    for method, path, body in (
        ("GET", f"{base}/session/{session}", None),
        ("POST", f"{base}/session/{session}/turn", {"messages": [{"role": "user", "content": "capital?"}]}),
        ("DELETE", f"{base}/session/{session}", None),
    ):
        await bob.hidden(method, path, session, MISSING_UUID, body)
    assert (await alice.ok("GET", f"{base}/session/{session}"))["session_name"] == "a"
