"""Shields, run-shield and moderations through `openai` and `llama-stack-client`, on the edge distribution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from tests.support.config import edge_with
from tests.support.errors import assert_error_shape
from tests.support.safety_cases import PII


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


@pytest.mark.parametrize(("text", "flagged", "categories"), PII, ids=[f"pii-{i}" for i in range(len(PII))])
async def test_moderation_of_the_labelled_pii_cases(
    oai: openai.AsyncOpenAI, text: str, flagged: bool, categories: set[str]
) -> None:
    result = (await oai.moderations.create(input=text, model="pii")).results[0]
    assert result.flagged is flagged, result
    assert {name for name, hit in result.categories.model_dump().items() if hit} == categories
    if flagged:
        applied = result.category_applied_input_types.model_dump(exclude_none=True)
        assert applied == {name: ["text"] for name in categories}
        assert all(result.category_scores.model_dump()[name] == 1.0 for name in categories)


async def test_moderation_answers_every_input_and_uses_the_default_shield(server: TestClient[Any, Any]) -> None:
    texts = ["write to ana@example.com", "a harmless sentence"]
    response = await server.post("/v1/moderations", json={"input": texts})  # no model: safety.default_shield_id
    body = await response.json()
    assert response.status == 200, body
    assert body["id"].startswith("modr-") and body["model"] == "pii"
    assert [r["flagged"] for r in body["results"]] == [True, False]
    first = body["results"][0]
    assert first["metadata"]["violation_type"] == "email" and "email address" in first["user_message"]
    assert first["metadata"]["findings"] == [{"category": "email", "kind": "email address", "start": 9, "end": 24}]


async def test_redacting_shield_returns_the_redacted_text(oai: openai.AsyncOpenAI) -> None:
    moderation = await oai.moderations.create(input="card 4111 1111 1111 1111 for ana@example.com", model="pii-redact")
    result = moderation.results[0]
    extra = result.model_extra or {}
    assert result.flagged and extra["metadata"]["redacted_text"] == "card [PAYMENT_CARD] for [EMAIL]"


async def test_run_shield_with_llama_stack_client(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    blocked = await lls.safety.run_shield(
        shield_id="pii",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": [{"type": "text", "text": "My SSN is 123-45-6789."}]},
        ],
    )
    assert blocked.violation is not None and blocked.violation.violation_level == "error"
    assert blocked.violation.metadata is not None and blocked.violation.metadata["violation_type"] == "national_id"
    assert blocked.violation.user_message and "national identity number" in blocked.violation.user_message
    fine = await lls.safety.run_shield(shield_id="pii", messages=[{"role": "user", "content": "Hello there!"}])
    assert fine.violation is None
    redacted = await lls.safety.run_shield(
        shield_id="pii-redact", messages=[{"role": "user", "content": "mail bob@example.com"}]
    )
    assert redacted.violation is not None and redacted.violation.violation_level == "warn"
    assert redacted.violation.metadata is not None
    assert redacted.violation.metadata["redacted_messages"] == ["mail [EMAIL]"]


async def test_shields_register_list_get_and_unregister(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    assert {s.identifier for s in await lls.shields.list()} == {
        "pii", "pii-redact", "llama-guard", "code-scanner", "toxicity"
    }  # fmt: skip
    shield = await lls.shields.register(
        shield_id="team/cards-only", provider_id="pii", params={"categories": ["payment_card"]}
    )
    assert (shield.provider_id, shield.provider_resource_id, shield.type) == ("pii", "team/cards-only", "shield")
    assert shield.params == {"mode": "detect", "categories": ["payment_card"]}
    assert (await lls.shields.retrieve("team/cards-only")).identifier == "team/cards-only"
    result = await lls.safety.run_shield(shield_id="team/cards-only", messages=[{"role": "user", "content": "a@b.io"}])
    assert result.violation is None  # emails are not this shield's business
    with pytest.raises(llama_stack_client.ConflictError):
        await lls.shields.register(shield_id="team/cards-only", provider_id="pii")
    await lls.shields.delete("team/cards-only")
    with pytest.raises(llama_stack_client.NotFoundError):
        await lls.shields.retrieve("team/cards-only")


async def test_safety_errors(server: TestClient[Any, Any]) -> None:
    for method, path, body, status in (
        ("POST", "/v1/safety/run-shield", {"shield_id": "nope", "messages": [{"role": "user", "content": "x"}]}, 404),
        ("POST", "/v1/moderations", {"input": "x", "model": "nope"}, 404),
        ("POST", "/v1/moderations", {"input": ""}, 400),
        ("POST", "/v1/moderations", {"input": []}, 400),
        ("POST", "/v1/moderations", {}, 400),
        ("POST", "/v1/safety/run-shield", {"shield_id": "pii", "messages": []}, 400),
        ("POST", "/v1/safety/run-shield", {"shield_id": "pii", "messages": [{"role": "user", "content": " "}]}, 400),
        ("POST", "/v1/shields", {"shield_id": "x", "provider_id": "pii", "params": {"mode": "shout"}}, 400),
        ("POST", "/v1/shields", {"shield_id": "x", "provider_id": "pii", "params": {"categories": ["weather"]}}, 400),
        ("POST", "/v1/shields", {"shield_id": "x"}, 400),  # several safety providers: which one?
        ("POST", "/v1/shields", {"shield_id": "x", "provider_id": "nope"}, 400),
        ("DELETE", "/v1/shields/pii", None, 400),  # from the run config
        ("DELETE", "/v1/shields/nope", None, 404),
    ):
        response = await server.request(method, path, json=body)
        assert response.status == status, (path, body, await response.text())
        assert_error_shape(await response.json())


async def test_a_bad_registered_shield_stops_start_up(aiohttp_client: Callable[..., Any]) -> None:
    shields = [{"shield_id": "loud", "provider_id": "pii", "params": {"mode": "shout"}}]
    server = await aiohttp_client(create_app(edge_with(registered_resources={"models": [], "shields": shields})))
    response = await server.get("/v1/shields")
    message = assert_error_shape(await response.json())["message"]
    assert response.status == 503 and "registered_resources.shields[0] (loud)" in message


async def test_a_bad_union_field_is_explained_in_request_terms(server: TestClient[Any, Any]) -> None:
    # the message named the generated union members ('input.ModerationInputModerationInput1') before
    response = await server.post("/v1/moderations", json={"input": ""})
    error = assert_error_shape(await response.json())
    assert error["message"] == (
        "Invalid request: body field 'input': String should have at least 1 character or Input should be a valid list"
    )
    assert error["param"] == "input"
