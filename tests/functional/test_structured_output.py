"""Structured output and tool calls through the official `openai` client, on the real default model.

JSON Schema and JSON object answers, GBNF grammars, forced and streamed tool calls: the grammar
makes the asked shape the only possible output, so even the 135M model answers validly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import jsonschema
import openai
import pytest
from aiohttp.test_utils import TestClient
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from pocketstack.app import create_app
from tests.support.config import CHAT_MODEL, edge_with

GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 24}
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any], stored_embedding: str) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
        {
            "type": "object",
            "properties": {
                "colors": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["red", "green", "blue"]},
                    "minItems": 2,
                    "maxItems": 4,
                }
            },
            "required": ["colors"],
            "additionalProperties": False,
        },
    ],
)
async def test_json_schema_output_validates(oai: openai.AsyncOpenAI, schema: dict[str, Any]) -> None:
    completion = await oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Answer in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        max_tokens=200,
        seed=7,
    )
    content = completion.choices[0].message.content
    assert content is not None and completion.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(content), schema)


async def test_json_cut_by_max_tokens_says_length(oai: openai.AsyncOpenAI) -> None:
    """A tiny model can loop inside an unbounded array; the cut is reported, never hidden."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"xs": {"type": "array", "items": {"type": "integer"}}},
        "required": ["xs"],
    }
    completion = await oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Count in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
        max_tokens=6,
        seed=7,
    )
    choice, usage = completion.choices[0], completion.usage  # this seed is cut inside the array: `{ "xs": [`
    assert usage is not None and usage.completion_tokens == 6  # the cut is asserted, not assumed
    with pytest.raises((json.JSONDecodeError, jsonschema.ValidationError)):
        jsonschema.validate(json.loads(choice.message.content or ""), schema)
    assert choice.finish_reason == "length"


async def test_json_object_output_parses(oai: openai.AsyncOpenAI) -> None:
    # The guarantee (OpenAI's too) holds for an answer the model ended: one cut by max_tokens says
    # "length" (test_json_cut_by_max_tokens_says_length). A single seed made this depend on the CPU's
    # arithmetic (one machine's seed 3 wrote emoji until the limit), so several seeds, and at least
    # one must end on its own for the check to mean anything.
    ended = 0
    for seed in (1, 2, 3, 4, 5):
        completion = await oai.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": "Reply with a JSON object holding your name."}],
            response_format={"type": "json_object"},
            max_tokens=200,
            seed=seed,
        )
        choice = completion.choices[0]
        if choice.finish_reason == "stop":
            ended += 1
            assert isinstance(json.loads(choice.message.content or ""), dict)
    assert ended >= 1


async def test_json_schema_strings_never_hold_raw_control_characters(oai: openai.AsyncOpenAI) -> None:
    # llama-cpp-python's converter allowed them: these seeds wrote "Italy }\n\nTuscany is..." into a
    # string that never closed. Whitespace here is a single optional space, so no control character fits.
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"], "additionalProperties": False}  # fmt: skip
    for seed in (5, 9, 11):
        completion = await oai.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": "Give a city and its country."}],
            max_tokens=60,
            seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
        )
        text = completion.choices[0].message.content or ""
        assert all(ord(c) >= 0x20 for c in text), (seed, text)


async def test_a_gbnf_grammar_holds_chat_and_text_completions_to_its_language(oai: openai.AsyncOpenAI) -> None:
    grammar = 'root ::= ("yes" | "no") " because " [a-z ]{1,40}'
    for seed in (1, 2, 3):
        chat = await oai.chat.completions.create(
            model=CHAT_MODEL, messages=HELLO, temperature=1.0, seed=seed, max_tokens=30, extra_body={"grammar": grammar}
        )
        assert re.fullmatch(r"(yes|no) because [a-z ]{1,40}", chat.choices[0].message.content or ""), chat
    text = await oai.completions.create(
        model=CHAT_MODEL, prompt="Is water wet?", max_tokens=30, temperature=0, extra_body={"grammar": grammar}
    )
    assert re.fullmatch(r"(yes|no) because [a-z ]{1,40}", text.choices[0].text), text


async def test_a_bad_grammar_or_a_grammar_with_a_schema_is_400(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, extra_body={"grammar": "root ::= ("})
    assert "GBNF" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.completions.create(model=CHAT_MODEL, prompt="x", extra_body={"grammar": "root ::= missing"})
    assert "GBNF" in caught.value.message  # llama-cpp-python crashed the server on these before
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, extra_body={"grammar": " "})
    assert "empty" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(
            model=CHAT_MODEL,
            messages=HELLO,
            response_format={"type": "json_object"},
            extra_body={"grammar": 'root ::= "x"'},
        )
    assert "either `grammar`" in caught.value.message


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
async def test_forced_tool_call_is_valid(oai: openai.AsyncOpenAI, tool_choice: Any) -> None:
    completion = await oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice=tool_choice,
        max_tokens=80,
        seed=1,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])


async def test_streamed_tool_call_uses_deltas(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=80,
        seed=1,
        stream=True,
    )
    deltas = [c.choices[0] async for c in stream if c.choices]
    calls = [call for d in deltas for call in (d.delta.tool_calls or [])]
    assert calls[0].id and calls[0].function and calls[0].function.name == "get_weather"
    arguments = "".join((c.function.arguments or "") for c in calls if c.function)
    jsonschema.validate(json.loads(arguments), WEATHER_TOOL["function"]["parameters"])
    assert all(c.index == 0 for c in calls)
    assert deltas[-1].finish_reason == "tool_calls"


async def test_tool_results_are_fed_back(oai: openai.AsyncOpenAI) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"},
    ]
    completion = await oai.chat.completions.create(model=CHAT_MODEL, messages=messages, tools=[WEATHER_TOOL], **GREEDY)
    assert completion.choices[0].message.content or completion.choices[0].message.tool_calls


async def test_schema_keywords_the_grammar_cannot_enforce_are_400(oai: openai.AsyncOpenAI) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"year": {"type": "integer", "minimum": 3000}},
        "required": ["year"],
    }
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(
            model=CHAT_MODEL,
            messages=HELLO,
            response_format={"type": "json_schema", "json_schema": {"name": "y", "schema": schema}},
        )
    assert "/properties/year/minimum" in caught.value.message


CLOCK_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {"name": "get_time", "description": "The time now"},
}
NO_END = {"0": -100, "2": -100, "4": -100}  # SmolLM2's end-of-generation tokens: banned, an answer never ends itself


async def test_a_tool_without_parameters_is_called_with_none(oai: openai.AsyncOpenAI) -> None:
    # OpenAI: "Omitting parameters defines a function with an empty parameter list". With the end
    # banned, the grammar alone must end the call: no room for invented arguments.
    completion = await oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "What time is it in Tokyo, in the timezone Asia/Tokyo?"}],
        tools=[CLOCK_TOOL],
        tool_choice="required",
        logit_bias=NO_END,
        seed=1,
    )
    choice = completion.choices[0]
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_time", {})
    assert choice.finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.completion_tokens < 40


async def test_an_offered_call_ends_with_its_object(oai: openai.AsyncOpenAI) -> None:
    # tool_choice auto: no grammar, and a small model goes on writing after the call's object (with the
    # end banned, until the context is full: minutes). The call ends the answer where its object closes.
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Answer every question by calling a function."},
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": '{"name": "get_time", "arguments": {}}'},
        {"role": "user", "content": "And now, what time is it?"},
    ]
    completion = await oai.chat.completions.create(
        model=CHAT_MODEL, messages=messages, tools=[CLOCK_TOOL], logit_bias=NO_END, temperature=0
    )
    choice = completion.choices[0]
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_time" and choice.finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.completion_tokens < 60
