"""Regression tests for what a spec fuzzer (schemathesis over spec/openapi.yaml, issue 21 §5) found:
requests that answered 500, and answers the spec did not document. Each now gets a 4xx in the spec's
error shape, or a 2xx where the input is valid, and the server keeps serving afterwards."""

from __future__ import annotations

from typing import Any

import llama_stack_client
import openai
import pytest
import yaml
from aiohttp.test_utils import TestClient

from tests.support.config import REPO
from tests.support.errors import assert_error_shape


@pytest.fixture
def server(responses_app: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The edge distribution with the scripted model "chat" and the edge shields."""
    return responses_app


async def _error(reply: Any, status: int = 400) -> dict[str, Any]:
    assert reply.status == status, await reply.text()
    return assert_error_shape(await reply.json())


# -- run-shield: a message may leave its content out ------------------------------------------


async def test_run_shield_with_an_assistant_message_without_content(
    server: TestClient[Any, Any], lls: llama_stack_client.AsyncLlamaStackClient
) -> None:
    # OpenAI lets an assistant message that made tool calls leave content out: it has no text to check.
    reply = await server.post("/v1/safety/run-shield", json={"shield_id": "pii", "messages": [{"role": "assistant"}]})
    assert (await _error(reply))["param"] == "messages"
    checked = await lls.safety.run_shield(
        shield_id="pii",
        messages=[
            {"role": "user", "content": "Who writes the minutes?"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
            },
            {"role": "assistant", "content": "Write to ana@example.com."},
        ],
    )
    assert checked.violation is not None


# -- vector store update: expires_after is {anchor, days} -------------------------------------


async def test_vector_store_update_with_an_empty_expires_after(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    store = await oai.vector_stores.create(name="notes", extra_body={"embedding_model": stored_embedding})
    reply = await server.post(f"/v1/vector_stores/{store.id}", json={"expires_after": {}})
    detail = await _error(reply)
    assert detail["param"] == "expires_after.days"
    assert detail["code"] == "invalid_request"
    reply = await server.post(f"/v1/vector_stores/{store.id}", json={"expires_after": {"days": 0}})
    assert (await _error(reply))["param"] == "expires_after.days"
    reply = await server.post(
        f"/v1/vector_stores/{store.id}", json={"expires_after": {"anchor": "created_at", "days": 2}}
    )
    assert (await _error(reply))["param"] == "expires_after.anchor"
    updated = await oai.vector_stores.update(store.id, expires_after={"anchor": "last_active_at", "days": 2})
    assert updated.expires_after is not None and updated.expires_after.days == 2
    cleared = await oai.vector_stores.update(store.id, expires_after=None)
    assert cleared.expires_after is None


# -- offsets past SQLite's INTEGER: past the end, not an OverflowError -----------------------

HUGE = 10**30  # the spec bounds start_index below only; Llama Stack slices a list, so this is past the end


async def test_agents_and_sessions_listings_with_a_huge_start_index(server: TestClient[Any, Any]) -> None:
    created = await server.post(
        "/v1alpha/agents", json={"agent_config": {"model": "chat", "instructions": "Be brief."}}
    )
    agent_id = (await created.json())["agent_id"]
    session = await server.post(f"/v1alpha/agents/{agent_id}/session", json={"session_name": "s"})
    session_id = (await session.json())["session_id"]
    for path in ("/v1alpha/agents", f"/v1alpha/agents/{agent_id}/sessions", "/v1/agents"):
        for start in (HUGE, 2**63 - 1, 2**63):
            reply = await server.get(path, params={"start_index": str(start), "limit": "100"})
            assert reply.status == 200, await reply.text()
            assert await reply.json() == {"data": [], "has_more": False}
        reply = await server.get(path, params={"start_index": str(-HUGE)})
        assert (await _error(reply))["param"] == "start_index"
        reply = await server.get(path, params={"limit": str(HUGE)})
        assert (await _error(reply))["param"] == "limit"
    listed = await (await server.get(f"/v1alpha/agents/{agent_id}/sessions", params={"start_index": "0"})).json()
    assert [s["session_id"] for s in listed["data"]] == [session_id]


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # Llama Stack marks datasets.register
async def test_dataset_rows_with_a_huge_start_index_or_limit(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    rows: list[dict[str, object]] = [{"question": f"{n} + 1?", "answer": str(n + 1)} for n in range(3)]
    await lls.beta.datasets.register(purpose="eval/question-answer", source={"type": "rows", "rows": rows},
                                     dataset_id="sums")  # fmt: skip
    past = await lls.beta.datasets.iterrows("sums", start_index=HUGE, limit=HUGE)
    assert past.data == [] and not past.has_more
    everything = await lls.beta.datasets.iterrows("sums", start_index=1, limit=HUGE)
    assert everything.data == rows[1:] and not everything.has_more
    with pytest.raises(llama_stack_client.BadRequestError):
        await lls.beta.datasets.iterrows("sums", start_index=-HUGE)


# -- POST /v1/models: odd ids and metadata ----------------------------------------------------


async def test_a_model_path_with_a_nul_is_refused(client: TestClient[Any, Any]) -> None:
    # On llama-cpp the id is a path; a NUL cannot be in one (os functions raise ValueError, not OSError).
    for body in ({"model_id": "a\x00b"}, {"model_id": "m", "provider_model_id": "models/\x00.gguf"}):
        reply = await client.post("/v1/models", json=body)
        assert (await _error(reply))["param"] == "provider_model_id"
    assert (await client.get("/v1/models")).status == 200


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({"fallbacks": [{}]}, "metadata.fallbacks"),
        ({"fallbacks": "x"}, "metadata.fallbacks"),
        ({"fallbacks": [{"provider_id": "llama-cpp", "provider_model_id": "/etc/passwd"}]}, "metadata.fallbacks"),
        ({"sampling_defaults": "x"}, "metadata.sampling_defaults"),
        ({"sampling_defaults": {"temperature": "hot"}}, "metadata.sampling_defaults"),
    ],
)
async def test_model_metadata_the_server_reads_is_held_to_its_shape(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, metadata: dict[str, Any], param: str
) -> None:
    # Registered as given, these made every later chat or response with the model a 500 (and a
    # metadata.fallbacks entry skipped the checks the `fallbacks` field gets).
    body = {"model_id": "odd", "provider_id": "scripted", "provider_model_id": "chat", "metadata": metadata}
    assert (await _error(await server.post("/v1/models", json=body)))["param"] == param
    assert (await server.get("/v1/models/odd")).status == 404
    body["metadata"] = {"sampling_defaults": {"temperature": 0.25}, "note": {"fallbacks": "mine"}}
    assert (await server.post("/v1/models", json=body)).status == 200
    answer = await oai.responses.create(model="odd", input="capital?")
    assert answer.output_text == "Paris." and answer.temperature == 0.25


ODD_IDS = ["x\x00y", "tab\there", "\u202eevil", "\U0010ffff", "a/b/c", "a?b#c", "%2F", "é" * 1000]


async def test_models_with_odd_unicode_ids_register_list_get_and_serve(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI
) -> None:
    # On a provider whose ids are names (not paths), any string is an id: accepted and usable throughout.
    for model_id in ODD_IDS:
        reply = await server.post("/v1/models", json={"model_id": model_id, "provider_id": "scripted",
                                                      "provider_model_id": "chat"})  # fmt: skip
        assert reply.status == 200, await reply.text()
    listed = {model.id for model in (await oai.models.list()).data}
    assert set(ODD_IDS) <= listed
    for model_id in ODD_IDS:
        assert (await oai.models.retrieve(model_id)).id == model_id
        answer = await oai.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "capital?"}])
        assert answer.model == model_id
    reply = await server.post("/v1/models", data=b'{"model_id": "\\ud800", "provider_id": "scripted"}',
                              headers={"Content-Type": "application/json"})  # fmt: skip
    assert (await _error(reply))["param"] == "model_id"  # a lone surrogate is not a string


# -- a response's model names a shield or a model of another type ----------------------------


@pytest.mark.parametrize("mode", [{}, {"stream": True}])
async def test_a_response_whose_model_is_a_shield_or_an_embedding_model(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, stored_embedding: str, mode: dict[str, Any]
) -> None:
    for model in ("pii", "llama-guard", stored_embedding):
        reply = await server.post("/v1/responses", json={"model": model, "input": "capital?", **mode})
        detail = await _error(reply)
        assert (detail["param"], detail["code"]) == ("model", "wrong_model_type"), detail
        assert "shield" in detail["message"] or "embedding" in detail["message"]
    assert await _error(await server.post("/v1/responses", json={"model": "nope", "input": "x", **mode}), 404)
    answered = await oai.responses.create(model="chat", input="capital?")
    assert answered.output_text == "Paris."


async def test_a_background_response_whose_model_is_a_shield_fails_saying_so(oai: openai.AsyncOpenAI) -> None:
    # A background response is accepted first and fails in-band, as one with an unknown model does.
    stream = await oai.responses.create(model="pii", input="capital?", background=True, stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.error is not None and "'pii' is a shield, not a model" in failed.error.message
    assert (await oai.responses.retrieve(failed.id)).status == "failed"


async def test_a_chat_or_embedding_with_a_shield_as_model_is_a_400(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as chat:
        await oai.chat.completions.create(model="pii", messages=[{"role": "user", "content": "capital?"}])
    assert "'pii' is a shield, not a model" in str(chat.value)
    with pytest.raises(openai.BadRequestError):
        await oai.embeddings.create(model="toxicity", input="hello")
    with pytest.raises(openai.NotFoundError):
        await oai.models.retrieve("pii")  # the models API itself still does not know it


# -- a user's MCP URL with no usable host name -----------------------------------------------

BAD_HOSTS = [
    "http://a..b/mcp",
    f"http://{'a' * 64}.example.com/mcp",
    "http://\u202e.example/mcp",
    f"http://{'a' * 300}/",
]


async def test_list_tools_with_an_empty_or_unusable_mcp_endpoint(server: TestClient[Any, Any]) -> None:
    reply = await server.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint": ""})
    detail = await _error(reply)
    assert (detail["param"], detail["code"], detail["message"]) == ("mcp_endpoint", "outbound_url_refused",
                                                                    "The URL is empty.")  # fmt: skip
    for url in BAD_HOSTS:  # the resolver's IDNA step raised UnicodeError, not OSError
        reply = await server.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint": url})
        detail = await _error(reply)
        assert (detail["param"], detail["code"]) == ("mcp_endpoint", "outbound_url_refused")
        assert "no valid host name" in detail["message"]
    assert (await server.get("/v1/tool-runtime/list-tools")).status == 200


async def test_an_mcp_tool_or_tool_group_with_an_unusable_host_is_a_400(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI
) -> None:
    for url in BAD_HOSTS:
        with pytest.raises(openai.BadRequestError) as raised:
            await oai.responses.create(model="chat", input="hi",
                                       tools=[{"type": "mcp", "server_label": "x", "server_url": url}])  # fmt: skip
        assert raised.value.code == "outbound_url_refused"
        group = {"toolgroup_id": "mcp::x", "provider_id": "model-context-protocol", "mcp_endpoint": {"uri": url}}
        assert (await _error(await server.post("/v1/toolgroups", json=group)))["param"] == "mcp_endpoint"


# -- prompt versions past SQLite's INTEGER name no version ------------------------------------


async def test_prompt_versions_past_sqlite_integers(
    lls: llama_stack_client.AsyncLlamaStackClient, oai: openai.AsyncOpenAI
) -> None:
    created = await lls.prompts.create(prompt="Answer as a {{ role }}.", variables=["role"])
    for version in (HUGE, 2**63):
        with pytest.raises(llama_stack_client.NotFoundError):
            await lls.prompts.retrieve(created.prompt_id, version=version)
        with pytest.raises(llama_stack_client.NotFoundError):
            await lls.prompts.set_default_version(created.prompt_id, version=version)
        with pytest.raises(llama_stack_client.ConflictError):  # not the latest version
            await lls.prompts.update(created.prompt_id, version=version, prompt="Plain.")
        with pytest.raises(openai.NotFoundError):
            await oai.responses.create(model="chat", input="capital?",
                                       prompt={"id": created.prompt_id, "version": str(version)})  # fmt: skip
    with pytest.raises(llama_stack_client.NotFoundError):  # the query's version has no lower bound
        await lls.prompts.retrieve(created.prompt_id, version=-HUGE)
    with pytest.raises(llama_stack_client.ConflictError):
        await lls.prompts.update(created.prompt_id, version=2**63 - 1, prompt="Plain.")
    assert (await lls.prompts.update(created.prompt_id, version=1, prompt="Plain.")).version == 2


# -- telemetry queries: bounds and attribute filters past SQLite's integers -------------------


@pytest.mark.parametrize("bound", [10**30, -(10**30), 10**400])
async def test_telemetry_queries_with_numbers_past_sqlite_integers(server: TestClient[Any, Any], bound: int) -> None:
    window = {"start_time": min(0, bound), "end_time": max(0, bound), "query_type": "range", "granularity": "1h"}
    reply = await server.post("/v1/telemetry/metrics/prompt_tokens", json=window)
    assert reply.status == 200, await reply.text()
    assert (await reply.json())["data"] == []
    where = [{"key": "gen_ai.usage.input_tokens", "op": "gt", "value": bound}]
    for path in ("/v1/telemetry/traces", "/v1/telemetry/spans"):
        body: dict[str, Any] = {"attribute_filters": where}
        if path.endswith("spans"):
            body["attributes_to_return"] = ["gen_ai.request.model"]
        reply = await server.post(path, json=body)
        assert reply.status == 200, (path, await reply.text())


async def test_telemetry_attribute_filters_with_a_control_character_key(server: TestClient[Any, Any]) -> None:
    for path in ("/v1/telemetry/traces", "/v1/telemetry/spans"):
        body: dict[str, Any] = {"attribute_filters": [{"key": "a\u0000b", "op": "eq", "value": "x"}]}
        if path.endswith("spans"):
            body["attributes_to_return"] = ["a"]
        detail = await _error(await server.post(path, json=body))
        assert "control character" in detail["message"]


# -- /v1/completions: a prompt with nothing in it ----------------------------------------------


@pytest.mark.parametrize("prompt", ["", [], [""], [[]]])
async def test_a_completion_of_an_empty_prompt_is_a_400(client: TestClient[Any, Any], prompt: Any) -> None:
    body = {"model": "llama-cpp/SmolLM2-135M-Instruct", "prompt": prompt, "max_tokens": 4}
    detail = await _error(await client.post("/v1/completions", json=body))
    assert detail["param"] == "prompt"
    healthy = await client.post("/v1/completions", json={**body, "prompt": "Once upon a time"})
    assert healthy.status == 200, await healthy.text()


# -- POST /v1/models: a fallback with keys besides its two -----------------------------------


async def test_a_fallback_with_other_keys_registers_with_its_two(server: TestClient[Any, Any]) -> None:
    # The spec's ModelTarget allows other keys; they reached the stored model's strict schema (a 500).
    fallback = {"provider_id": "scripted", "provider_model_id": "chat", "weight": [{}], "": {"x": 1}}
    body = {"model_id": "backed", "provider_id": "scripted", "provider_model_id": "chat", "fallbacks": [fallback]}
    reply = await server.post("/v1/models", json=body)
    assert reply.status == 200, await reply.text()
    stored = (await reply.json())["metadata"]["fallbacks"]
    assert stored == [{"provider_id": "scripted", "provider_model_id": "chat"}]
    body = {**body, "model_id": "badly-backed", "fallbacks": [{**fallback, "provider_id": "nope"}]}
    assert (await server.post("/v1/models", json=body)).status in (400, 404)


# -- answers the spec did not document (the spec was wrong, the server right) ----------------

SPEC = yaml.safe_load((REPO / "spec" / "openapi.yaml").read_text())


def _documented(method: str, path: str) -> set[int]:
    return {int(code) for code in SPEC["paths"][path][method]["responses"]}


async def test_undocumented_answers_are_now_in_the_spec(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    conversation = await oai.conversations.create()
    store = await oai.vector_stores.create(name="n", extra_body={"embedding_model": stored_embedding})
    item = {"type": "message", "role": "user", "content": "hi", "id": "msg_1"}
    asked: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
        ("get", "/v1/conversations/{conversation_id}", "/v1/conversations/nope", None, 400),
        ("delete", "/v1/conversations/{conversation_id}", "/v1/conversations/nope", None, 400),
        ("get", "/v1/conversations/{conversation_id}/items/{item_id}", "/v1/conversations/nope/items/x", None, 400),
        ("delete", "/v1/conversations/{conversation_id}/items/{item_id}", "/v1/conversations/nope/items/x", None,
         400),
        ("post", "/v1/conversations", "/v1/conversations", {"items": [item, item]}, 409),
        ("post", "/v1/conversations/{conversation_id}/items", f"/v1/conversations/{conversation.id}/items",
         {"items": [item, item]}, 409),
        ("post", "/v1/vector_stores", "/v1/vector_stores", {"embedding_model": "nope"}, 404),
        ("post", "/v1/vector_stores/{vector_store_id}/files", f"/v1/vector_stores/{store.id}/files",
         {"file_id": "nope"}, 404),
        ("post", "/v1/telemetry/events", "/v1/telemetry/events", {"event": {
            "type": "structured_log", "trace_id": "t", "span_id": "s", "timestamp": "2026-01-01T00:00:00Z",
            "payload": {"type": "span_end", "status": "ok"}}}, 404),
    ]  # fmt: skip
    for method, template, path, body, status in asked:
        reply = await server.request(method, path, json=body)
        await _error(reply, status)
        assert status in _documented(method, template), (method, template, status)


# -- responses: truncation "auto" is refused as not supported, not a server error ------------


async def test_auto_truncation_is_a_400_not_a_500(server: TestClient[Any, Any], oai: openai.AsyncOpenAI) -> None:
    reply = await server.post("/v1/responses", json={"model": "chat", "input": "capital?", "truncation": "auto"})
    detail = await _error(reply)
    assert (detail["param"], detail["code"]) == ("truncation", "not_supported")
    assert "Truncation mode 'auto' is not supported" in detail["message"]
    assert (await oai.responses.create(model="chat", input="capital?", truncation="disabled")).output_text == "Paris."


# -- list-tools: mcp_endpoint as Llama Stack's URL object, mcp_endpoint[uri]= -----------------


async def test_list_tools_reads_mcp_endpoint_given_as_an_object(server: TestClient[Any, Any]) -> None:
    # Llama Stack's clients send its URL {uri} as `mcp_endpoint[uri]=`: it was ignored (every tool listed).
    reply = await server.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint[uri]": ""})
    detail = await _error(reply)
    assert (detail["param"], detail["message"]) == ("mcp_endpoint", "The URL is empty.")
    reply = await server.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint[uri]": BAD_HOSTS[0]})
    assert "no valid host name" in (await _error(reply))["message"]
