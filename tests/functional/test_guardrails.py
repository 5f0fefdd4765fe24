"""Guardrails on chat completions: input refused before the model runs, answers replaced by the
refusal, streams stopped at the first sentence a shield flags; with the scripted model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from pocketstack import distributions
from pocketstack._generated import models
from pocketstack.app import create_app
from tests.support.config import CHAT_MODEL, edge_providers_with, edge_shields, edge_with
from tests.support.errors import assert_error_shape
from tests.support.scripted import CHAT, COMPLETED, STREAMED, scripted_entry

LEAKY = "Sure. You can write to ana@example.com about it. This third sentence must never be sent."
CLEAN = "Paris is the capital of France. It sits on the Seine."
REPLIES = {"leak it": LEAKY, "capital?": CLEAN, "two ways#0": LEAKY, "two ways#1": CLEAN}


def config(**safety: Any) -> Any:
    llama_cpp = edge_providers_with()["inference"]
    return edge_with(
        providers=edge_providers_with(inference=[*llama_cpp, scripted_entry(replies=REPLIES)]),
        registered_resources={"models": [CHAT], "shields": edge_shields()},
        safety={"default_shield_id": "pii", **safety},
    )


@pytest.fixture
async def oai(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> AsyncIterator[openai.AsyncOpenAI]:
    server = await aiohttp_client(create_app(config()))
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
    yield client
    await client.close()


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_an_input_violation_is_refused_before_the_model_runs(
    oai: openai.AsyncOpenAI, scripted: list[models.ChatCompletionRequest]
) -> None:
    completion = await oai.chat.completions.create(
        model="chat", messages=ask("my card is 4111 1111 1111 1111"), extra_body={"guardrails": ["pii"]}
    )
    choice = completion.choices[0]
    assert scripted == []  # the model never saw it
    assert (choice.finish_reason, choice.message.content) == ("content_filter", None)
    assert choice.message.refusal is not None and "payment card number" in choice.message.refusal
    (violation,) = (completion.model_extra or {})["guardrail_violations"]
    assert (violation["shield_id"], violation["stage"], violation["violation_level"]) == ("pii", "input", "error")
    stored = await oai.chat.completions.retrieve(completion.id)  # recorded as it was answered
    assert stored.choices[0].message.refusal == choice.message.refusal


async def test_an_answer_that_violates_is_replaced_by_the_refusal(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(
        model="chat", messages=ask("leak it"), extra_body={"guardrails": [{"type": "pii"}]}
    )
    choice = completion.choices[0]
    assert (choice.finish_reason, choice.message.content) == ("content_filter", None)
    assert "email address" in (choice.message.refusal or "")
    (violation,) = (completion.model_extra or {})["guardrail_violations"]
    assert violation["stage"] == "output" and violation["metadata"]["violation_type"] == "email"


async def test_a_stream_stops_at_the_first_sentence_a_shield_flags(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="chat", messages=ask("leak it"), stream=True, extra_body={"guardrails": ["pii"]}
    )
    content, refusal, finish, extras = "", "", None, []
    async for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            refusal += choice.delta.refusal or ""
            finish = choice.finish_reason or finish
        extras.append(chunk.model_extra or {})
    assert content == "Sure. "  # the first sentence passed; nothing of the second was sent
    assert "email address" in refusal and finish == "content_filter"
    assert [e["guardrail_violations"][0]["stage"] for e in extras if "guardrail_violations" in e] == ["output"]
    assert "never " not in STREAMED  # generation stopped when the stream was closed


async def test_each_of_n_streamed_choices_is_judged_on_its_own(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="chat", messages=ask("two ways"), n=2, stream=True, extra_body={"guardrails": ["pii"]}
    )
    content: dict[int, str] = {0: "", 1: ""}
    refusal: dict[int, str] = {0: "", 1: ""}
    finish: dict[int, str] = {}
    async for chunk in stream:
        for choice in chunk.choices:
            content[choice.index] += choice.delta.content or ""
            refusal[choice.index] += choice.delta.refusal or ""
            finish[choice.index] = choice.finish_reason or finish.get(choice.index, "")
    # Choice 0 leaks and ends in a refusal after its clean first sentence; choice 1 passes whole.
    assert (content[0], finish[0]) == ("Sure. ", "content_filter") and "email address" in refusal[0]
    assert (content[1], refusal[1], finish[1]) == (CLEAN, "", "stop")
    whole = await oai.chat.completions.create(
        model="chat", messages=ask("two ways"), n=2, extra_body={"guardrails": ["pii"]}
    )
    assert [c.finish_reason for c in whole.choices] == ["content_filter", "stop"]
    assert whole.choices[1].message.content == CLEAN


async def test_an_input_violation_refuses_every_choice(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(
        model="chat", messages=ask("my card is 4111 1111 1111 1111"), n=2, extra_body={"guardrails": ["pii"]}
    )
    assert [(c.index, c.finish_reason, c.message.content) for c in completion.choices] == [
        (0, "content_filter", None),
        (1, "content_filter", None),
    ]


async def test_a_clean_stream_passes_whole_with_warnings_recorded(
    oai: openai.AsyncOpenAI, scripted: list[models.ChatCompletionRequest]
) -> None:
    stream = await oai.chat.completions.create(
        model="chat",
        messages=[{"role": "system", "content": "Mail ops@example.com on errors."}, *ask("capital?")],
        stream=True,
        extra_body={"guardrails": ["pii", "pii-redact"]},
    )
    content, finish, extras = "", None, []
    async for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
        extras.append(chunk.model_extra or {})
    assert (content, finish) == (CLEAN, "stop")  # the system prompt's address is the developer's own: not judged
    assert not any("guardrail_violations" in e for e in extras)


REDACTED = LEAKY.replace("ana@example.com", "[EMAIL]")


async def test_a_redacting_shield_rewrites_the_answer(oai: openai.AsyncOpenAI) -> None:
    warned = await oai.chat.completions.create(
        model="chat", messages=ask("leak it"), extra_body={"guardrails": ["pii-redact"]}
    )
    assert warned.choices[0].message.content == REDACTED  # warn level: not blocked, the finding replaced
    assert warned.choices[0].finish_reason == "stop"
    (violation,) = (warned.model_extra or {})["guardrail_violations"]
    assert (violation["stage"], violation["violation_level"]) == ("output", "warn")
    stream = await oai.chat.completions.create(
        model="chat", messages=ask("leak it"), stream=True, extra_body={"guardrails": ["pii-redact"]}
    )
    pieces, extras = [], []
    async for chunk in stream:
        pieces += [choice.delta.content or "" for choice in chunk.choices]
        extras.append(chunk.model_extra or {})
    assert "".join(pieces) == REDACTED and not any("ana@" in piece for piece in pieces)
    (last,) = [e["guardrail_violations"] for e in extras if "guardrail_violations" in e]
    assert [v["violation_level"] for v in last] == ["warn"]  # judged three times, recorded once


async def test_a_redacting_input_shield_keeps_the_finding_from_the_model(
    oai: openai.AsyncOpenAI, scripted: list[models.ChatCompletionRequest]
) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Forward it to ana@example.com please."},
    ]
    completion = await oai.chat.completions.create(
        model="chat",
        messages=messages,
        extra_body={"guardrails": ["pii-redact"]},
    )
    assert scripted[-1].messages[1].content == "Forward it to [EMAIL] please."
    assert scripted[-1].messages[0].content == "Be brief."
    assert completion.choices[0].message.content == "You said: Forward it to [EMAIL] please."
    stored = await oai.chat.completions.retrieve(completion.id)
    inputs = (stored.model_extra or {})["input_messages"]
    assert inputs[-1]["content"] == "Forward it to [EMAIL] please."  # the store keeps no copy either
    (violation,) = (completion.model_extra or {})["guardrail_violations"]
    assert (violation["stage"], violation["violation_level"]) == ("input", "warn")


async def test_run_config_guardrails_cover_the_models_they_name(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    rails = [{"shield_id": "pii", "stages": ["output"], "models": ["chat"]}]
    server = await aiohttp_client(create_app(config(guardrails=rails)))
    guarded = await (
        await server.post("/v1/chat/completions", json={"model": "chat", "messages": ask("leak it")})
    ).json()
    assert guarded["choices"][0]["finish_reason"] == "content_filter"
    card = ask("my card is 4111 1111 1111 1111")  # input is not a configured stage: the model runs...
    echoed = await (await server.post("/v1/chat/completions", json={"model": "chat", "messages": card})).json()
    assert scripted[-1].messages[0].content == card[0]["content"]
    assert [v["stage"] for v in echoed["guardrail_violations"]] == ["output"]  # ...and its echo is caught
    unguarded = await (
        await server.post("/v1/chat/completions", json={"model": CHAT_MODEL, "messages": card, "max_tokens": 4})
    ).json()
    assert "guardrail_violations" not in unguarded  # another model: not covered


async def test_text_completions_go_through_the_models_guardrails(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    server = await aiohttp_client(create_app(config(guardrails=[{"shield_id": "pii", "models": ["chat"]}])))
    oai = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
    card = await oai.completions.create(model="chat", prompt="my card is 4111 1111 1111 1111")
    assert COMPLETED == []  # refused before the model ran
    assert [(c.text, c.finish_reason) for c in card.choices] == [("", "content_filter")]
    (violation,) = (card.model_extra or {})["guardrail_violations"]
    assert violation["stage"] == "input" and "payment card number" in violation["user_message"]
    leaked = await oai.completions.create(model="chat", prompt="leak it", n=2)
    assert [(c.index, c.text, c.finish_reason) for c in leaked.choices] == [
        (0, "", "content_filter"),
        (1, "", "content_filter"),
    ]
    assert {v["stage"] for v in (leaked.model_extra or {})["guardrail_violations"]} == {"output"}
    stream = await oai.completions.create(model="chat", prompt="leak it", stream=True)
    chunks = [chunk.model_dump(mode="json") async for chunk in stream]
    text = "".join(choice["text"] for chunk in chunks for choice in chunk["choices"])
    finishes = [choice["finish_reason"] for chunk in chunks for choice in chunk["choices"] if choice["finish_reason"]]
    assert (text, finishes) == ("Sure. ", ["content_filter"])  # the first sentence passed, nothing of the second
    (flagged,) = [chunk["guardrail_violations"] for chunk in chunks if chunk.get("guardrail_violations")]
    assert "email address" in flagged[0]["user_message"]
    assert "never " not in STREAMED  # generation stopped when the stream was closed
    clean = await oai.completions.create(model="chat", prompt="capital?", stream=True)
    assert "".join([c.choices[0].text async for c in clean if c.choices]) == CLEAN
    tokens = await server.post("/v1/completions", json={"model": "chat", "prompt": [1, 2, 3]})
    assert tokens.status == 400 and "token ids" in assert_error_shape(await tokens.json())["message"]
    await oai.close()


async def test_a_text_completion_takes_guardrails_of_its_own(
    oai: openai.AsyncOpenAI, scripted: list[models.ChatCompletionRequest]
) -> None:
    warned = await oai.completions.create(model="chat", prompt="leak it", extra_body={"guardrails": ["pii-redact"]})
    assert (warned.choices[0].text, warned.choices[0].finish_reason) == (REDACTED, "stop")
    stream = await oai.completions.create(
        model="chat", prompt="leak it", stream=True, extra_body={"guardrails": ["pii-redact"]}
    )
    pieces = [choice.text async for chunk in stream for choice in chunk.choices]
    assert "".join(pieces) == REDACTED and not any("ana@" in piece for piece in pieces)
    await oai.completions.create(
        model="chat", prompt="Forward it to ana@example.com please.", extra_body={"guardrails": ["pii-redact"]}
    )
    assert COMPLETED[-1].prompt == "Forward it to [EMAIL] please."  # the model never saw the address
    unguarded = await oai.completions.create(model="chat", prompt="leak it")
    assert unguarded.choices[0].text == LEAKY  # the model "chat" has no guardrail of the run config here


async def test_guardrail_errors(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    server = await aiohttp_client(create_app(config()))
    response = await server.post(
        "/v1/chat/completions", json={"model": "chat", "messages": ask("hi"), "guardrails": ["nope"]}
    )
    assert response.status == 404 and "nope" in assert_error_shape(await response.json())["message"]
    assert scripted == []
    response = await server.post(
        "/v1/chat/completions", json={"model": "chat", "messages": ask("hi"), "guardrails": [{"shield": "pii"}]}
    )
    assert response.status == 400
    bad = await aiohttp_client(create_app(config(guardrails=[{"shield_id": "nope"}])))
    response = await bad.get("/v1/models")
    assert response.status == 503 and "safety.guardrails[0]" in assert_error_shape(await response.json())["message"]


async def test_guardrails_without_the_safety_api_are_503(aiohttp_client: Callable[..., Any]) -> None:
    path = distributions.path_of("edge")
    assert path is not None
    edge = yaml.safe_load(path.read_text())
    providers = {api: entries for api, entries in edge["providers"].items() if api != "safety"}
    no_safety = edge_with(
        apis=[a for a in edge["apis"] if a != "safety"],
        providers=providers,
        registered_resources={"models": []},
        safety={},
    )
    server = await aiohttp_client(create_app(no_safety))
    response = await server.post(
        "/v1/chat/completions", json={"model": CHAT_MODEL, "messages": ask("hi"), "guardrails": ["pii"]}
    )
    assert response.status == 503 and assert_error_shape(await response.json())["code"] == "service_not_enabled"


async def test_the_real_model_streams_under_a_guardrail(aiohttp_client: Callable[..., Any]) -> None:
    server = await aiohttp_client(create_app(edge_with()))
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
    stream = await client.chat.completions.create(
        model=CHAT_MODEL,
        messages=ask("Say hello."),
        stream=True,
        max_tokens=24,
        temperature=0,
        extra_body={"guardrails": ["pii"]},
    )
    content, finish = "", None
    async for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
    await client.close()
    plain = await (
        await server.post(
            "/v1/chat/completions",
            json={"model": CHAT_MODEL, "messages": ask("Say hello."), "max_tokens": 24, "temperature": 0},
        )
    ).json()
    assert content == plain["choices"][0]["message"]["content"] and finish in ("stop", "length")
