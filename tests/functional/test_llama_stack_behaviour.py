"""Where Llama Stack 0.7.1 and OpenAI differ, or Llama Stack is stricter, PocketStack answers as Llama Stack does:
each test goes through the official clients and names the Llama Stack source whose behaviour it pins (issue 16,
Conversations and Responses)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import create_app
from pocketstack.errors import TooManyRequestsError, UpstreamError
from pocketstack.providers import PROVIDERS
from pocketstack.providers.base import ProviderSpec
from pocketstack.storage import chat_completions
from tests.support.config import edge_providers_with, edge_with
from tests.support.scripted import ScriptedConfig, ScriptedModel


@pytest.fixture
def server(responses_app: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The responses tests' app (conftest): the scripted model "chat"."""
    return responses_app


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
    listed = await oai.conversations.items.list(conversation.id, order="asc")
    first, second = [str(item.id) for item in listed.data]
    deleted = await lls.conversations.items.delete(first, conversation_id=conversation.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (first, "conversation.item.deleted", True)
    # OpenAI's client types the answer as the conversation; it decodes Llama Stack's body all the same.
    by_openai = await oai.conversations.items.delete(second, conversation_id=conversation.id)
    assert (by_openai.id, by_openai.object) == (second, "conversation.item.deleted")
    assert by_openai.model_extra == {"deleted": True}
    assert (await oai.conversations.items.list(conversation.id)).data == []
    with pytest.raises(llama_stack_client.NotFoundError) as missing:
        await lls.conversations.items.delete(first, conversation_id=conversation.id)
    # llama_stack_api/common/errors.py ConversationItemNotFoundError
    assert _message(missing.value) == (
        f"Conversation item '{first}' not found in conversation '{conversation.id}'. "
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
    unknown = "conv_" + "0" * 48
    with pytest.raises(openai.NotFoundError) as conversation:  # ConversationNotFoundError: no hint
        await oai.conversations.retrieve(unknown)
    assert _message(conversation.value) == f"Conversation '{unknown}' not found."
    with pytest.raises(openai.NotFoundError) as file:  # OpenAIFileObjectNotFoundError
        await oai.files.retrieve("file-nope")
    assert _message(file.value) == "File 'file-nope' not found. Use 'client.files.list()' to list available Files."


def _echoed(response: Any) -> tuple[Any, ...]:
    fields = ("prompt_cache_key", "safety_identifier", "truncation", "top_logprobs", "service_tier")
    return tuple(getattr(response, name) for name in fields)


async def test_a_response_echoes_its_request_settings(
    oai: openai.AsyncOpenAI, lls: llama_stack_client.AsyncLlamaStackClient
) -> None:
    # streaming.py StreamingResponseOrchestrator._snapshot_response: the request's values, else
    # truncation "disabled", top_logprobs 0, service_tier "default" (prompt_cache_key, safety_identifier None).
    asked = await oai.responses.create(
        model="chat",
        input="capital?",
        prompt_cache_key="cache-1",
        safety_identifier="user-1",
        truncation="disabled",
        top_logprobs=3,
        service_tier="flex",
    )
    assert _echoed(asked) == ("cache-1", "user-1", "disabled", 3, "flex")
    assert _echoed(await oai.responses.retrieve(asked.id)) == _echoed(asked)
    plain = await lls.responses.create(model="chat", input="capital?")
    assert _echoed(plain) == (None, None, "disabled", 0, "default")
    stream = await oai.responses.create(model="chat", input="capital?", safety_identifier="user-2", stream=True)
    events = [event async for event in stream]
    assert _echoed(events[0].response) == (None, "user-2", "disabled", 0, "default")  # type: ignore[union-attr]
    assert _echoed(events[-1].response) == _echoed(events[0].response)  # type: ignore[union-attr]


async def test_a_response_echoes_the_sampling_it_used(
    oai: openai.AsyncOpenAI, lls: llama_stack_client.AsyncLlamaStackClient
) -> None:
    # streaming.py _snapshot_response: temperature and top_p the request's or 1.0, penalties 0.0. We echo the
    # model's own defaults where it states them (`sampling_defaults`); the scripted model states none.
    plain = await lls.responses.create(model="chat", input="capital?")
    assert (plain.temperature, plain.top_p) == (1.0, 1.0)
    assert (plain.model_extra or {}).get("frequency_penalty", getattr(plain, "frequency_penalty", None)) == 0.0
    assert (plain.model_extra or {}).get("presence_penalty", getattr(plain, "presence_penalty", None)) == 0.0
    asked = await oai.responses.create(model="chat", input="capital?", temperature=0.2, top_p=0.5)
    assert (asked.temperature, asked.top_p) == (0.2, 0.5)
    assert ((await oai.responses.retrieve(asked.id)).temperature) == 0.2


async def test_listed_responses_carry_their_input(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    # providers/utils/responses/responses_store.py list_responses: OpenAIResponseObjectWithInput rows.
    created = await lls.responses.create(model="chat", input="capital?")
    listed = await lls.responses.list(limit=1)
    (first,) = listed.data
    assert first.id == created.id
    (item,) = first.input
    assert item.type == "message"  # typed by llama-stack-client as its input message
    assert isinstance(item.content, list) and item.role == "user"
    assert [getattr(part, "text", None) for part in item.content] == ["capital?"]


async def test_an_unknown_input_item_cursor_is_not_found(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    # responses_store.py list_response_input_items: ResponseInputItemNotFoundError (a 404).
    created = await lls.responses.create(model="chat", input="capital?")
    with pytest.raises(llama_stack_client.NotFoundError) as missing:
        await lls.responses.input_items.list(created.id, after="msg_nope")
    assert _message(missing.value) == (
        f"Input item 'msg_nope' not found in response '{created.id}'. "
        f"Use 'client.responses.input_items.list(\"{created.id}\")' to list available input items."
    )


async def test_tool_choice_without_tools_is_refused(oai: openai.AsyncOpenAI) -> None:
    # core/routers/inference.py openai_chat_completion: "'tool_choice' is only allowed when 'tools' is also provided".
    with pytest.raises(openai.BadRequestError) as refused:
        await oai.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], tool_choice="none"
        )
    assert _message(refused.value) == "'tool_choice' is only allowed when 'tools' is also provided"
    answered = await oai.responses.create(model="chat", input="capital?", tool_choice="none")  # no tools: fine
    assert answered.status == "completed"


async def test_item_and_content_part_events_carry_the_response_id(
    lls: llama_stack_client.AsyncLlamaStackClient,
) -> None:
    # llama_stack_api/openai_responses.py: OpenAIResponseObjectStreamResponseOutputItemAdded/Done and
    # ContentPartAdded/Done have `response_id` (streaming.py _process_streaming_chunks sets it); the text
    # delta/done events have none.
    stream = await lls.responses.create(model="chat", input="capital?", stream=True)
    events = [event async for event in stream]
    response_id = events[0].response.id  # type: ignore[union-attr]
    carrying = {event.type for event in events if getattr(event, "response_id", None) == response_id}
    assert carrying == {
        "response.output_item.added",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_item.done",
    }
    kinds = {event.type for event in events}
    assert {"response.output_text.delta", "response.output_text.done"} <= kinds


async def test_too_few_output_tokens_and_auto_truncation_are_refused(
    oai: openai.AsyncOpenAI, lls: llama_stack_client.AsyncLlamaStackClient
) -> None:
    # llama_stack_api/responses/models.py CreateResponseRequest: max_output_tokens ge=16 (a validation error,
    # 400 by core/exceptions/translation.py translate_exception).
    with pytest.raises(openai.BadRequestError) as few:
        await oai.responses.create(model="chat", input="capital?", max_output_tokens=15)
    assert "max_output_tokens" in _message(few.value) and "greater than or equal to 16" in _message(few.value)
    assert (await oai.responses.create(model="chat", input="capital?", max_output_tokens=16)).status == "completed"
    # streaming.py StreamingResponseOrchestrator.create_response fails `truncation: "auto"` after its first events;
    # unstreamed, openai_responses.py create_openai_response raises that failure as an InternalServerError (500),
    # which PocketStack answers as a 400 (issue 21 §5: no request is a server error).
    said = (
        "Truncation mode 'auto' is not supported. Use 'disabled' to let the inference provider reject oversized "
        "contexts."
    )
    with pytest.raises(llama_stack_client.BadRequestError) as auto:
        await lls.responses.create(model="chat", input="capital?", truncation="auto")
    assert _message(auto.value) == said
    stream = await oai.responses.create(model="chat", input="capital?", truncation="auto", stream=True)
    events = [event async for event in stream]
    assert [event.type for event in events] == ["response.created", "response.in_progress", "response.failed"]
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None
    assert (failed.error.code, failed.error.message) == ("server_error", said)
    assert (await oai.responses.retrieve(failed.id)).status == "failed"  # stored, as Llama Stack persists it


async def test_cancelling_a_response_that_is_not_running_is_a_conflict(oai: openai.AsyncOpenAI) -> None:
    # openai_responses.py OpenAIResponsesImpl.cancel_openai_response: ConflictError (409) for a response not in
    # the background or already finished; a cancelled one is answered as it is.
    plain = await oai.responses.create(model="chat", input="capital?")
    with pytest.raises(openai.ConflictError) as foreground:
        await oai.responses.cancel(plain.id)
    assert _message(foreground.value) == (
        f"Cannot cancel response '{plain.id}': only background responses can be cancelled"
    )
    queued = await oai.responses.create(model="chat", input="capital?", background=True)
    for _ in range(200):
        if (await oai.responses.retrieve(queued.id)).status == "completed":
            break
        await asyncio.sleep(0.02)
    with pytest.raises(openai.ConflictError) as finished:
        await oai.responses.cancel(queued.id)
    assert _message(finished.value) == f"Cannot cancel response '{queued.id}' with status 'completed'"
    slow = await oai.responses.create(model="chat", input="Take your time", background=True)
    assert (await oai.responses.cancel(slow.id)).status == "cancelled"
    assert (await oai.responses.cancel(slow.id)).status == "cancelled"  # again: as it is


async def test_a_response_in_an_unknown_conversation_is_not_found(
    oai: openai.AsyncOpenAI, lls: llama_stack_client.AsyncLlamaStackClient
) -> None:
    # openai_responses.py _process_input_with_previous_response lists the conversation's items:
    # ConversationNotFoundError, a 404. create_openai_response refuses an id not of conv_'s form (400).
    absent = "conv_" + "0123456789abcdef" * 3
    with pytest.raises(openai.NotFoundError) as unknown:
        await oai.responses.create(model="chat", input="capital?", conversation=absent)
    assert _message(unknown.value) == f"Conversation '{absent}' not found."
    with pytest.raises(llama_stack_client.NotFoundError):
        await lls.responses.create(model="chat", input="capital?", conversation=absent, stream=True)
    for malformed_id in ("thread_1", "conv_nope"):
        with pytest.raises(openai.BadRequestError) as malformed:
            await oai.responses.create(model="chat", input="capital?", conversation=malformed_id)
        assert _message(malformed.value) == (
            f"Invalid value for 'conversation': {malformed_id}. "
            "Must match format 'conv_' followed by 48 lowercase hex characters."
        )
    # The conversation routes check the id the same way (conversations.py _validate_conversation_id).
    with pytest.raises(llama_stack_client.BadRequestError) as route:
        await lls.conversations.retrieve("conv_nope")
    assert _message(route.value).startswith("Invalid value for 'conversation_id': conv_nope. Must match format")
    created = await oai.conversations.create()
    assert len(created.id) == len("conv_") + 48  # Llama Stack's form


class FailingModel(ScriptedModel):
    """Streams its first word, then fails as the last user text says: "Fail upstream" (a remote provider's
    error), "Fail busy" (a full queue), anything else (a bug)."""

    async def _stream(
        self, identifier: str, created: int, model: str, answers: list[str], calls: list[dict[str, str]]
    ) -> AsyncIterator[Any]:
        (answer,) = answers
        async for chunk in super()._stream(identifier, created, model, answers, calls):
            yield chunk
            if chunk.choices and chunk.choices[0].delta.content:
                if answer.endswith("Fail upstream"):
                    raise UpstreamError("The upstream provider closed the stream.", code="upstream_closed")
                if answer.endswith("Fail busy"):
                    raise TooManyRequestsError("The model is busy.", code="queue_full")
                raise RuntimeError("a bug")


FAILING = ProviderSpec(
    api="inference",
    provider_type="test::failing",
    description="Streams a word, then fails (tests only).",
    config_model=ScriptedConfig,
    create=lambda config, context: FailingModel(config, context),
)


@pytest.fixture
async def failing(
    aiohttp_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[openai.AsyncOpenAI]:
    monkeypatch.setitem(PROVIDERS, FAILING.provider_type, FAILING)
    model = {"model_id": "failing", "provider_id": "failing", "provider_model_id": "failing", "model_type": "llm"}
    config = edge_with(
        providers=edge_providers_with(
            inference=[{"provider_id": "failing", "provider_type": FAILING.provider_type, "config": {}}]
        ),
        registered_resources={"models": [model], "shields": []},
    )
    app: TestClient[Any, Any] = await aiohttp_client(create_app(config))
    client = openai.AsyncOpenAI(base_url=str(app.make_url("/v1")), api_key="unused", max_retries=0)
    yield client
    await client.close()


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("Fail upstream", "server_error", "The upstream provider closed the stream."),
        ("Fail busy", "rate_limit_exceeded", "The model is busy."),
        ("Fail oddly", "server_error", "An unexpected error occurred while generating the response."),
    ],
)
@pytest.mark.parametrize("background", [False, True])
async def test_a_failing_stream_ends_with_one_response_failed_event(
    failing: openai.AsyncOpenAI, text: str, code: str, message: str, background: bool
) -> None:
    # streaming.py StreamingResponseOrchestrator.create_response: an error while generating ends the stream with
    # one response.failed event, its error.code one of _VALID_RESPONSE_ERROR_CODES (OpenAI's; else server_error),
    # the message a provider's own or "An unexpected error occurred...". Streamed background responses are
    # PocketStack's (Llama Stack refuses stream with background): they end the same way.
    stream = await failing.responses.create(model="failing", input=text, stream=True, background=background)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and "response.output_text.delta" in kinds
    assert kinds.count("response.failed") == 1 and kinds[-1] == "response.failed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None
    assert (failed.error.code, failed.error.message) == (code, message)
    assert failed.error.code in {code.value for code in models.ResponseErrorCode}
    stored = await failing.responses.retrieve(failed.id)
    assert stored.status == "failed" and stored.error is not None and stored.error.code == code


async def test_stored_chat_completions_list_takes_any_limit_and_pages_what_it_holds(
    oai: openai.AsyncOpenAI, lls: llama_stack_client.AsyncLlamaStackClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Llama Stack: llama_stack_api/inference/models.py ListChatCompletionsRequest has `limit` ge=1 and no
    # maximum (providers/utils/inference/inference_store.py list_chat_completions); `limit=1000` was a 400 here.
    ids = []
    for word in ("one", "two", "three"):
        said = await oai.chat.completions.create(model="chat", messages=[{"role": "user", "content": word}])
        ids.append(said.id)
    page = await lls.chat.completions.list(limit=1000, order="asc")
    assert [c.id for c in page.data] == ids and not page.has_more
    # A page holds at most MAX_PAGE however many are asked for; the cursor goes on from there.
    monkeypatch.setattr(chat_completions, "MAX_PAGE", 2)
    first = await lls.chat.completions.list(limit=1000, order="asc")
    assert [c.id for c in first.data] == ids[:2] and first.has_more
    rest = await lls.chat.completions.list(limit=1000, order="asc", after=first.last_id)
    assert [c.id for c in rest.data] == ids[2:] and not rest.has_more
