"""Telemetry of agent runs: an `invoke_agent` span per response or agent turn, over its model calls
(`chat <model>`) and tool calls (`execute_tool <tool>`), lasting as long as the run (a stream's to its
end, a background one's to its task's end); `traceparent` carried to an MCP server; the Tool Runtime's
invoke as an `execute_tool` span; arguments and results only when the config opts in; the
`pocketstack.tool.calls` counter on /metrics; the spans filed under the user who started the run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient
from openai.types.responses import FunctionToolParam
from prometheus_client.parser import text_string_to_metric_families

from pocketstack._generated import models
from pocketstack.app import STACK, create_app
from pocketstack.config import StackConfig
from tests.functional.conftest import MCP_REQUEST_HEADERS
from tests.support.config import edge_providers_with, edge_with, server_allowing
from tests.support.documents import store_of
from tests.support.otlp import otlp_receiver
from tests.support.scripted import CHAT, scripted_entry
from tests.support.spans import StoredSpan, children_of, stored_spans
from tests.support.users import As, with_test_users

COMET = "What does a comet grow near the sun?"
AGENT_COMET = "Look it up: what does a comet grow near the sun?"
ADD = "Add 2 and 3."
WEATHER = "Weather in Paris?"
QUERY = "comet tail near the sun"
CALLS = {
    COMET: [{"name": "file_search", "arguments": json.dumps({"query": QUERY})}],
    AGENT_COMET: [{"name": "knowledge_search", "arguments": json.dumps({"query": QUERY})}],
    ADD: [{"name": "add", "arguments": '{"a": 2, "b": 3}'}],
    WEATHER: [{"name": "get_weather", "arguments": '{"city": "Paris"}'}],
}
CHAT_SPAN = "chat chat"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
PASSAGE = "glowing tail of ice and dust"
WEATHER_TOOL: FunctionToolParam = {  # type: ignore[typeddict-item]  # sent without `strict`, as OpenAI allows
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _config(**telemetry: Any) -> StackConfig:
    return edge_with(
        providers=edge_providers_with(
            inference=[*edge_providers_with()["inference"], scripted_entry(replies={"capital?": "Paris."}, calls=CALLS)]
        ),
        registered_resources={
            "models": [CHAT],
            "shields": [{"shield_id": "pii", "provider_id": "pii"}],
            "tool_groups": [{"toolgroup_id": "builtin::rag", "provider_id": "file-search"}],
        },
        server=server_allowing("127.0.0.1"),  # the MCP server listens there
        **({"telemetry": telemetry} if telemetry else {}),
    )


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> TestClient[Any, Any]:
    return await aiohttp_client(with_test_users(create_app(_config())))  # type: ignore[no-any-return]


def _only(spans: list[StoredSpan], name: str) -> StoredSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _named(spans: list[StoredSpan], parent: StoredSpan) -> list[str]:
    return [s.name for s in children_of(spans, parent)]


async def _ends(server: TestClient[Any, Any]) -> dict[str, float]:
    """Each stored span's end time, by span id (StoredSpan keeps durations only)."""
    rows = await server.app[STACK].database.fetch("SELECT span_id, end_time FROM spans")
    return {row["span_id"]: row["end_time"] for row in rows}


async def _tool_calls(server: TestClient[Any, Any], name: str, tool_type: str, outcome: str) -> float:
    """The pocketstack.tool.calls counter for one tool, type and outcome, from GET /metrics."""
    text = await (await server.get("/metrics")).text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "pocketstack_tool_calls"
        for sample in family.samples
        if sample.name.endswith("_total")
        and sample.labels.get("gen_ai_tool_name") == name
        and sample.labels.get("gen_ai_tool_type") == tool_type
        and sample.labels.get("pocketstack_tool_outcome") == outcome
    )


def _nowhere(spans: list[StoredSpan], *texts: str) -> None:
    for span in spans:
        recorded = json.dumps([span.attributes, span.events])
        for text in texts:
            assert text not in recorded, (span.name, text)


# -- Responses ---------------------------------------------------------------------------------------


async def test_a_rag_response_is_an_agent_span_over_its_model_and_tool_calls(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    store = await store_of(oai, stored_embedding)
    before = await _tool_calls(server, "file_search", "datastore", "ok")
    tools: Any = [{"type": "file_search", "vector_store_ids": [store]}]
    response = await oai.responses.create(model="chat", input=COMET, tools=tools, include=["file_search_call.results"])
    search = response.output[0]
    assert search.type == "file_search_call" and search.results
    spans = await stored_spans(server.app)
    http = _only(spans, "POST /v1/responses")
    (api,) = children_of(spans, http)
    assert api.name == "Responses.create_openai_response"
    (agent,) = children_of(spans, api)
    assert agent.name == "invoke_agent" and agent.kind == "internal"
    assert _named(spans, agent) == [CHAT_SPAN, "execute_tool file_search", CHAT_SPAN]  # in the order they ran
    assert response.usage is not None
    expected = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.request.model": "chat",
        "gen_ai.response.id": response.id,
        "gen_ai.usage.input_tokens": response.usage.input_tokens,
        "gen_ai.usage.output_tokens": response.usage.output_tokens,
        "pocketstack.response.status": "completed",
    }
    assert {key: agent.attributes.get(key) for key in expected} == expected
    assert "gen_ai.conversation.id" not in agent.attributes and "pocketstack.prompt.id" not in agent.attributes
    tool = children_of(spans, agent)[1]
    assert {key: tool.attributes.get(key) for key in ("gen_ai.operation.name", "gen_ai.tool.name",
            "gen_ai.tool.type", "pocketstack.tool.outcome", "pocketstack.tool.result_count")} == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "file_search", "gen_ai.tool.type": "datastore",
        "pocketstack.tool.outcome": "ok", "pocketstack.tool.result_count": len(search.results)}  # fmt: skip
    assert str(tool.attributes["gen_ai.tool.call.id"]).startswith("call_")  # the model's call
    assert tool.status != "error"
    # capture_content is off: no arguments, no result, no query anywhere
    assert "gen_ai.tool.call.arguments" not in tool.attributes and "gen_ai.tool.call.result" not in tool.attributes
    _nowhere(spans, QUERY, PASSAGE, COMET)
    assert await _tool_calls(server, "file_search", "datastore", "ok") == before + 1


async def test_a_streamed_response_span_ends_with_its_stream_and_its_usage(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    store = await store_of(oai, stored_embedding)
    tools: Any = [{"type": "file_search", "vector_store_ids": [store]}]
    stream = await oai.responses.create(model="chat", input=COMET, tools=tools, stream=True)
    events = [event async for event in stream]
    final = events[-1]
    assert final.type == "response.completed" and final.response.usage is not None
    spans = await stored_spans(server.app)
    agent = _only(spans, "invoke_agent")
    # the tool call and the second model call ran while the stream was read: still the run's children
    assert _named(spans, agent) == [CHAT_SPAN, "execute_tool file_search", CHAT_SPAN]
    ends = await _ends(server)
    assert all(ends[agent.span_id] >= ends[child.span_id] for child in children_of(spans, agent))
    assert agent.attributes["gen_ai.response.id"] == final.response.id
    assert agent.attributes["gen_ai.usage.input_tokens"] == final.response.usage.input_tokens
    assert agent.attributes["gen_ai.usage.output_tokens"] == final.response.usage.output_tokens
    assert "pocketstack.stream.abandoned" not in agent.attributes


async def test_a_client_function_call_is_handed_over_and_the_chain_is_the_conversation(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI
) -> None:
    before = await _tool_calls(server, "get_weather", "function", "handed_to_client")
    first = await oai.responses.create(model="chat", input=WEATHER, tools=[WEATHER_TOOL])
    (call,) = first.output
    assert call.type == "function_call"
    second = await oai.responses.create(
        model="chat",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "The tool said: sunny"
    spans = await stored_spans(server.app)
    handed, answered = [s for s in spans if s.name == "invoke_agent"]
    assert not [s for s in spans if s.name.startswith("execute_tool")]  # nothing ran on the server
    (event,) = handed.events
    assert event["name"] == "pocketstack.tool.handed_to_client"
    assert event["attributes"] == {
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": call.call_id,
    }
    assert "gen_ai.conversation.id" not in handed.attributes
    assert answered.attributes["gen_ai.conversation.id"] == first.id  # the response it continues
    assert answered.events == []
    assert await _tool_calls(server, "get_weather", "function", "handed_to_client") == before + 1


async def test_a_stored_prompt_is_named_on_the_agent_span(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI
) -> None:
    created = await (await server.post("/v1/prompts", json={"prompt": "Be brief."})).json()
    prompt_id = created["prompt_id"]
    await oai.responses.create(model="chat", input="capital?", prompt={"id": prompt_id})  # the default version
    conversation = await oai.conversations.create()
    await oai.responses.create(
        model="chat", input="capital?", prompt={"id": prompt_id, "version": "1"}, conversation=conversation.id
    )
    default, pinned = [s for s in await stored_spans(server.app) if s.name == "invoke_agent"]
    for span in (default, pinned):
        assert (span.attributes["pocketstack.prompt.id"], span.attributes["pocketstack.prompt.version"]) == (
            prompt_id,
            1,
        )
    assert pinned.attributes["gen_ai.conversation.id"] == conversation.id


# -- MCP ---------------------------------------------------------------------------------------------


async def test_an_mcp_call_is_a_tool_span_and_the_server_receives_its_trace(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, mcp_url: str
) -> None:
    MCP_REQUEST_HEADERS.clear()
    tools: Any = [{"type": "mcp", "server_label": "calc", "server_url": mcp_url, "require_approval": "never"}]
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    response = await oai.responses.create(
        model="chat", input=ADD, tools=tools, extra_headers={"traceparent": traceparent}
    )
    assert response.output_text == "The tool said: 5"
    spans = await stored_spans(server.app)
    agent = _only(spans, "invoke_agent")
    assert agent.trace_id == CLIENT_TRACE
    assert _named(spans, agent) == [CHAT_SPAN, "execute_tool add", CHAT_SPAN]
    tool = children_of(spans, agent)[1]
    assert tool.attributes["gen_ai.tool.type"] == "extension" and tool.attributes["pocketstack.tool.outcome"] == "ok"
    sent = [headers["traceparent"] for headers in MCP_REQUEST_HEADERS]
    assert sent and len(sent) == len(MCP_REQUEST_HEADERS)  # every request of the listing and the call
    assert {value.split("-")[1] for value in sent} == {CLIENT_TRACE}
    parents = {value.split("-")[2] for value in sent}
    assert parents == {agent.span_id, tool.span_id}  # the listing ran under the run, the call under its span


async def test_an_mcp_call_waiting_for_approval_then_approved(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, mcp_url: str
) -> None:
    tools: Any = [{"type": "mcp", "server_label": "calc", "server_url": mcp_url}]  # approval: always
    asked = await oai.responses.create(model="chat", input=ADD, tools=tools)
    request = asked.output[-1]
    assert request.type == "mcp_approval_request"
    approved = await oai.responses.create(
        model="chat",
        previous_response_id=asked.id,
        tools=tools,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
    )
    assert approved.output_text == "The tool said: 5"
    spans = await stored_spans(server.app)
    waiting, ran = [s for s in spans if s.name == "execute_tool add"]
    assert waiting.attributes["pocketstack.tool.outcome"] == "approval_requested"
    assert ran.attributes["pocketstack.tool.outcome"] == "ok"
    assert ran.attributes["gen_ai.tool.call.id"] == waiting.attributes["gen_ai.tool.call.id"]  # the same call
    first, second = [s for s in spans if s.name == "invoke_agent"]
    assert waiting.parent_span_id == first.span_id and ran.parent_span_id == second.span_id


# -- Agents and the Tool Runtime ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_an_agent_turn_is_an_agent_span_over_its_steps(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, stored_embedding: str, stream: bool
) -> None:
    store = await store_of(oai, stored_embedding)
    rag = {"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": [store]}}
    config = {"model": "chat", "name": "librarian", "instructions": "Be terse.", "input_shields": ["pii"],
              "toolgroups": [rag]}  # fmt: skip
    agent_id = (await (await server.post("/v1alpha/agents", json={"agent_config": config})).json())["agent_id"]
    made = await server.post(f"/v1alpha/agents/{agent_id}/session", json={"session_name": "s"})
    session_id = (await made.json())["session_id"]
    path = f"/v1alpha/agents/{agent_id}/session/{session_id}/turn"
    reply = await server.post(path, json={"messages": [{"role": "user", "content": AGENT_COMET}], "stream": stream})
    assert reply.status == 200
    text = await reply.text()
    assert PASSAGE in text
    spans = await stored_spans(server.app)
    agent = _only(spans, "invoke_agent librarian")
    api = next(s for s in spans if s.span_id == agent.parent_span_id)
    assert api.name == "Agents.create_agent_turn"
    steps = _named(spans, agent)
    assert steps == ["shield_call pii", CHAT_SPAN, "execute_tool knowledge_search", CHAT_SPAN]
    shield, _, tool, _ = children_of(spans, agent)
    assert shield.attributes["pocketstack.agent.step.type"] == "shield_call"
    assert "pocketstack.shield.violation_level" not in shield.attributes  # nothing to flag
    assert tool.attributes["gen_ai.tool.type"] == "datastore" and tool.attributes["pocketstack.tool.result_count"] > 0
    expected = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.id": agent_id,
        "gen_ai.agent.name": "librarian",
        "gen_ai.conversation.id": session_id,
        "gen_ai.request.model": "chat",
    }
    assert {key: agent.attributes.get(key) for key in expected} == expected
    assert agent.attributes["gen_ai.usage.output_tokens"] > 0
    ends = await _ends(server)
    assert all(ends[agent.span_id] >= ends[child.span_id] for child in children_of(spans, agent))
    _nowhere(spans, QUERY, PASSAGE)


async def test_a_tool_runtime_invoke_is_a_tool_span(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    store = await store_of(oai, stored_embedding)
    body = {"tool_name": "knowledge_search", "kwargs": {"query": QUERY, "vector_store_ids": [store]}}
    reply = await server.post("/v1/tool-runtime/invoke", json=body)
    result = await reply.json()
    assert reply.status == 200 and "error_message" not in result
    failed = await server.post("/v1/tool-runtime/invoke", json={"tool_name": "knowledge_search", "kwargs": {"q": 1}})
    assert (await failed.json())["error_code"] == 400
    spans = await stored_spans(server.app)
    ran, refused = [s for s in spans if s.name == "execute_tool knowledge_search"]
    api = next(s for s in spans if s.span_id == ran.parent_span_id)
    assert api.name == "ToolRuntime.invoke_tool"
    assert ran.attributes["gen_ai.tool.type"] == "datastore" and ran.attributes["pocketstack.tool.outcome"] == "ok"
    assert ran.attributes["pocketstack.tool.result_count"] == len(result["metadata"]["results"])
    assert refused.status == "error" and refused.attributes["error.type"] == "tool_error"
    assert refused.attributes["pocketstack.tool.outcome"] == "error"
    _nowhere(spans, QUERY)


# -- content, when the config opts in -----------------------------------------------------------------


async def test_arguments_and_results_are_recorded_when_the_config_opts_in(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], stored_embedding: str
) -> None:
    captured: TestClient[Any, Any] = await aiohttp_client(create_app(_config(capture_content=True)))
    oai = openai.AsyncOpenAI(base_url=str(captured.make_url("/v1")), api_key="unused", max_retries=0)
    async with oai:
        store = await store_of(oai, stored_embedding)
        tools: Any = [{"type": "file_search", "vector_store_ids": [store]}]
        await oai.responses.create(model="chat", input=COMET, tools=tools)
        await oai.responses.create(model="chat", input=WEATHER, tools=[WEATHER_TOOL])
    spans = await stored_spans(captured.app)
    tool = _only(spans, "execute_tool file_search")
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"query": QUERY}
    assert PASSAGE in tool.attributes["gen_ai.tool.call.result"]
    handed = [s for s in spans if s.name == "invoke_agent" and s.events]
    (event,) = handed[0].events
    assert json.loads(event["attributes"]["gen_ai.tool.call.arguments"]) == {"city": "Paris"}


# -- owners --------------------------------------------------------------------------------------------


async def test_a_background_run_is_the_users_and_no_one_elses(server: TestClient[Any, Any]) -> None:
    alice, bob = As(server, "alice"), As(server, "bob")
    async with alice.openai() as oai:
        started = await oai.responses.create(model="chat", input="capital?", background=True)
        for _ in range(200):
            done = await oai.responses.retrieve(started.id)
            if done.status == "completed":
                break
            await asyncio.sleep(0.02)
        assert done.status == "completed"
    for _ in range(100):  # the run's span ends with its task, just after the response is stored
        spans = await stored_spans(server.app)
        if [s for s in spans if s.name == "invoke_agent"]:
            break
        await asyncio.sleep(0.05)
    agent = _only(spans, "invoke_agent")
    (chat,) = children_of(spans, agent)
    assert chat.name == CHAT_SPAN
    # a trace of its own (the request's answered long before), as background jobs' are
    assert agent.parent_span_id is None
    assert agent.trace_id != _only(spans, "Responses.create_openai_response").trace_id
    assert agent.attributes["pocketstack.response.background"] is True
    assert agent.attributes["pocketstack.response.status"] == "completed"
    rows = await server.app[STACK].database.fetch(
        "SELECT span_id, owner_principal FROM spans WHERE trace_id = ?", (agent.trace_id,)
    )
    assert {row["owner_principal"] for row in rows} == {"alice"}  # the task's spans too, after the request
    tree = (await alice.ok("POST", f"/v1/telemetry/spans/{agent.span_id}/tree", {}))["data"]
    assert list(tree) == [agent.span_id, chat.span_id]
    missing = "0" * 16
    await bob.hidden("POST", f"/v1/telemetry/spans/{agent.span_id}/tree", agent.span_id, missing, {})
    await bob.hidden("GET", f"/v1/telemetry/traces/{agent.trace_id}", agent.trace_id, "0" * 32)


async def test_a_background_run_links_to_the_request_that_started_it(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        server: TestClient[Any, Any] = await aiohttp_client(create_app(_config()))
        oai = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
        async with oai:
            started = await oai.responses.create(model="chat", input="capital?", background=True)
            for _ in range(200):
                if (await oai.responses.retrieve(started.id)).status == "completed":
                    break
                await asyncio.sleep(0.02)
        stack = server.app[STACK]
        assert stack.telemetry is not None
        for _ in range(100):  # the run's span ends with its task, just after the response is stored
            stack.telemetry.flush()
            if [s for s in receiver.spans if s.name == "invoke_agent"]:
                break
            await asyncio.sleep(0.05)
        (api,) = receiver.wait_for("Responses.create_openai_response")
        (run,) = receiver.wait_for("invoke_agent")
        assert run.links == ((api.trace_id, api.span_id),) and run.trace_id != api.trace_id
        await server.close()  # while the collector still listens
