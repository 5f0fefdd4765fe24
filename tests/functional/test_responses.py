"""Responses through the `openai` client: answers, function tool round trips, threading, stored
responses and input items, the event stream; on the scripted model, and smoke tests on the real one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient
from openai.types.responses import FunctionToolParam, ResponseFunctionCallArgumentsDeltaEvent
from pocketstack_client import Client
from pocketstack_client.api.responses import get_openai_response, list_openai_responses
from pocketstack_client.pages import aiterate_pages, checked
from pocketstack_client.sse import PocketStackError

from pocketstack._generated import models
from pocketstack.app import create_app
from tests.support.config import CHAT_MODEL, edge_providers_with, edge_with
from tests.support.documents import store_of
from tests.support.errors import assert_error_shape
from tests.support.items import first_text
from tests.support.scripted import CHAT, STREAMED, scripted_entry

# Sent without `strict`, which openai's type requires: the server defaults it, as OpenAI does.
WEATHER: FunctionToolParam = {  # type: ignore[typeddict-item]
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def server(responses_app: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The scripted model's app (conftest), whose tool calls (RESPONSES_CALLS) these tests trigger."""
    return responses_app


async def test_a_response_is_answered_stored_listed_and_deleted(oai: openai.AsyncOpenAI) -> None:
    response = await oai.responses.create(model="chat", input="capital?")
    assert (response.status, response.output_text, response.object) == ("completed", "Paris.", "response")
    assert response.id.startswith("resp_") and response.usage is not None and response.usage.total_tokens == 10
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    fetched = await oai.responses.retrieve(response.id)
    assert fetched.output_text == "Paris." and fetched.id == response.id
    items = await oai.responses.input_items.list(response.id)
    (item,) = items.data
    assert item.type == "message" and item.role == "user" and first_text(item) == "capital?"
    second = await oai.responses.create(model="chat", input="again")
    page = await oai.get("/responses", cast_to=dict[str, Any])  # newest first
    assert [r["id"] for r in page["data"]][:2] == [second.id, response.id]
    await oai.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        await oai.responses.retrieve(response.id)


async def test_the_sdks_page_helper_walks_every_page(oai: openai.AsyncOpenAI, server: TestClient[Any, Any]) -> None:
    created = [(await oai.responses.create(model="chat", input="capital?")).id for _ in range(5)]
    sdk = Client(base_url=str(server.make_url("")).rstrip("/"))
    walked = [r.id async for r in aiterate_pages(list_openai_responses.asyncio_detailed, client=sdk, limit=2)]
    assert walked == created[::-1]  # newest first, three pages of two, each once
    with pytest.raises(PocketStackError) as raised:
        checked(await get_openai_response.asyncio_detailed("resp_nope", client=sdk))
    assert raised.value.status == 404 and "resp_nope" in raised.value.message


async def test_a_function_tool_round_trip_threads_by_previous_response_id(
    oai: openai.AsyncOpenAI, scripted: list[models.ChatCompletionRequest]
) -> None:
    first = await oai.responses.create(
        model="chat",
        input="Weather in Paris?",
        tools=[WEATHER],
        instructions="Use the tools.",
    )
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.call_id.startswith("call_")
    assert scripted[-1].messages[0].content == "Use the tools."  # instructions as the system message
    offered = scripted[-1].tools
    assert isinstance(offered, list) and offered and offered[0].function.name == "get_weather"
    second = await oai.responses.create(
        model="chat",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18°C and sunny"}],
        tools=[WEATHER],
    )
    assert second.output_text == "The tool said: 18°C and sunny"
    assert second.previous_response_id == first.id
    sent = scripted[-1].messages
    assert [m.role for m in sent] == ["user", "assistant", "tool"]  # instructions are not carried over
    assistant = sent[1]
    assert assistant.role == "assistant" and isinstance(assistant.tool_calls, list)
    assert assistant.tool_calls[0].id == call.call_id


async def test_the_stream_tells_a_text_answer_in_openais_order(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.responses.create(model="chat", input="capital?", stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    assert final.status == "completed" and final.output_text == "Paris."
    added, done = events[2], events[7]
    assert added.item.id == done.item.id == final.output[0].id  # type: ignore[union-attr]
    assert (await oai.responses.retrieve(final.id)).output[0].id == final.output[0].id


async def test_the_stream_tells_a_function_call(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.responses.create(model="chat", input="Weather in Paris?", tools=[WEATHER], stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    arguments = "".join(e.delta for e in events if isinstance(e, ResponseFunctionCallArgumentsDeltaEvent))
    assert json.loads(arguments) == {"city": "Paris"}
    last = events[-1]
    assert last.type == "response.completed"
    called = last.response.output[0]
    assert called.type == "function_call" and called.arguments == arguments


async def test_guardrails_refuse_in_the_responses_shape(oai: openai.AsyncOpenAI) -> None:
    response = await oai.responses.create(
        model="chat", input="my card is 4111 1111 1111 1111", extra_body={"guardrails": ["pii"]}
    )
    (message,) = response.output
    assert message.type == "message" and message.content[0].type == "refusal"
    assert "payment card number" in message.content[0].refusal
    (violation,) = (response.model_extra or {})["guardrail_violations"]
    assert (violation["shield_id"], violation["stage"]) == ("pii", "input")


async def test_a_guarded_stream_is_judged_before_it_is_sent(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.responses.create(model="chat", input="leak it", stream=True, extra_body={"guardrails": ["pii"]})
    events = [event.model_dump(mode="json") async for event in stream]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    refusal = "".join(e["delta"] for e in events if e["type"] == "response.refusal.delta")
    assert text == "Sure. " and "email address" in refusal  # the clean sentence went out, the flagged one never
    assert "ana@" not in json.dumps(events)
    assert "never " not in STREAMED  # the generation stopped at the flagged sentence
    parts = [(e["type"], e["content_index"]) for e in events if e["type"].startswith("response.content_part")]
    assert parts == [("response.content_part.added", 0), ("response.content_part.done", 0),
                     ("response.content_part.added", 1), ("response.content_part.done", 1)]  # fmt: skip
    done = events[-1]
    assert done["type"] == "response.completed"
    (message,) = done["response"]["output"]
    parts = [(p["type"], p.get("text")) for p in message["content"]]
    assert parts == [("output_text", "Sure. "), ("refusal", None)]  # what was told, then the refusal
    stored = await oai.responses.retrieve(done["response"]["id"])
    assert stored.model_dump(mode="json")["output"] == done["response"]["output"]


async def test_response_errors(server: TestClient[Any, Any]) -> None:
    user = "hello"
    for body, status in (
        ({}, 400),
        ({"model": "nope", "input": user}, 404),
        ({"model": "chat", "input": user, "previous_response_id": "resp_nope"}, 404),
        ({"model": "chat", "input": user, "previous_response_id": "resp_x", "conversation": "conv_x"}, 400),
        ({"model": "chat", "input": user, "temperature": 5}, 400),
        (
            {"model": "chat", "input": user, "tools": [WEATHER], "tool_choice": {"type": "function", "name": "other"}},
            400,
        ),
        ({"model": "chat", "input": user, "tool_choice": "required"}, 400),
        ({"model": "chat", "input": user, "tools": [{"type": "file_search", "vector_store_ids": ["vs_nope"]}]}, 400),
        ({"model": "chat", "input": user, "tools": [{"type": "file_search"}]}, 400),
        ({"model": "chat", "input": user, "tools": [{"type": "code_interpreter"}]}, 400),  # not served
        ({"model": "chat", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, 400),
        ({"model": "chat", "input": user, "guardrails": ["nope"]}, 404),
    ):
        response = await server.post("/v1/responses", json=body)
        error = assert_error_shape(await response.json())
        assert response.status == status, (body, error)
    for method in ("GET", "DELETE"):
        response = await server.request(method, "/v1/responses/resp_nope")
        assert response.status == 404
    response = await server.get("/v1/responses/resp_nope/input_items")
    assert response.status == 404


async def test_the_real_default_model_answers_and_streams(oai: openai.AsyncOpenAI) -> None:
    response = await oai.responses.create(model=CHAT_MODEL, input="Say hello.", max_output_tokens=16, temperature=0)
    assert response.status in ("completed", "incomplete") and response.output_text
    cut = await oai.responses.create(model=CHAT_MODEL, input="Tell me a long story.", max_output_tokens=16)
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert (
        cut.incomplete_details.reason == "max_output_tokens" and getattr(cut.output[0], "status", None) == "incomplete"
    )
    stream = await oai.responses.create(
        model=CHAT_MODEL, input="Say hello.", max_output_tokens=16, temperature=0, stream=True
    )
    events = [event async for event in stream]
    assert events[0].type == "response.created" and events[-1].type in ("response.completed", "response.incomplete")
    assert events[-1].response.output_text == response.output_text
    shaped = await oai.responses.create(
        model=CHAT_MODEL,
        input="Give a city and its country.",
        max_output_tokens=60,
        temperature=0,
        text={
            "format": {
                "type": "json_schema",
                "name": "place",
                "schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
                    "required": ["city", "country"],
                    "additionalProperties": False,
                },
            }
        },
    )
    assert set(json.loads(shaped.output_text)) == {"city", "country"}


async def test_llama_stack_clients_responses(lls: Any) -> None:
    response = await lls.responses.create(model="chat", input="capital?")
    assert response.status == "completed" and response.output[0].content[0].text == "Paris."
    listed = await lls.responses.list()
    assert response.id in [r.id for r in listed.data]
    items = await lls.responses.input_items.list(response.id)
    assert items.data[0].content[0].text == "capital?"


async def test_file_search_finds_the_right_file_and_cites_it(
    oai: openai.AsyncOpenAI, stored_embedding: str, scripted: list[models.ChatCompletionRequest]
) -> None:
    store = await store_of(oai, stored_embedding)
    tools: Any = [{"type": "file_search", "vector_store_ids": [store], "max_num_results": 2}]
    response = await oai.responses.create(
        model="chat", input="What does a comet grow near the sun?", tools=tools, include=["file_search_call.results"]
    )
    search, message = response.output
    assert search.type == "file_search_call" and search.queries == ["comet tail near the sun"]
    assert search.results is not None and search.results[0].filename == "comets.json"
    assert message.type == "message"
    answer = message.content[0]
    assert (
        answer.type == "output_text" and "glowing tail of ice and dust" in answer.text
    )  # the passage reached the model
    assert answer.annotations[0].type == "file_citation" and answer.annotations[0].filename == "comets.json"
    assert [m.role for m in scripted[-1].messages] == ["user", "assistant", "tool"]
    offered = scripted[-1].tools
    assert isinstance(offered, list) and offered[0].function.name == "file_search"
    without = await oai.responses.create(model="chat", input="What does a comet grow near the sun?", tools=tools)
    assert without.output[0].results is None  # type: ignore[union-attr]  # results only when included


async def test_file_search_streams_its_own_events(oai: openai.AsyncOpenAI, stored_embedding: str) -> None:
    store = await store_of(oai, stored_embedding)
    tools: Any = [{"type": "file_search", "vector_store_ids": [store]}]
    stream = await oai.responses.create(
        model="chat", input="What does a comet grow near the sun?", tools=tools, stream=True
    )
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[:8] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
        "response.output_item.added",
    ]
    assert "response.function_call_arguments.delta" not in kinds  # the server's tool is not the client's
    assert kinds[-1] == "response.completed" and [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    assert [item.type for item in final.output] == ["file_search_call", "message"]
    assert [e.output_index for e in events if e.type == "response.output_item.added"] == [0, 1]
    cited = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert [e.annotation_index for e in cited] == list(range(len(cited)))
    assert cited[0].annotation.filename == "comets.json" and cited[0].output_index == 1  # type: ignore[union-attr]
    assert kinds.index("response.output_text.annotation.added") < kinds.index("response.output_text.done")


async def test_max_infer_iters_bounds_the_model_calls(
    oai: openai.AsyncOpenAI, stored_embedding: str, scripted: list[models.ChatCompletionRequest]
) -> None:
    store = await store_of(oai, stored_embedding)
    tools: Any = [{"type": "file_search", "vector_store_ids": [store]}]
    before = len(scripted)
    response = await oai.responses.create(
        model="chat", input="Search forever", tools=tools, extra_body={"max_infer_iters": 3}
    )
    assert len(scripted) - before == 3
    assert response.status == "incomplete" and response.incomplete_details is not None
    reason: object = response.incomplete_details.reason  # openai's type lists only OpenAI's own reasons
    assert reason == "max_iterations_exceeded"  # Llama Stack's reason (streaming.py)
    assert [item.type for item in response.output] == ["file_search_call", "file_search_call"]


async def test_max_output_tokens_bounds_the_whole_response_not_each_model_call(
    oai: openai.AsyncOpenAI, stored_embedding: str, scripted: list[models.ChatCompletionRequest]
) -> None:
    """Found by bench/load.py: with max_output_tokens 48 on the real model, a response that kept searching made
    up to max_infer_iters calls of 48 tokens each (87 tokens told in its usage) and ran for minutes."""
    store = await store_of(oai, stored_embedding)
    tools: Any = [{"type": "file_search", "vector_store_ids": [store]}]
    before = len(scripted)
    response = await oai.responses.create(model="chat", input="Search forever", tools=tools, max_output_tokens=16)
    assert [call.max_tokens for call in scripted[before:]] == [16, 13, 10, 7, 4, 1]  # the scripted model spends 3
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert [item.type for item in response.output] == ["file_search_call"] * 6


async def _settled(oai: openai.AsyncOpenAI, response_id: str) -> Any:
    for _ in range(200):
        response = await oai.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress"):
            return response
        await asyncio.sleep(0.02)
    raise AssertionError("the background response did not finish")


async def test_a_background_response_is_polled_to_its_answer(oai: openai.AsyncOpenAI) -> None:
    queued = await oai.responses.create(model="chat", input="capital?", background=True)
    assert queued.status == "queued" and queued.background is True and queued.output == []
    done = await _settled(oai, queued.id)
    assert (done.status, done.output_text) == ("completed", "Paris.")
    with pytest.raises(openai.ConflictError) as finished:  # finished: a 409, as in Llama Stack
        await oai.responses.cancel(queued.id)
    assert finished.value.body == {  # openai_responses.py cancel_openai_response's ConflictError
        "message": f"Cannot cancel response '{queued.id}' with status 'completed'",
        "type": "conflict_error",
        "code": "finished",
    }
    assert (await oai.responses.retrieve(queued.id)).status == "completed"


async def test_a_running_background_response_is_cancelled(oai: openai.AsyncOpenAI) -> None:
    queued = await oai.responses.create(model="chat", input="Take your time", background=True)
    cancelled = await oai.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    assert (await oai.responses.retrieve(queued.id)).status == "cancelled"


async def test_background_errors(server: TestClient[Any, Any]) -> None:
    for body in ({"model": "chat", "input": "x", "background": True, "store": False},):
        response = await server.post("/v1/responses", json=body)
        assert response.status == 400, await response.text()
    plain = await (await server.post("/v1/responses", json={"model": "chat", "input": "x"})).json()
    response = await server.post(f"/v1/responses/{plain['id']}/cancel")
    assert response.status == 409 and assert_error_shape(await response.json())["code"] == "not_background"
    assert (await server.post("/v1/responses/resp_nope/cancel")).status == 404


async def test_a_streamed_background_response_is_read_again_from_any_event(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any]
) -> None:
    stream = await oai.responses.create(model="chat", input="capital?", background=True, stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    response_id = events[-1].response.id  # type: ignore[union-attr]
    assert events[-1].response.output_text == "Paris."  # type: ignore[union-attr]
    again = await oai.responses.retrieve(response_id, stream=True, starting_after=2)
    rest = [event async for event in again]
    assert [(e.type, e.sequence_number) for e in rest] == [(e.type, e.sequence_number) for e in events[3:]]
    stored = await oai.responses.retrieve(response_id)
    assert stored.status == "completed" and stored.background is True
    plain = await oai.responses.create(model="chat", input="capital?")
    refused = await server.get(f"/v1/responses/{plain.id}", params={"stream": "true"})
    assert refused.status == 400 and "background" in assert_error_shape(await refused.json())["message"]


async def test_a_streamed_background_response_runs_on_when_its_client_leaves(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.responses.create(model="chat", input="capital?", background=True, stream=True)
    first = await anext(aiter(stream))
    await stream.close()  # the client leaves after the first event
    response_id = first.response.id  # type: ignore[union-attr]
    settled = await _settled(oai, response_id)
    assert settled.status == "completed" and settled.output_text == "Paris."


async def test_a_streamed_background_response_that_fails_says_so(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.responses.create(model="nope", input="x", background=True, stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None and "nope" in failed.error.message
    assert (await oai.responses.retrieve(failed.id)).status == "failed"


async def test_a_streamed_background_response_is_cancelled(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.responses.create(model="chat", input="Take your time", background=True, stream=True)
    first = await anext(aiter(stream))
    response_id = first.response.id  # type: ignore[union-attr]
    cancelled = await oai.responses.cancel(response_id)
    assert cancelled.status == "cancelled"
    rest = [event.type async for event in stream]  # the stream ends with the response
    assert "response.completed" not in rest
    replayed = [event.type async for event in await oai.responses.retrieve(response_id, stream=True)]
    assert replayed[0] == "response.created" and "response.completed" not in replayed


async def test_a_response_a_stopped_server_left_running_is_failed_at_start(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], home: Path
) -> None:
    config = edge_with(
        providers=edge_providers_with(inference=[scripted_entry(slow={"Take your time": 30})]),
        registered_resources={"models": [CHAT], "shields": []},
    )
    first = await aiohttp_client(create_app(config))
    queued = await (await first.post("/v1/responses", json={"model": "chat", "input": "Take your time",
                                                             "background": True})).json()  # fmt: skip
    # The first server stops before the row is edited: nothing else writes the file meanwhile. The edit
    # goes through the sqlite3 module, the SQLite the server uses: apsw bundles another copy, and two
    # copies in one process do not see each other's POSIX locks, so an apsw connection opened while the
    # server wrote could read the database without its WAL ("no such table: responses") and, closing,
    # delete the WAL under the server's open connection.
    await first.close()
    with contextlib.closing(sqlite3.connect(home / "edge" / "state.db")) as database, database:
        database.execute(  # as a crash would leave it: still running (a clean stop cancelled it)
            "UPDATE responses SET response = json_set(response, '$.status', 'in_progress') WHERE id = ?",
            (queued["id"],),
        )
    second = await aiohttp_client(create_app(config))
    found = await (await second.get(f"/v1/responses/{queued['id']}")).json()
    assert found["status"] == "failed" and found["error"]["code"] == "server_error"
    assert found["error"]["message"] == "The server stopped before it finished."
