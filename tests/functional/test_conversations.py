"""Conversations through the `openai` client, and responses that read and extend them (scripted model)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from tests.support.errors import assert_error_shape
from tests.support.items import first_text


@pytest.fixture
def server(responses_app: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The responses tests' app (conftest): the scripted model answers the responses that read conversations."""
    return responses_app


async def test_a_conversation_and_its_items(oai: openai.AsyncOpenAI) -> None:
    conversation = await oai.conversations.create(
        items=[{"type": "message", "role": "user", "content": "first"}], metadata={"topic": "demo"}
    )
    assert conversation.id.startswith("conv_") and conversation.metadata == {"topic": "demo"}
    assert (await oai.conversations.retrieve(conversation.id)).created_at == conversation.created_at
    updated = await oai.conversations.update(conversation.id, metadata={"topic": "renamed"})
    assert updated.metadata == {"topic": "renamed"}
    added = await oai.conversations.items.create(
        conversation.id,
        items=[
            {"type": "message", "role": "assistant", "content": "second"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "third"}]},
        ],
    )
    assert len(added.data) == 2
    listed = await oai.conversations.items.list(conversation.id)  # newest first
    assert [first_text(item) for item in listed.data] == ["third", "second", "first"]
    ascending = await oai.conversations.items.list(conversation.id, order="asc", limit=2)
    assert [first_text(item) for item in ascending.data] == ["first", "second"] and ascending.has_more
    added_id = added.data[0].id
    assert added_id is not None
    one = await oai.conversations.items.retrieve(added_id, conversation_id=conversation.id)
    assert one.id == added.data[0].id
    after = await oai.conversations.items.delete(added_id, conversation_id=conversation.id)
    # Llama Stack's answer (core/conversations/conversations.py: openai_delete_conversation_item), not OpenAI's
    assert (after.id, after.object) == (added_id, "conversation.item.deleted")
    assert len((await oai.conversations.items.list(conversation.id)).data) == 2
    deleted = await oai.conversations.delete(conversation.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        await oai.conversations.retrieve(conversation.id)


async def test_responses_read_and_extend_a_conversation(
    oai: openai.AsyncOpenAI, scripted: list[models.ChatCompletionRequest]
) -> None:
    conversation = await oai.conversations.create()
    first = await oai.responses.create(model="chat", input="capital?", conversation=conversation.id)
    assert first.output_text == "Paris." and first.conversation is not None and first.conversation.id == conversation.id
    second = await oai.responses.create(model="chat", input="thanks", conversation=conversation.id, stream=False)
    assert second.output_text == "You said: thanks"
    assert [m.role for m in scripted[-1].messages] == ["user", "assistant", "user"]
    items = await oai.conversations.items.list(conversation.id, order="asc")
    texts = [first_text(item) for item in items.data]
    assert texts == ["capital?", "Paris.", "thanks", "You said: thanks"]
    streamed = await oai.responses.create(model="chat", input="again", conversation=conversation.id, stream=True)
    async for _event in streamed:
        pass
    assert len((await oai.conversations.items.list(conversation.id)).data) == 6


async def test_conversation_errors(server: TestClient[Any, Any]) -> None:
    unknown = "conv_" + "0" * 48  # well formed, not there: 404
    for method, path, body, status in (
        ("GET", f"/v1/conversations/{unknown}", None, 404),
        ("POST", f"/v1/conversations/{unknown}", {"metadata": {}}, 404),
        ("DELETE", f"/v1/conversations/{unknown}", None, 404),
        ("GET", f"/v1/conversations/{unknown}/items", None, 404),
        ("POST", f"/v1/conversations/{unknown}/items", {"items": [{"role": "user", "content": "x"}]}, 404),
        ("POST", "/v1/conversations", {"items": [{"type": "mystery"}]}, 400),
        ("POST", "/v1/responses", {"model": "chat", "input": "x", "conversation": unknown}, 404),
        # Malformed ids are a 400 before any lookup, as Llama Stack answers them (conversations.py
        # _validate_conversation_id: conv_ + 48 lowercase hex; this build's older 32-hex ids stay valid).
        ("GET", "/v1/conversations/conv_nope", None, 400),
        ("POST", "/v1/conversations/conv_nope", {"metadata": {}}, 400),
        ("DELETE", "/v1/conversations/conv_nope", None, 400),
        ("GET", "/v1/conversations/conv_nope/items", None, 400),
        ("DELETE", "/v1/conversations/conv_nope/items/msg_1", None, 400),
        ("POST", "/v1/responses", {"model": "chat", "input": "x", "conversation": "conv_nope"}, 400),
    ):
        response = await server.request(method, path, json=body)
        assert response.status == status, (path, await response.text())
        assert_error_shape(await response.json())
    created = await (await server.post("/v1/conversations", json={})).json()
    item = {"type": "message", "id": "msg_1", "role": "user", "content": "x"}
    assert (await server.post(f"/v1/conversations/{created['id']}/items", json={"items": [item]})).status == 200
    again = await server.post(f"/v1/conversations/{created['id']}/items", json={"items": [item]})
    assert again.status == 409  # an id is an item's, once per conversation
    empty = await server.post("/v1/conversations")  # no body at all, as the SDK sends it
    assert empty.status == 200, await empty.text()
