"""Prompts through the official `llama_stack_client` (0.7.5): create, versions, the default version,
compare-and-set updates (20 at once from one version: exactly one lands), delete; and a response's
`prompt` through the `openai` client, checked by what the scripted model received. Bad input: unknown
prompts and versions, undeclared and missing variables, stale versions. Another user's prompts:
test_access_matrix.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, cast

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient
from openai.types.responses import ResponsePromptParam

from pocketstack._generated import models
from pocketstack.app import create_app
from tests.support.config import edge_providers_with, edge_with

MISSING_PROMPT = "pmpt_" + "0" * 48


@pytest.fixture
def server(responses_app: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The scripted model's app (conftest): prompts are served whatever the run config lists."""
    return responses_app


def _messages(request: models.ChatCompletionRequest) -> list[tuple[str, Any]]:
    return [(str(message.role), message.content) for message in request.messages]


async def test_versions_the_default_and_delete(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    created = await lls.prompts.create(prompt="You are a {{ role }} assistant.", variables=["role"])
    assert re.fullmatch(r"pmpt_[0-9a-f]{48}", created.prompt_id)
    assert (created.version, created.variables, created.is_default) == (1, ["role"], True)
    assert await lls.prompts.retrieve(created.prompt_id) == created

    second = await lls.prompts.update(
        created.prompt_id, version=1, prompt="You are a {{role}} assistant, {{ tone }}.", variables=["role", "tone"]
    )
    assert (second.version, second.variables, second.is_default) == (2, ["role", "tone"], True)
    assert (await lls.prompts.retrieve(created.prompt_id)).version == 2  # the default follows the update
    first = await lls.prompts.retrieve(created.prompt_id, version=1)
    assert (first.prompt, first.is_default) == (created.prompt, False)

    # Not made the default; variables left out are none (Llama Stack does not carry them over).
    third = await lls.prompts.update(created.prompt_id, version=2, prompt="Plain.", set_as_default=False)
    assert (third.version, third.variables, third.is_default) == (3, [], False)
    assert (await lls.prompts.retrieve(created.prompt_id)).version == 2
    versions = await lls.prompts.versions.list(created.prompt_id)
    assert [(v.version, v.is_default) for v in versions] == [(1, False), (2, True), (3, False)]

    chosen = await lls.prompts.set_default_version(created.prompt_id, version=1)
    assert (chosen.version, chosen.prompt, chosen.is_default) == (1, created.prompt, True)
    other = await lls.prompts.create(prompt="No variables here.")
    assert other.variables == []
    listed = await lls.prompts.list()  # each at its default version, by id descending as Llama Stack lists them
    expected = sorted([(created.prompt_id, 1), (other.prompt_id, 1)], reverse=True)
    assert [(p.prompt_id, p.version) for p in listed] == expected and all(p.is_default for p in listed)

    await lls.prompts.delete(created.prompt_id)  # every version
    for call in (
        lls.prompts.retrieve(created.prompt_id),
        lls.prompts.retrieve(created.prompt_id, version=2),
        lls.prompts.versions.list(created.prompt_id),
    ):
        with pytest.raises(llama_stack_client.NotFoundError):
            await call
    assert [p.prompt_id for p in await lls.prompts.list()] == [other.prompt_id]


async def test_bad_input(lls: llama_stack_client.AsyncLlamaStackClient, server: TestClient[Any, Any]) -> None:
    with pytest.raises(llama_stack_client.BadRequestError) as undeclared:
        await lls.prompts.create(prompt="Hi {{ name }}, {{ place }}.", variables=["name"])
    assert "Prompt contains undeclared variables: ['place']" in str(undeclared.value)
    prompt = await lls.prompts.create(prompt="Hi {{ name }}.", variables=["name", "unused"])  # unused is fine
    with pytest.raises(llama_stack_client.BadRequestError):
        await lls.prompts.update(prompt.prompt_id, version=1, prompt="Hi {{ name }}.")  # its variables are gone
    with pytest.raises(llama_stack_client.BadRequestError):
        await lls.prompts.update(prompt.prompt_id, version=0, prompt="Hi.")
    await lls.prompts.update(prompt.prompt_id, version=1, prompt="Hello.")
    for based_on in (1, 5):  # older than the latest (2), or newer: both a conflict
        with pytest.raises(llama_stack_client.ConflictError) as stale:
            await lls.prompts.update(prompt.prompt_id, version=based_on, prompt="Again.")
        assert "Use the latest version '2' in request." in str(stale.value)

    for call in (
        lls.prompts.retrieve(MISSING_PROMPT),
        lls.prompts.update(MISSING_PROMPT, version=1, prompt="x"),
        lls.prompts.delete(MISSING_PROMPT),
        lls.prompts.set_default_version(MISSING_PROMPT, version=1),
        lls.prompts.versions.list(MISSING_PROMPT),
        lls.prompts.retrieve(prompt.prompt_id, version=7),
        lls.prompts.set_default_version(prompt.prompt_id, version=7),
    ):
        with pytest.raises(llama_stack_client.NotFoundError):
            await call
    answer = await server.get(f"/v1/prompts/{MISSING_PROMPT}")
    assert (await answer.json())["error"]["message"] == f"Prompt '{MISSING_PROMPT}' not found."
    assert (await server.get(f"/v1/prompts/{prompt.prompt_id}?version=0")).status == 200  # 0: the default, as in LS


async def test_prompts_are_served_whatever_the_run_config_lists(aiohttp_client: Callable[..., Any]) -> None:
    """Llama Stack's Prompts API is a built-in router: no provider, not named under `apis`."""
    inference = edge_providers_with()["inference"]
    config = edge_with(apis=["inference"], providers={"inference": inference}, registered_resources={})
    bare: TestClient[Any, Any] = await aiohttp_client(create_app(config))
    async with llama_stack_client.AsyncLlamaStackClient(
        base_url=str(bare.make_url("")).rstrip("/"), max_retries=0
    ) as client:
        created = await client.prompts.create(prompt="Hello.")
        assert [p.prompt_id for p in await client.prompts.list()] == [created.prompt_id]


async def test_twenty_updates_from_one_version_exactly_one_lands(
    lls: llama_stack_client.AsyncLlamaStackClient,
) -> None:
    prompt = await lls.prompts.create(prompt="Version one.")
    tried = await asyncio.gather(
        *(lls.prompts.update(prompt.prompt_id, version=1, prompt=f"Edit {n}.") for n in range(20)),
        return_exceptions=True,
    )
    landed = [result for result in tried if isinstance(result, llama_stack_client.types.Prompt)]
    assert len(landed) == 1 and landed[0].version == 2
    assert all(isinstance(result, llama_stack_client.ConflictError) for result in tried if result not in landed)
    versions = await lls.prompts.versions.list(prompt.prompt_id)
    assert [(v.version, v.prompt) for v in versions] == [(1, "Version one."), (2, landed[0].prompt)]


async def test_a_response_opens_with_the_prompt_filled_in(
    lls: llama_stack_client.AsyncLlamaStackClient,
    oai: openai.AsyncOpenAI,
    scripted: list[models.ChatCompletionRequest],
) -> None:
    prompt = await lls.prompts.create(
        prompt="You are a {{ role }} guide to {{topic}}.", variables=["role", "topic", "unused"]
    )
    variables: dict[str, Any] = {"role": "patient", "topic": {"type": "input_text", "text": "geography"}}
    response = await oai.responses.create(
        model="chat",
        input="capital?",
        instructions="Be brief.",
        prompt={"id": prompt.prompt_id, "variables": variables},
    )
    assert response.output_text == "Paris."
    assert _messages(scripted[-1]) == [  # the prompt first, then the instructions, as Llama Stack orders them
        ("system", "You are a patient guide to geography."),
        ("system", "Be brief."),
        ("user", "capital?"),
    ]
    assert response.prompt is not None and response.prompt.id == prompt.prompt_id
    assert response.prompt.model_dump(exclude_none=True)["variables"] == variables  # echoed as given
    assert (await oai.responses.retrieve(response.id)).prompt == response.prompt

    # Like instructions, the prompt is this response's only: the next one in the thread does not read it.
    await oai.responses.create(model="chat", input="again", previous_response_id=response.id)
    assert [role for role, _ in _messages(scripted[-1])] == ["user", "assistant", "user"]

    await lls.prompts.update(prompt.prompt_id, version=1, prompt="Version two.")
    await oai.responses.create(model="chat", input="capital?", prompt={"id": prompt.prompt_id})
    assert _messages(scripted[-1])[0] == ("system", "Version two.")  # the default version
    await oai.responses.create(
        model="chat", input="capital?", prompt={"id": prompt.prompt_id, "version": "1", "variables": variables}
    )
    assert _messages(scripted[-1])[0] == ("system", "You are a patient guide to geography.")

    stream = await oai.responses.create(model="chat", input="capital?", prompt={"id": prompt.prompt_id}, stream=True)
    events = [event async for event in stream]
    assert events[0].type == "response.created" and events[0].response.prompt is not None
    last = events[-1]
    assert last.type == "response.completed" and last.response.prompt is not None
    assert last.response.prompt.id == prompt.prompt_id


@pytest.mark.parametrize(
    ("prompt", "error", "words"),
    [
        ({"id": MISSING_PROMPT}, openai.NotFoundError, f"Prompt '{MISSING_PROMPT}' not found."),
        ({"version": "9"}, openai.NotFoundError, "version 9 not found"),
        ({"version": "two"}, openai.BadRequestError, "'prompt.version': two"),
        ({"variables": {"city": "Paris", "weather": "x"}}, openai.BadRequestError, "weather. Variable not defined"),
        ({"variables": {}}, openai.BadRequestError, "Missing value for prompt variables: city"),
        (
            {"variables": {"city": {"type": "input_image", "image_url": "https://example.com/a.png"}}},
            openai.BadRequestError,
            "Prompt variable 'city' is 'input_image'",
        ),
    ],
)
async def test_a_response_with_a_bad_prompt_is_refused_before_the_model_runs(
    lls: llama_stack_client.AsyncLlamaStackClient,
    oai: openai.AsyncOpenAI,
    scripted: list[models.ChatCompletionRequest],
    prompt: dict[str, Any],
    error: type[openai.APIStatusError],
    words: str,
) -> None:
    stored = await lls.prompts.create(prompt="Talk about {{ city }}.", variables=["city", "mood"])
    with pytest.raises(error) as refused:
        await oai.responses.create(
            model="chat", input="capital?", prompt=cast(ResponsePromptParam, {"id": stored.prompt_id, **prompt})
        )
    assert words in str(refused.value)
    assert scripted == [] and (await oai.get("/responses", cast_to=dict[str, Any]))["data"] == []
