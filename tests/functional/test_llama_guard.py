"""inline::llama-guard: the prompt, the parsing and the category mapping, driven by a scripted model
registered through the real provider table; and once end to end on the real default chat model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import create_app
from pocketstack.providers.inline.llama_guard import taxonomy
from tests.support.config import CHAT_MODEL, edge_providers_with, edge_with
from tests.support.errors import assert_error_shape
from tests.support.safety_cases import GUARD
from tests.support.scripted import judged_text, scripted_entry

GUARD_MODEL = {"model_id": "guard", "provider_id": "scripted", "provider_model_id": "guard", "model_type": "llm"}
SHIELDS = [
    {"shield_id": "guard", "provider_id": "llama-guard", "provider_shield_id": "guard"},
    {"shield_id": "guard-no-s1", "provider_id": "llama-guard", "provider_shield_id": "guard",
     "params": {"excluded_categories": ["S1"]}},
    {"shield_id": "guard-missing-model", "provider_id": "llama-guard", "provider_shield_id": "not-registered"},
]  # fmt: skip
UNREADABLE = "Tell me something odd."


def guard_config(**scripted_config: Any) -> Any:
    llama_cpp = edge_providers_with()["inference"]
    return edge_with(
        providers=edge_providers_with(inference=[*llama_cpp, scripted_entry(**scripted_config)]),
        registered_resources={"models": [GUARD_MODEL], "shields": SHIELDS},
    )


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> TestClient[Any, Any]:
    config = guard_config(verdicts={UNREADABLE: "I think this is fine, probably."})
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


@pytest.mark.parametrize(("text", "flagged", "codes"), GUARD, ids=[f"guard-{i}" for i in range(len(GUARD))])
async def test_moderation_maps_the_verdict_of_each_labelled_case(
    oai: openai.AsyncOpenAI, scripted: list[models.ChatCompletionRequest], text: str, flagged: bool, codes: set[str]
) -> None:
    result = (await oai.moderations.create(input=text, model="guard")).results[0]
    assert judged_text(scripted[-1].messages[0].content) == text  # type: ignore[arg-type]
    assert result.flagged is flagged
    hits = {name for name, hit in result.categories.model_dump(by_alias=True, exclude_none=True).items() if hit}
    hits |= {name for name, hit in (result.categories.model_extra or {}).items() if hit}
    expected = {name for name, mapped in taxonomy.OPENAI_CATEGORIES.items() if codes & set(mapped)}
    assert hits == expected
    extra = result.model_extra or {}
    if flagged:
        assert extra["user_message"] == "I can't answer that. Can I help with something else?"
        assert extra["metadata"]["violation_type"] == ",".join(sorted(codes, key=lambda c: int(c[1:])))
        applied = result.category_applied_input_types.model_dump(by_alias=True, exclude_none=True)
        applied |= result.category_applied_input_types.model_extra or {}
        assert applied == {name: ["text"] for name in expected}
    else:
        assert extra.get("user_message") is None


async def test_the_prompt_is_llama_guard_3s_and_the_answer_is_held_by_a_grammar(
    lls: llama_stack_client.AsyncLlamaStackClient, scripted: list[models.ChatCompletionRequest]
) -> None:
    unsafe = next(text for text, flagged, codes in GUARD if codes == {"S1"})
    messages = [
        {"role": "system", "content": "You are helpful."},  # not judged
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": unsafe},
    ]
    result = await lls.safety.run_shield(shield_id="guard", messages=messages)  # type: ignore[arg-type]
    assert result.violation is not None and result.violation.metadata is not None
    assert (result.violation.violation_level, result.violation.metadata["violation_type"]) == ("error", "S1")
    assert result.violation.metadata["llama_guard_categories"] == ["Violent Crimes"]
    request = scripted[-1]
    prompt = request.messages[0].content
    assert isinstance(prompt, str)
    assert prompt.startswith("Task: Check if there is unsafe content in 'Agent' messages in conversations")
    assert f"<BEGIN CONVERSATION>\n\nUser: Hi\n\nAgent: {unsafe}\n\n<END CONVERSATION>" in prompt
    assert "Provide your safety assessment for ONLY THE LAST Agent message" in prompt
    assert "S1: Violent Crimes.\nS2: Non-Violent Crimes." in prompt and "S14: Code Interpreter Abuse." in prompt
    assert "You are helpful" not in prompt
    assert (request.temperature, request.store) == (0, False)
    assert isinstance(request.grammar, str) and '"S14"' in request.grammar and '"safe"' in request.grammar


async def test_excluded_categories_leave_the_prompt_the_grammar_and_the_verdict(
    lls: llama_stack_client.AsyncLlamaStackClient, scripted: list[models.ChatCompletionRequest]
) -> None:
    only_s1 = next(text for text, _, codes in GUARD if codes == {"S1"})
    s1_and_s9 = next(text for text, _, codes in GUARD if codes == {"S1", "S9"})
    passed = await lls.safety.run_shield(shield_id="guard-no-s1", messages=[{"role": "user", "content": only_s1}])
    assert passed.violation is None
    prompt, grammar = scripted[-1].messages[0].content, scripted[-1].grammar
    assert isinstance(prompt, str) and isinstance(grammar, str)
    assert "S1: Violent Crimes." not in prompt and "S2: Non-Violent Crimes." in prompt
    assert '"S1"' not in grammar and '"S10"' in grammar
    blocked = await lls.safety.run_shield(shield_id="guard-no-s1", messages=[{"role": "user", "content": s1_and_s9}])
    assert blocked.violation is not None and blocked.violation.metadata is not None
    assert blocked.violation.metadata["violation_type"] == "S9"
    shield = await lls.shields.retrieve("guard-no-s1")
    assert shield.params == {"excluded_categories": ["S1"]}


async def test_llama_guard_errors(server: TestClient[Any, Any]) -> None:
    user = [{"role": "user", "content": "hello"}]
    for path, body, status, code in (
        ("/v1/moderations", {"input": UNREADABLE, "model": "guard"}, 502, "unreadable_verdict"),
        ("/v1/safety/run-shield", {"shield_id": "guard-missing-model", "messages": user}, 503,
         "shield_model_unavailable"),
        ("/v1/safety/run-shield", {"shield_id": "guard", "messages": [{"role": "system", "content": "x"}]}, 400, None),
        ("/v1/shields", {"shield_id": "g2", "provider_id": "llama-guard", "provider_shield_id": "guard",
                         "params": {"excluded_categories": ["S99"]}}, 400, None),
        ("/v1/shields", {"shield_id": "g2", "provider_id": "llama-guard", "provider_shield_id": "guard",
                         "params": {"excluded_categories": list(taxonomy.CATEGORIES)}}, 400, None),
        ("/v1/shields", {"shield_id": "g2", "provider_id": "llama-guard", "params": {"temperature": 1}}, 400, None),
    ):  # fmt: skip
        response = await server.post(path, json=body)
        error = assert_error_shape(await response.json())
        assert response.status == status, (body, error)
        assert code is None or error.get("code") == code, error


async def test_a_shield_over_an_embedding_model_is_refused(
    aiohttp_client: Callable[..., Any], stored_embedding: str
) -> None:
    server = await aiohttp_client(create_app(edge_with()))
    response = await server.post(
        "/v1/shields", json={"shield_id": "g", "provider_id": "llama-guard", "provider_shield_id": stored_embedding}
    )
    error = assert_error_shape(await response.json())
    assert response.status == 400 and "runs a chat model" in error["message"]


async def test_the_real_default_model_as_llama_guard_answers_in_shape(aiohttp_client: Callable[..., Any]) -> None:
    # SmolLM2-135M is no Llama Guard: what matters is that its answer always parses, thanks to the grammar.
    server = await aiohttp_client(create_app(edge_with()))
    shield = await (await server.get("/v1/shields/llama-guard")).json()
    assert shield["provider_resource_id"] == CHAT_MODEL
    texts = ["How do I bake bread?", "How do I build a pipe bomb?"]
    response = await server.post("/v1/moderations", json={"input": texts, "model": "llama-guard"})
    body = await response.json()
    assert response.status == 200, body
    assert [type(r["flagged"]) for r in body["results"]] == [bool, bool]
    for result in body["results"]:
        assert set(result["categories"]) == set(taxonomy.OPENAI_CATEGORIES)
        assert result["flagged"] == any(result["categories"].values())
    shielded = await server.post(
        "/v1/safety/run-shield", json={"shield_id": "llama-guard", "messages": [{"role": "user", "content": texts[1]}]}
    )
    assert shielded.status == 200, await shielded.text()
    assert (await server.get("/v1/chat/completions")).status == 200
    assert (await (await server.get("/v1/chat/completions")).json())["data"] == []  # classifications are not stored


async def test_without_the_grammar_the_default_model_does_not_answer_as_llama_guard(
    aiohttp_client: Callable[..., Any],
) -> None:
    guard = {"provider_id": "llama-guard", "provider_type": "inline::llama-guard", "config": {"output_grammar": False}}
    shield = {"shield_id": "free", "provider_id": "llama-guard", "provider_shield_id": CHAT_MODEL}
    config = edge_with(
        providers=edge_providers_with(safety=[guard]), registered_resources={"models": [], "shields": [shield]}
    )
    server = await aiohttp_client(create_app(config))
    response = await server.post("/v1/moderations", json={"input": "How do I bake bread?", "model": "free"})
    error = assert_error_shape(await response.json())
    assert (response.status, error["code"]) == (502, "unreadable_verdict")  # what the grammar prevents


def test_an_unknown_excluded_category_in_the_provider_config_is_a_config_error() -> None:
    from pocketstack.config import ConfigError
    from pocketstack.core.stack import plan_providers

    guard = {"provider_id": "llama-guard", "provider_type": "inline::llama-guard",
             "config": {"excluded_categories": ["S1", "S99"]}}  # fmt: skip
    config = edge_with(providers=edge_providers_with(safety=[guard]), registered_resources={"models": []})
    with pytest.raises(ConfigError) as caught:
        plan_providers(config)  # before anything starts, naming the entry
    assert "providers.safety[0] (llama-guard): config.excluded_categories" in str(caught.value)
    assert "S99 not in S1..S14" in str(caught.value)


async def test_the_provider_named_is_the_models_not_the_output_shields(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    # The guard model lives on a provider of its own: its call runs while the answer is judged.
    guard_provider = {**scripted_entry(), "provider_id": "scripted-guard"}
    chat = {"model_id": "chat", "provider_id": "scripted", "provider_model_id": "chat", "model_type": "llm"}
    config = edge_with(
        providers=edge_providers_with(inference=[scripted_entry(), guard_provider]),
        registered_resources={"models": [chat, {**GUARD_MODEL, "provider_id": "scripted-guard"}], "shields": SHIELDS},
    )
    server = await aiohttp_client(create_app(config))
    body = {"model": "chat", "messages": [{"role": "user", "content": "Hello there."}], "guardrails": ["guard"]}
    for stream in (False, True):
        response = await server.post("/v1/chat/completions", json={**body, "stream": stream})
        text = await response.text()
        assert response.status == 200, text
        assert response.headers["X-PocketStack-Provider"] == "scripted", stream
        judged = [r for r in scripted if str(r.messages[-1].content).startswith("Task: Check if there is unsafe")]
        assert any("Agent: You said: Hello there." in str(r.messages[-1].content) for r in judged)  # output judged
    stored = (await (await server.get("/v1/chat/completions")).json())["data"]
    assert [item["served_by"] for item in stored] == ["scripted", "scripted"]
