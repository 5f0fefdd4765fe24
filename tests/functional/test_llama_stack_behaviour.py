"""Where Llama Stack 0.7.1 and OpenAI differ, or Llama Stack is stricter, PocketStack answers as Llama Stack does:
each test goes through the official clients and names the Llama Stack source whose behaviour it pins (issue 16,
Conversations and Responses)."""

from __future__ import annotations

import llama_stack_client
import openai
import pytest

from tests.functional.test_responses import server
from tests.scripted_provider import scripted

__all__ = ["scripted", "server"]  # the fixtures: the scripted model, and the responses tests' app


async def test_deleting_a_conversation_item_answers_with_the_item(
    oai: openai.AsyncOpenAI, lls: llama_stack_client.AsyncLlamaStackClient
) -> None:
    # Llama Stack: core/conversations/conversations.py ConversationServiceImpl.openai_delete_conversation_item
    # returns ConversationItemDeletedResource(id=<the item's id>) (llama_stack_api/conversations/models.py).
    conversation = await oai.conversations.create(
        items=[
            {"type": "message", "role": "user", "content": "first"},
            {"type": "message", "role": "user", "content": "second"},
        ]
    )
    first, second = (await oai.conversations.items.list(conversation.id, order="asc")).data
    deleted = await lls.conversations.items.delete(first.id, conversation_id=conversation.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (first.id, "conversation.item.deleted", True)
    # OpenAI's client types the answer as the conversation; it decodes Llama Stack's body all the same.
    by_openai = await oai.conversations.items.delete(second.id, conversation_id=conversation.id)
    assert (by_openai.id, by_openai.object) == (second.id, "conversation.item.deleted")  # type: ignore[comparison-overlap]
    assert by_openai.model_extra == {"deleted": True}
    assert (await oai.conversations.items.list(conversation.id)).data == []
    with pytest.raises(llama_stack_client.NotFoundError) as missing:
        await lls.conversations.items.delete(first.id, conversation_id=conversation.id)
    # llama_stack_api/common/errors.py ConversationItemNotFoundError
    assert _message(missing.value) == (
        f"Conversation item '{first.id}' not found in conversation '{conversation.id}'. "
        f"Use 'client.conversations.items.list(\"{conversation.id}\")' to list available conversation items."
    )


def _message(error: openai.APIStatusError | llama_stack_client.APIStatusError) -> str:
    body = error.body
    assert isinstance(body, dict), body
    detail = body.get("error", body)
    return str(detail["message"])


async def test_not_found_messages_are_worded_as_llama_stack_words_them(
    oai: openai.AsyncOpenAI, lls: llama_stack_client.AsyncLlamaStackClient
) -> None:
    # llama_stack_api/common/errors.py ResponseNotFoundError and ModelNotFoundError (ResourceNotFoundError's
    # message with its ClientListCommand hint).
    with pytest.raises(openai.NotFoundError) as response:
        await oai.responses.retrieve("resp_nope")
    assert _message(response.value) == (
        "Response 'resp_nope' not found. Use 'client.responses.list()' to list available Responses."
    )
    with pytest.raises(llama_stack_client.NotFoundError) as model:
        await lls.models.retrieve("nope/nope")
    assert _message(model.value) == "Model 'nope/nope' not found. Use 'client.models.list()' to list available Models."
    with pytest.raises(openai.NotFoundError) as chat:
        await oai.chat.completions.create(model="nope/nope", messages=[{"role": "user", "content": "hi"}])
    assert _message(chat.value).startswith("Model 'nope/nope' not found. Use 'client.models.list()'")
    with pytest.raises(openai.NotFoundError) as conversation:  # ConversationNotFoundError: no hint
        await oai.conversations.retrieve("conv_nope")
    assert _message(conversation.value) == "Conversation 'conv_nope' not found."
    with pytest.raises(openai.NotFoundError) as file:  # OpenAIFileObjectNotFoundError
        await oai.files.retrieve("file-nope")
    assert _message(file.value) == "File 'file-nope' not found. Use 'client.files.list()' to list available Files."
